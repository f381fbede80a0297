"""A drive item as the sync engine sees it: Graph's JSON parsed once, every wire quirk handled here."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from functions.errors import BadInput
from functions.microsoft.driveids import normalise_drive_id

# What the mirror needs from delta; Graph bakes the $select into the links it returns.
DELTA_SELECT = (
    "id,name,eTag,cTag,size,file,folder,parentReference,root,deleted,package,remoteItem,malware,lastModifiedDateTime,"
    "@microsoft.graph.downloadUrl"
)

# quickXorHash of empty input. Tombstones carry it as a placeholder (microsoft.md §3).
ZERO_HASH = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


class Kind(StrEnum):
    FILE = "file"
    FOLDER = "folder"
    ROOT = "root"
    PACKAGE = "package"  # OneNote notebook: no downloadable content
    REMOTE = "remote"  # shared from another drive: its content lives elsewhere

    @property
    def holds_children(self) -> bool:
        return self in (Kind.FOLDER, Kind.ROOT)


class BadItem(BadInput):
    """An item the feed sent without an id: nothing can be done with it."""


@dataclass(frozen=True)
class DriveItem:
    id: str
    kind: Kind
    name: str | None = None  # None on tombstones
    parent_id: str | None = None  # None on the root and on tombstones (theirs is unreliable)
    size: int | None = None  # None on tombstones and folders
    quickxorhash: str | None = None  # None when the listing carries no usable hash
    etag: str = ""
    ctag: str = ""  # changes only when the content changes
    deleted: bool = False
    malware: bool = False
    drive_id: str = ""  # normalised
    # Files: the pre-authenticated URL of the bytes (microsoft.md §4), short-lived; never stored.
    download_url: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_graph(cls, d: dict[str, Any]) -> DriveItem:
        item_id = d.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise BadItem("a delta item without an id")
        raw_parent = d.get("parentReference")
        parent: dict[str, Any] = raw_parent if isinstance(raw_parent, dict) else {}
        deleted = d.get("deleted") is not None
        kind = _kind(d)
        name = d.get("name") if isinstance(d.get("name"), str) else None
        size = d.get("size") if isinstance(d.get("size"), int) and d.get("size", -1) >= 0 else None
        hashes = (d.get("file") or {}).get("hashes") if isinstance(d.get("file"), dict) else None
        quickxorhash = hashes.get("quickXorHash") if isinstance(hashes, dict) else None  # `hashes: {}` on empty files
        if not isinstance(quickxorhash, str) or not quickxorhash:
            quickxorhash = None
        if deleted:
            # Tombstones on personal drives: no name, size or cTag, a zero hash, and a parent
            # pointing at the root whatever the real parent was. Trust only the id.
            return cls(id=item_id, kind=kind, deleted=True, etag=str(d.get("eTag") or ""),
                       drive_id=normalise_drive_id(str(parent.get("driveId") or "")))
        if quickxorhash == ZERO_HASH and size:
            quickxorhash = None  # a zero hash on a non-empty file is a placeholder, not the bytes' hash
        if size == 0:
            quickxorhash = ZERO_HASH  # `hashes: {}` or none at all: zero bytes have one hash, and moves keep it
        parent_id = parent.get("id") if kind is not Kind.ROOT and isinstance(parent.get("id"), str) else None
        return cls(
            id=item_id,
            kind=kind,
            name=name,
            parent_id=parent_id or None,
            size=size if kind in (Kind.FILE, Kind.PACKAGE) else None,
            quickxorhash=quickxorhash if kind is Kind.FILE else None,
            etag=str(d.get("eTag") or ""),
            ctag=str(d.get("cTag") or ""),
            malware=d.get("malware") is not None,
            drive_id=normalise_drive_id(str(parent.get("driveId") or "")),
            download_url=url if kind is Kind.FILE and isinstance(url := d.get("@microsoft.graph.downloadUrl"), str) and url else None,
        )


def _kind(d: dict[str, Any]) -> Kind:
    if d.get("root") is not None:
        return Kind.ROOT
    if d.get("remoteItem") is not None:
        return Kind.REMOTE
    if d.get("package") is not None:
        return Kind.PACKAGE
    if d.get("folder") is not None:
        return Kind.FOLDER
    return Kind.FILE
