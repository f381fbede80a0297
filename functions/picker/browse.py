"""What the picker shows and saves: a folder's children read from Graph on the server (the token
never reaches the browser), and the selection changed by one form post."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from functions.errors import BadInput
from functions.microsoft.driveitem import Kind
from functions.microsoft.graph import GraphClient, item_path
from functions.sync import selection
from functions.sync.selection import Mode, SelectedItem

MAX_CHILDREN = 1000  # shown per folder; the rest is named, not listed
_SELECT = "id,name,size,folder,file,package,remoteItem,root,parentReference"


class NothingChosen(BadInput):
    """The form left nothing selected: the user must tick something or choose the whole drive."""


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    kind: str  # "folder" | "file" | "other" (a notebook, a shared item: shown, not selectable)
    size: int
    selected: bool


@dataclass(frozen=True)
class Listing:
    folder_id: str
    path: str  # "" for the root
    parent_id: str | None
    entries: list[Entry]
    truncated: bool
    mode: Mode
    inherited: bool  # the folder itself (or one above it) is selected: everything here is included
    selected: list[SelectedItem]


def graph_for(connection_id: str) -> GraphClient:
    from functions.tokens import vault

    return GraphClient(connection_id, vault.token_source(connection_id))


def listing(connection_id: str, graph: GraphClient, folder_id: str | None) -> Listing:
    current = selection.load(connection_id)
    address = item_path(folder_id) if folder_id else "/me/drive/root"
    read = graph.item(address)
    folder = read.item
    if not folder.kind.holds_children:
        raise LookupError("not a folder")
    path = read.path
    chosen = {item.id for item in current.items}
    inherited = current.mode is Mode.DRIVE or folder.id in chosen or any(
        item.kind == "folder" and path.startswith(item.path + "/") for item in current.items if item.path)
    entries: list[Entry] = []
    link: str | None = f"{item_path(folder.id)}/children?$select={_SELECT}&$top=200"
    truncated = False
    while link:
        page = graph.children(link)
        for child_read in page.children:
            child = child_read.item
            kind = "folder" if child.kind is Kind.FOLDER else "file" if child.kind is Kind.FILE else "other"
            entries.append(Entry(child.id, str(child.name or ""), kind, child_read.size, child.id in chosen))
        link = page.next_link
        if len(entries) >= MAX_CHILDREN:
            truncated, link = link is not None, None
    entries.sort(key=lambda e: (e.kind != "folder", e.name.lower()))
    return Listing(folder.id, path, None if folder.kind is Kind.ROOT else folder.parent_id, entries[:MAX_CHILDREN],
                   truncated, current.mode, inherited, list(current.items))


def save(connection_id: str, graph: GraphClient, *, folder_id: str | None, shown: list[str], ticked: list[str],
         whole_drive: bool = False) -> selection.Selection:
    """The selection after one form: the items shown on the page are selected exactly when ticked;
    items selected elsewhere in the drive stay selected."""
    if whole_drive:
        return selection.save(connection_id, Mode.DRIVE, [], keep_deselected=False)
    current = selection.load(connection_id)
    page = listing(connection_id, graph, folder_id)
    on_page = {entry.id: entry for entry in page.entries if entry.kind in ("folder", "file")}
    shown_ids = {i for i in shown if i in on_page}
    kept = [] if current.mode is Mode.DRIVE else [item for item in current.items if item.id not in shown_ids]
    added = [SelectedItem(entry.id, entry.kind, entry.name, f"{page.path}/{entry.name}" if page.path else entry.name)
             for entry in (on_page[i] for i in ticked if i in shown_ids)]
    items = (kept + added)[: selection.MAX_ITEMS]
    if not items:
        raise NothingChosen()
    return selection.save(connection_id, Mode.ITEMS, items, keep_deselected=current.keep_deselected)


def folder_link(folder_id: str | None) -> str:
    return "/api/picker" + (f"?folder={quote(folder_id, safe='')}" if folder_id else "")
