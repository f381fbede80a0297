"""DriveItem JSON, as Graph shapes it for OneDrive Personal (microsoft.md §3)."""

from __future__ import annotations

from urllib.parse import quote

from ..content import ZERO_HASH
from ..drive import Drive, Item
from ..state import State
from ..times import graph_time
from .downloads import signed_url


def quirky_drive_id(state: State, drive_id: str) -> str:
    """parentReference.driveId as the real service sometimes spells it (sync-scenarios #14)."""
    quirk = state.options.drive_id_quirk
    if quirk == "drop_leading_zero":
        # The real quirk: one leading zero dropped (a 15-character id), not every one.
        return drive_id[1:] if drive_id.startswith("0") else drive_id
    if quirk == "upper":
        return drive_id.upper()
    return drive_id


def quirky_parent_id(state: State, parent_id: str) -> str:
    """parentReference.id with the drive part in another case than the parent's own id, as the
    service answers since 2025 (OneDrive/onedrive-api-docs#1902)."""
    if state.options.parent_id_drive_case == "lower" and "!" in parent_id:
        drive_part, _, rest = parent_id.partition("!")
        return f"{drive_part.lower()}!{rest}"
    return parent_id


def remote_item_json(state: State, item: Item) -> dict:
    """``remoteItem`` of a folder shared with the user: it names the folder in the sharer's drive,
    where Graph serves it (``/drives/{driveId}/items/{id}``)."""
    reference = item.remote or {}
    remote_drive = state.drive_by_id(reference.get("drive_id", ""))
    target = remote_drive.live(reference.get("id", "")) if remote_drive is not None else None
    body: dict = {
        "id": reference.get("id"),
        "name": item.name,
        "parentReference": {"driveId": reference.get("drive_id"), "driveType": "personal"},
    }
    if remote_drive is not None and target is not None:
        owner = {"user": {"displayName": remote_drive.owner_name, "id": remote_drive.owner_id}}
        body.update({
            "name": target.name,
            "size": _folder_size(remote_drive, target),
            "folder": {"childCount": len(target.children)},
            "createdBy": owner,
            "shared": {"owner": owner},
            "webUrl": f"{state.base_url}/drive?user={remote_drive.owner_id}&item={quote(target.id)}",
        })
    else:
        body.update({"size": 0, "folder": {"childCount": 0}})
    return body


def drive_json(state: State, drive: Drive) -> dict:
    used = 0
    with drive.lock:
        if drive.lazy is not None:  # its mean file size: adding up a million generated items would stall the answer
            used = drive.lazy.files * drive.lazy.max_size // 2
        for item in drive.items.values() if drive.lazy is None else ():
            if item.kind == "file" and not item.deleted and item.content is not None:
                used += item.content.size
    total = 5 * 1024**3 if used < 5 * 1024**3 else 1024**4
    return {
        "@odata.context": f"{state.graph_base_url}/$metadata#drives/$entity",
        "id": drive.id,
        "driveType": "personal",
        "name": "OneDrive",
        "createdDateTime": graph_time(drive.created),
        "lastModifiedDateTime": graph_time(drive.created),
        "webUrl": f"{state.base_url}/drive?user={drive.owner_id}",
        "owner": {"user": {"displayName": drive.owner_name, "id": drive.owner_id}},
        "quota": {
            "deleted": 0,
            "remaining": total - used,
            "state": "normal",
            "total": total,
            "used": used,
            "storagePlanInformation": {"upgradeAvailable": True},
        },
    }


def item_json(
    state: State, drive: Drive, item: Item, in_delta: bool = False, select: list[str] | None = None
) -> dict:
    """The item as Graph shows it; with ``$select``, only those properties (and the costly ones,
    hashes and download URLs, only when selected)."""
    if item.deleted:
        return select_fields(tombstone_json(state, drive, item), select)
    wanted = set(select) if select else None
    body: dict = {
        "createdDateTime": graph_time(item.created),
        "cTag": item.ctag,
        "eTag": item.etag,
        "id": item.id,
        "lastModifiedDateTime": graph_time(item.modified),
        "name": item.name,
        "size": item.size,
        "webUrl": f"{state.base_url}/drive?user={drive.owner_id}&item={quote(item.id)}",
        "createdBy": {"user": {"displayName": drive.owner_name, "id": drive.owner_id}},
        "lastModifiedBy": {"user": {"displayName": drive.owner_name, "id": drive.owner_id}},
        "fileSystemInfo": {
            "createdDateTime": graph_time(item.created),
            "lastModifiedDateTime": graph_time(item.modified),
        },
    }
    parent_reference: dict = {"driveId": quirky_drive_id(state, drive.id), "driveType": "personal"}
    if item.parent_id is not None:
        parent_reference["id"] = quirky_parent_id(state, item.parent_id)
        if not in_delta:
            # Never in delta (microsoft.md §3); present on plain item reads.
            parent = drive.get(item.parent_id)
            parent_path = drive.path_of(parent) if parent is not None else ""
            parent_reference["path"] = "/drive/root:" + (f"/{parent_path}" if parent_path else "")
    body["parentReference"] = parent_reference
    if item.kind == "root":
        body["root"] = {}
        body["name"] = "root"
    if item.kind in ("root", "folder"):
        body["folder"] = {
            "childCount": 0 if in_delta else len(item.children),
            "view": {"viewType": "thumbnails", "sortBy": "name", "sortOrder": "ascending"},
        }
        if not in_delta:
            body["size"] = _folder_size(drive, item)
    elif item.kind == "package":
        body["package"] = {"type": "oneNote"}
    elif item.kind == "remote":
        body["remoteItem"] = remote_item_json(state, item)
    else:
        if wanted is None or "file" in wanted:
            body["file"] = {"mimeType": item.mime_type, "hashes": _hashes(state, item)}
        if item.malware:
            body["malware"] = {"description": "Malware was detected in this file."}
        if wanted is None or "@microsoft.graph.downloadUrl" in wanted:
            body["@microsoft.graph.downloadUrl"] = signed_url(state, drive, item)
    return select_fields(body, select)


def _hashes(state: State, item: Item) -> dict:
    if item.size == 0 and state.options.zero_byte_empty_hashes and item.listed_hash is None:
        return {}
    value = item.quick_xor_hash()
    return {"quickXorHash": value} if value is not None else {}


def _folder_size(drive: Drive, folder: Item) -> int:
    # Cheap enough for the drive page and item reads; never computed in delta.
    if len(drive.items) > 20000:
        return 0
    total, stack = 0, [folder]
    while stack:
        node = stack.pop()
        for child_id in node.children.values():
            child = drive.items[child_id]
            if child.kind == "file":
                total += child.size
            else:
                stack.append(child)
    return total


def tombstone_json(state: State, drive: Drive, item: Item) -> dict:
    """A deleted item on a personal drive: no name, size or cTag; a zero hash; the parent
    pointing at the root (microsoft.md §3, sync-scenarios #8). With ``id_only_tombstones``: the id
    and ``deleted`` and nothing else, as seen in the field (JeffSteinbok/obsidian-onedrive#27)."""
    if state.options.id_only_tombstones:
        return {"id": item.id, "deleted": {}}
    parent_id = drive.root_id if state.options.tombstone_parent_root else item.parent_id
    body: dict = {
        "createdDateTime": graph_time(item.created),
        "id": item.id,
        "lastModifiedDateTime": graph_time(item.modified),
        "parentReference": {"driveId": quirky_drive_id(state, drive.id), "driveType": "personal", "id": parent_id},
        "deleted": {"state": "deleted"},
    }
    if item.kind in ("folder", "remote"):
        body["folder"] = {"childCount": 0}
    elif item.kind == "package":
        body["package"] = {"type": "oneNote"}
    else:
        body["file"] = {"mimeType": item.mime_type, "hashes": {"quickXorHash": ZERO_HASH}}
    return body


def select_fields(body: dict, select: list[str] | None) -> dict:
    if not select:
        return body
    keep = {name.strip() for name in select} | {"id", "deleted"}
    return {key: value for key, value in body.items() if key in keep}
