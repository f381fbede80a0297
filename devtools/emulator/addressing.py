"""Graph's ways of naming a drive and an item in a URL path (microsoft.md §3)."""

from __future__ import annotations

import re
from typing import NamedTuple

DELTA_ACTION = re.compile(r"^delta(?:\(\)|\(token='(?P<token>[^']*)'\))?$")


class Address(NamedTuple):
    drive: str  # "me/drive" | "drives/{id}"
    kind: str  # "root" | "id" | "path" | "approot"
    value: str  # the item id or the path ("" for the root)
    action: str  # what follows: "", "children", "content", "delta", ...
    path: str = ""  # a path below the item: items/{id}:/{path}: (what clients use below a folder)


def parse_item_path(rest: str) -> Address | None:
    """'me/drive/items/X!1/content' -> Address("me/drive", "id", "X!1", "content");
    'drives/d/items/X!1:/a/b.txt:/content' -> Address("drives/d", "id", "X!1", "content", "a/b.txt")."""
    match = re.match(r"^(me/drive|drives/[^/]+)/(.+)$", rest)
    if match is None:
        return None
    drive_spec, tail = match.groups()
    if tail.startswith("root:"):
        # Names can't contain ':', so the first one after 'root:' ends the path.
        path, _, after = tail[5:].partition(":")
        return Address(drive_spec, "path", path, after.strip("/"))
    if tail == "root" or tail.startswith("root/"):
        return Address(drive_spec, "root", "", tail[4:].strip("/"))
    if tail.startswith("items/"):
        head = tail[6:]
        colon, slash = head.find(":"), head.find("/")
        if colon != -1 and (slash == -1 or colon < slash):
            # items/{id}:/{path}: - the id ends at the first ':', the path at the next one.
            item_id, _, relative = head.partition(":")
            path, _, after = relative.partition(":")
            return Address(drive_spec, "id", item_id, after.strip("/"), path.strip("/"))
        item_id, _, after = head.partition("/")
        return Address(drive_spec, "id", item_id, after.strip("/"))
    if tail == "special/approot" or tail.startswith("special/approot/"):
        return Address(drive_spec, "approot", "", tail[len("special/approot"):].strip("/"))
    return None


# The app folder is named after the app registration: Apps/{name} (created on first use).
APP_FOLDER_NAME = "onedrive-mirror"


def app_folder_of(drive, *, create: bool = True):
    """``/drive/special/approot`` of a drive (None if it doesn't exist and ``create`` is False)."""
    if create:
        return drive.app_folder(APP_FOLDER_NAME)
    found = drive.find(f"Apps/{APP_FOLDER_NAME}")
    return found if found is not None and not found.deleted else None


def in_app_folder(drive, item) -> bool:
    folder = app_folder_of(drive, create=False)
    if folder is None:
        return False
    with drive.lock:
        return item.id == folder.id or any(a.id == folder.id for a in drive.ancestors(item))


def normalise_drive_id(drive_id: str) -> str:
    # Drive ids may come with a dropped leading zero or in another case (microsoft.md §3).
    return drive_id.lower().rjust(16, "0")
