"""`GET/PUT /api/connections/{id}/selection`: what a connection mirrors.

PUT bodies (JSON):
- `{"mode": "drive"}`: the whole drive (the default);
- `{"items": [...], "deselected": "remove" | "keep"}`: folders and files, each `{"id": ...}`
  (optionally with `parentReference.driveId`, which must be the connection's drive) or
  `{"path": "/Documents/Project"}`. The result of Microsoft's OneDrive File Picker (v8),
  `{"command": "pick", "items": [{"id", "parentReference": {"driveId"}, ...}]}`, is accepted as
  it is: unknown fields are ignored.
With `ONEDRIVE_SCOPES` granting only `Files.ReadWrite.AppFolder`, the selection is the app folder
and can't be changed (409).

Every item is read from Graph before anything is stored: an unknown id, a shared item (its content
lives on another drive) or an item of another drive is a 400 and changes nothing. The change is
applied by the next sync, which is queued at once.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

from functions import connections, messages
from functions.api.support import ApiError, bad_request, require_connection
from functions.errors import GraphError, ItemNotFound, ReauthRequired
from functions.microsoft.driveids import normalise_drive_id
from functions.microsoft.driveitem import Kind
from functions.microsoft.graph import GraphClient, item_path
from functions.sync import selection
from functions.sync.selection import Mode, SelectedItem

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
_MAX_ID = 256
_MAX_PATH = 2048


def get_selection(connection_id: str) -> dict[str, Any]:
    require_connection(connection_id)
    return describe(selection.load(connection_id))


def describe(current: selection.Selection) -> dict[str, Any]:
    return {
        "mode": str(current.mode),
        "items": [{"id": i.id, "kind": i.kind, "name": i.name, "path": i.path} for i in current.items],
        "deselected": "keep" if current.keep_deselected else "remove",
        "applied": current.applied,  # false until a sync has taken this selection up
        "fixed": current.forced,  # true: the app folder, set by ONEDRIVE_SCOPES
    }


def put_selection(connection_id: str, body: bytes, *, graph: GraphClient | None = None) -> dict[str, Any]:
    connection = require_connection(connection_id)
    if selection.app_folder_only():
        raise ApiError(409, "selection_fixed", "This app has access to its app folder only: that is the selection.")
    if connection.state != connections.ConnectionState.ACTIVE:
        raise ApiError(409, "connection_not_active", "The connection is not active: connect the drive again first.")
    request = _parse(body)
    mode = request["mode"]
    items: list[SelectedItem] = []
    if mode is Mode.ITEMS:
        if graph is None:
            from functions.tokens import vault

            graph = GraphClient(connection_id, vault.token_source(connection_id))
        items = _resolve(connection, graph, request["items"])
        if any(i.kind == "root" for i in items):
            mode, items = Mode.DRIVE, []  # the drive's root picked: that is the whole drive
    saved = selection.save(connection_id, mode, items, keep_deselected=request["keep"])
    messages.enqueue_sync(connection_id, "selection")
    log.info("selection changed", extra={"connection_id": connection_id, "mode": str(mode), "items": len(items)})
    return describe(saved)


def _parse(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"The body must be at most {MAX_BODY} bytes.")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The body must be JSON.", "invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", "invalid_body")
    deselected = data.get("deselected", "remove")
    if deselected not in ("remove", "keep"):
        raise bad_request("deselected must be \"remove\" or \"keep\".", "invalid_deselected")
    mode_text = data.get("mode", "items" if "items" in data else None)
    if mode_text == "appFolder":
        raise bad_request("The app folder is chosen by ONEDRIVE_SCOPES (Files.ReadWrite.AppFolder), not by the API.",
                          "invalid_mode")
    if mode_text not in ("drive", "items"):
        raise bad_request("mode must be \"drive\" or \"items\" (or give \"items\").", "invalid_mode")
    if mode_text == "drive":
        return {"mode": Mode.DRIVE, "items": [], "keep": deselected == "keep"}
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise bad_request("items must be a non-empty list.", "invalid_items")
    if len(raw_items) > selection.MAX_ITEMS:
        raise bad_request(f"At most {selection.MAX_ITEMS} items can be selected.", "too_many_items")
    wanted = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise bad_request(f"items[{index}] must be an object.", "invalid_items")
        item_id, path = raw.get("id"), raw.get("path")
        parent = raw.get("parentReference")
        drive_id = parent.get("driveId") if isinstance(parent, dict) else None
        if item_id is not None:
            if not isinstance(item_id, str) or not 0 < len(item_id) <= _MAX_ID or not item_id.isprintable():
                raise bad_request(f"items[{index}].id must be a printable string of at most {_MAX_ID} characters.",
                                  "invalid_items")
        elif isinstance(path, str) and 0 < len(path) <= _MAX_PATH and path.isprintable():
            if any(segment in (".", "..") for segment in path.strip("/").split("/")):
                raise bad_request(f"items[{index}].path must not contain . or .. segments.", "invalid_items")
        else:
            raise bad_request(f"items[{index}] needs an id (or a path).", "invalid_items")
        if drive_id is not None and not (isinstance(drive_id, str) and re.fullmatch(r"[0-9A-Za-z!]{1,64}", drive_id)):
            raise bad_request(f"items[{index}].parentReference.driveId is not a drive id.", "invalid_items")
        wanted.append({"id": item_id, "path": path, "drive_id": drive_id})
    return {"mode": Mode.ITEMS, "items": wanted, "keep": deselected == "keep"}


def _resolve(connection: connections.Connection, graph: GraphClient, wanted: list[dict[str, Any]]) -> list[SelectedItem]:
    own_drive = normalise_drive_id(connection.drive_id)
    found: dict[str, SelectedItem] = {}
    for index, entry in enumerate(wanted):
        if entry["drive_id"] and own_drive and normalise_drive_id(entry["drive_id"]) != own_drive:
            raise bad_request(f"items[{index}] is on another drive than this connection's.", "item_on_another_drive")
        if entry["id"] is not None:
            address = item_path(entry["id"])
        else:
            address = "/me/drive/root:/" + quote(entry["path"].strip("/"), safe="/") + ":"
        try:
            read = graph.item(address)
        except ItemNotFound:
            raise bad_request(f"items[{index}] was not found in the drive.", "item_not_found") from None
        except ReauthRequired:
            raise ApiError(409, "reauth_required", "Microsoft sign-in expired: the user must connect again.") from None
        except GraphError as error:
            if error.status == 403:
                raise bad_request(f"items[{index}] is not accessible with this connection.", "item_not_accessible") from None
            raise ApiError(503, "graph_unavailable", "Microsoft Graph did not answer; try again.") from None
        item = read.item
        item_drive = item.drive_id
        if item_drive and own_drive and item_drive != own_drive:
            raise bad_request(f"items[{index}] is on another drive than this connection's.", "item_on_another_drive")
        if item.kind is Kind.REMOTE:
            raise bad_request(f"items[{index}] is shared from another drive: its content can't be mirrored.",
                              "shared_item_unsupported")
        if item.kind is Kind.PACKAGE:
            raise bad_request(f"items[{index}] is a OneNote notebook: it has no downloadable content.",
                              "package_unsupported")
        path = read.path
        kind = "root" if item.kind is Kind.ROOT else "folder" if item.kind is Kind.FOLDER else "file"
        found[item.id] = SelectedItem(item.id, kind, "" if item.kind is Kind.ROOT else str(item.name or ""), path)
    return list(found.values())
