"""What a connection mirrors: the whole drive (the default), a set of folders and files, or the app folder.

Cost follows the selection: each selected folder is followed with its own delta query
(`/me/drive/items/{id}/delta`, supported on any folder of a personal drive), a selected file
with one item read per pass, the app folder with `/me/drive/special/approot/delta`. Nothing
else of the drive is enumerated. Mirror paths stay the drive's paths (`Documents/Project/a.txt`):
the folders above a selected item are kept in the id map as *ancestors* (found by reading the
item's parents), so renaming or moving them moves the mirrored files, and the planner never
gives them content (`plan.Scope`). In app-folder mode the app folder is the root of the mirror.

Rows (Tables.SYNC_STATE, PartitionKey = connection id, beside the engine's "state" row):
- "selection": what the product asked for (mode, items, keep_deselected, version) and the
  version the sync last applied;
- "scope:{item}": one per selected item: its delta link, the checkpoint of a collect in
  progress, the link collected and not applied yet, and its ancestors as last read.

The engine's state row holds the marker `selection:{version}` in place of a deltaLink: a pass
over a selection collects every selected item (`collect`), then applies as usual with the scope,
then `commit` promotes each item's collected link. A changed selection is applied by the next
pass: new items are enumerated from scratch, and the rows the new scope no longer covers are
marked pending (their blobs leave the mirror, with `deleted` events) or, when the product asked
to keep them, forgotten while their blobs stay.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from functions import storage
from functions.errors import ItemNotFound, ResyncRequired
from functions.microsoft.driveitem import DELTA_SELECT, DriveItem, Kind
from functions.microsoft.graph import GraphClient, item_path
from functions.settings import settings
from functions.sync import itemrows
from functions.sync.apply import OutOfTime
from functions.sync.mirror import Mirror
from functions.sync.plan import Resolver, Scope

log = logging.getLogger(__name__)

SELECTION_ROW = "selection"
SCOPE_PREFIX = "scope:"
MARKER = "selection:"  # in the engine's delta_link / next_link: a selection is being synced
APP_ROOT = "/me/drive/special/approot"
MAX_ITEMS = 100  # selected items per connection: each costs a call per pass
MAX_ANCESTORS = 1000


class Mode(StrEnum):
    DRIVE = "drive"
    ITEMS = "items"
    APP_FOLDER = "appFolder"


@dataclass(frozen=True)
class SelectedItem:
    id: str
    kind: str  # "folder" | "file"
    name: str = ""
    path: str = ""  # in the drive, as it was when selected (for display; the id is what counts)

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "path": self.path}


@dataclass(frozen=True)
class Selection:
    mode: Mode = Mode.DRIVE
    items: tuple[SelectedItem, ...] = ()
    keep_deselected: bool = False
    version: str = ""
    applied_version: str = ""
    forced: bool = False  # app-folder mode set by ONEDRIVE_SCOPES, not by the product

    @property
    def applied(self) -> bool:
        return self.version == self.applied_version


def app_folder_only() -> bool:
    return settings().app_folder_only


def _table() -> storage.Table:
    return storage.Table(storage.Tables.SYNC_STATE)


def _get(connection_id: str, row_key: str) -> dict[str, Any] | None:
    row = _table().get(connection_id, row_key)
    return dict(row) if row is not None else None


def _merge(connection_id: str, row_key: str, **values: Any) -> None:
    _table().upsert({"PartitionKey": connection_id, "RowKey": row_key, **values})


def load(connection_id: str) -> Selection:
    row = _get(connection_id, SELECTION_ROW) or {}
    if app_folder_only():
        return Selection(Mode.APP_FOLDER, version="app", applied_version=str(row.get("applied_version") or ""), forced=True)
    try:
        mode = Mode(row.get("mode") or Mode.DRIVE)
        items = tuple(SelectedItem(**entry) for entry in json.loads(row.get("items") or "[]"))
    except (ValueError, TypeError):
        log.warning("unreadable selection row: whole drive", extra={"connection_id": connection_id})
        mode, items = Mode.DRIVE, ()
    return Selection(mode, items, bool(row.get("keep_deselected")), str(row.get("version") or ""),
                     str(row.get("applied_version") or ""))


def save(connection_id: str, mode: Mode, items: list[SelectedItem], *, keep_deselected: bool) -> Selection:
    version = uuid.uuid4().hex[:16]
    _merge(connection_id, SELECTION_ROW, mode=str(mode), items=json.dumps([i.to_json() for i in items]),
           keep_deselected=keep_deselected, version=version)
    return load(connection_id)


def is_marker(link: str) -> bool:
    return link.startswith(MARKER)


# ----- scope rows ------------------------------------------------------------------------------


@dataclass
class Root:
    """One selected item's place in the sync: its links and its ancestors."""

    id: str
    kind: str  # "folder" | "file" | "approot"
    row_key: str
    delta_link: str = ""
    next_link: str = ""
    pending_link: str = ""
    parent_path: str = ""
    parent_id: str = ""
    name: str = ""
    ancestors: tuple[str, ...] = ()
    done: bool = False  # collected in this pass

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Root:
        return cls(id=row["root_id"], kind=row.get("kind") or "folder", row_key=row["RowKey"],
                   delta_link=row.get("delta_link") or "", next_link=row.get("next_link") or "",
                   pending_link=row.get("pending_link") or "", parent_path=row.get("parent_path") or "",
                   parent_id=row.get("parent_id") or "", name=row.get("name") or "",
                   ancestors=tuple(json.loads(row.get("ancestors") or "[]")), done=bool(row.get("done")))

    def fresh_link(self) -> str:
        base = APP_ROOT if self.kind == "approot" else item_path(self.id)
        return f"{base}/delta?$select={DELTA_SELECT}"


def _roots(connection_id: str) -> dict[str, Root]:
    low, high = SCOPE_PREFIX, SCOPE_PREFIX[:-1] + chr(ord(SCOPE_PREFIX[-1]) + 1)
    rows = _table().query("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                          {"pk": connection_id, "low": low, "high": high})
    return {root.id: root for root in (Root.from_row(dict(r)) for r in rows)}


def _save_root(connection_id: str, root: Root) -> None:
    _merge(connection_id, root.row_key, root_id=root.id, kind=root.kind, delta_link=root.delta_link,
           next_link=root.next_link, pending_link=root.pending_link, parent_path=root.parent_path,
           parent_id=root.parent_id, name=root.name, ancestors=json.dumps(list(root.ancestors)), done=root.done)


def _wanted_roots(selection: Selection) -> list[tuple[str, str]]:
    if selection.mode is Mode.APP_FOLDER:
        return [("approot", "approot")]
    return [(item.id, item.kind) for item in selection.items]


def scope(connection_id: str) -> Scope | None:
    """The planner's view of the selection being synced (None: no filter, as for the whole drive
    and the app folder, where nothing outside the selection is ever recorded)."""
    selection = load(connection_id)
    if selection.mode is not Mode.ITEMS:
        return None
    roots = _roots(connection_id)
    wanted = {item_id for item_id, _ in _wanted_roots(selection)}
    ancestors = {a for root in roots.values() if root.id in wanted for a in root.ancestors}
    return Scope(frozenset(wanted), frozenset(ancestors))


def scope_of(selection: Selection, roots: dict[str, Root]) -> Scope | None:
    if selection.mode is not Mode.ITEMS:
        return None
    wanted = {item_id for item_id, _ in _wanted_roots(selection)}
    return Scope(frozenset(wanted), frozenset(a for r in roots.values() if r.id in wanted for a in r.ancestors))


# ----- a pass ----------------------------------------------------------------------------------


def begin_pass(connection_id: str, delta_link: str) -> tuple[bool, str]:
    """At the start of a pass: (is a selection to be synced, the delta link the pass starts
    from). Leaving a selection for the whole drive drops the marker: a full enumeration of the
    drive (and its sweep) follows."""
    selection = load(connection_id)
    if selection.mode is Mode.DRIVE:
        if selection.version != selection.applied_version:
            # Nothing to undo (no marker), or the full enumeration this pass starts undoes it.
            _merge(connection_id, SELECTION_ROW, applied_version=selection.version)
        if is_marker(delta_link):
            for root in _roots(connection_id).values():
                _table().delete(connection_id, root.row_key)
            return False, ""
        return False, delta_link
    # Nothing to write: `commit` left every item's row ready for the next pass (no checkpoint, not
    # done), and `collect` starts each one from its delta link.
    return True, delta_link


def collect(connection_id: str, graph: GraphClient, *, epoch: str | None, check: Callable[[], None],
            out_of_time: Callable[[], bool], set_epoch: Callable[[str], None], new_epoch: Callable[[], str],
            restart: bool = False) -> str:
    """Collect every selected item's changes into the id map; returns the marker to store as the
    pending delta link. Checkpoints each item's nextLink: a continuation resumes where it stopped
    (`restart`: a worker died mid-page; collect each unfinished item again from its last link)."""
    selection = load(connection_id)
    roots = _roots(connection_id)
    wanted = _wanted_roots(selection)
    if restart and epoch:
        # A full enumeration the dead worker began: start it over under a new epoch, or what only
        # its pages saw and was deleted since (no fresh enumeration sends a tombstone) keeps the
        # old stamp, and the sweep keeps its row and blob.
        epoch = new_epoch()
        set_epoch(epoch)
        roots = start_over(connection_id)
        restart = False
    while True:
        try:
            for item_id, kind in wanted:
                root = roots.get(item_id) or Root(item_id, kind, SCOPE_PREFIX + itemrows.row_key(item_id))
                roots[item_id] = root
                if root.done:
                    continue
                if restart:
                    root.next_link = root.delta_link or (root.fresh_link() if kind != "file" else "")
                check()
                if out_of_time():
                    raise OutOfTime()
                _collect_root(connection_id, graph, root, epoch=epoch, check=check, out_of_time=out_of_time)
            break
        except ResyncRequired as resync:
            # A selected folder's link is dead: enumerate every selected item again, stamping what
            # is seen; the engine's sweep removes what the enumeration didn't contain.
            log.warning("selection delta resync required (%s)", resync.code, extra={"connection_id": connection_id})
            epoch = new_epoch()
            set_epoch(epoch)
            roots = start_over(connection_id)
            restart = False
    if selection.version != selection.applied_version:
        _leave_unselected(connection_id, selection, roots)
    return MARKER + selection.version


def start_over(connection_id: str) -> dict[str, Root]:
    """Every selected item collected again from scratch (a dead link, or the periodic full
    reconciliation): what the enumeration doesn't stamp is swept by the engine."""
    roots = _roots(connection_id)
    for root in roots.values():
        root.delta_link = root.pending_link = ""
        root.next_link = root.fresh_link() if root.kind != "file" else ""
        root.done = False
        _save_root(connection_id, root)
    return roots


def commit(connection_id: str) -> None:
    """After the pass is applied: each item's collected link becomes its delta link; items no
    longer selected lose their rows."""
    selection = load(connection_id)
    wanted = {item_id for item_id, _ in _wanted_roots(selection)}
    for root in _roots(connection_id).values():
        if root.id not in wanted:
            _table().delete(connection_id, root.row_key)
            continue
        root.delta_link = root.pending_link or root.delta_link
        root.pending_link, root.next_link, root.done = "", "", False
        _save_root(connection_id, root)
    if selection.applied_version != selection.version:
        _merge(connection_id, SELECTION_ROW, applied_version=selection.version)


def _collect_root(connection_id: str, graph: GraphClient, root: Root, *, epoch: str | None,
                  check: Callable[[], None], out_of_time: Callable[[], bool]) -> None:
    if root.kind == "approot":
        _collect_app_folder(connection_id, graph, root, epoch=epoch, check=check, out_of_time=out_of_time)
        return
    alive = _anchor(connection_id, graph, root, epoch=epoch)
    if root.kind == "folder" and alive:
        incremental = bool(root.delta_link) and root.next_link != root.fresh_link()
        link = root.next_link or root.delta_link or root.fresh_link()
        root.pending_link = _follow(connection_id, graph, root, link, epoch=epoch, check=check,
                                    out_of_time=out_of_time, incremental=incremental)
    root.done = True
    _save_root(connection_id, root)


def _anchor(connection_id: str, graph: GraphClient, root: Root, *, epoch: str | None) -> bool:
    """Read the selected item and, when its place changed (or a full enumeration runs), its
    parents up to the root, recording them. False when the item is gone (a tombstone is recorded)."""
    try:
        read = graph.item(item_path(root.id))
    except ItemNotFound:
        kind = Kind.FILE if root.kind == "file" else Kind.FOLDER
        itemrows.record_delta_page(connection_id, [DriveItem(id=root.id, kind=kind, deleted=True)], epoch=epoch)
        log.info("a selected item is gone from the drive", extra={"connection_id": connection_id})
        return False
    item, parent_path = read.item, read.parent_path
    moved = (epoch is not None or not root.ancestors or parent_path != root.parent_path
             or (item.parent_id or "") != root.parent_id or (item.name or "") != root.name)
    chain: list[DriveItem] = []
    if moved:
        parent_id = item.parent_id
        while parent_id and len(chain) < MAX_ANCESTORS:
            ancestor = graph.item(item_path(parent_id)).item
            chain.append(ancestor)
            if ancestor.kind is Kind.ROOT:
                break
            parent_id = ancestor.parent_id
        root.ancestors = tuple(a.id for a in chain)
        root.parent_path, root.parent_id, root.name = parent_path, item.parent_id or "", item.name or ""
    if moved or root.kind == "file":
        # A file has no delta of its own: its row is refreshed from this read (an unchanged eTag
        # changes nothing: the planner finds it in place).
        rows = itemrows.RowCache(connection_id)
        rows.load([item.id])
        known = rows.get(item.id)
        if moved or known is None or known.etag != item.etag or epoch is not None:
            itemrows.record_delta_page(connection_id, [*reversed(chain), item], epoch=epoch)
    return True


def _collect_app_folder(connection_id: str, graph: GraphClient, root: Root, *, epoch: str | None,
                        check: Callable[[], None], out_of_time: Callable[[], bool]) -> None:
    if not root.parent_id:
        folder = graph.item(APP_ROOT).item
        root.parent_id = folder.id  # remembered: the app folder's id
        itemrows.record_delta_page(connection_id, [_as_root(folder)], epoch=epoch)
    elif epoch is not None:
        itemrows.record_delta_page(connection_id, [_as_root(graph.item(APP_ROOT).item)], epoch=epoch)
    incremental = bool(root.delta_link) and root.next_link != root.fresh_link()
    root.pending_link = _follow(connection_id, graph, root, root.next_link or root.delta_link or root.fresh_link(), epoch=epoch,
                                check=check, out_of_time=out_of_time, incremental=incremental)
    root.done = True
    _save_root(connection_id, root)


def _as_root(item: DriveItem) -> DriveItem:
    # The app folder is the mirror's root: its own name and parent (Apps/) are outside what the app sees.
    return replace(item, kind=Kind.ROOT, parent_id=None)


def _follow(connection_id: str, graph: GraphClient, root: Root, link: str, *, epoch: str | None,
            check: Callable[[], None], out_of_time: Callable[[], bool], incremental: bool) -> str:
    """Follow one folder's delta pages to the deltaLink, checkpointing each nextLink in the root's row."""
    while True:
        check()
        if out_of_time():
            root.next_link = link
            _save_root(connection_id, root)
            raise OutOfTime()
        page = graph.delta_page(link)
        items = list(page.items)
        if root.kind == "approot" and root.parent_id:
            items = [_as_root(i) if i.id == root.parent_id else i for i in items]
        new_folders: list[str] = []
        if incremental:
            # A folder moved in from outside the selection arrives alone (delta doesn't resend its
            # children): enumerate it on its own, once.
            known_above = {root.id, *root.ancestors}  # repeated on every page: never new
            candidates = [i.id for i in items if i.kind is Kind.FOLDER and not i.deleted and i.id not in known_above]
            if candidates:
                known = itemrows.RowCache(connection_id)
                known.load(candidates)
                new_folders = [i for i in candidates if i not in known]
        itemrows.record_delta_page(connection_id, items, epoch=epoch)
        for folder_id in new_folders:
            _enumerate(connection_id, graph, folder_id, epoch=epoch, check=check)
        if page.next_link:
            link = page.next_link
            root.next_link = link
            _save_root(connection_id, root)
        else:
            assert page.delta_link  # DeltaPage refuses a page with neither
            return page.delta_link


def _enumerate(connection_id: str, graph: GraphClient, folder_id: str, *, epoch: str | None,
               check: Callable[[], None]) -> None:
    link = f"{item_path(folder_id)}/delta?$select={DELTA_SELECT}"
    while link:
        check()
        try:
            page = graph.delta_page(link)
        except ItemNotFound:
            return  # gone again: its tombstone comes with the selected folder's next delta
        itemrows.record_delta_page(connection_id, list(page.items), epoch=epoch)
        link = page.next_link or ""


def _leave_unselected(connection_id: str, selection: Selection, roots: dict[str, Root]) -> None:
    """A changed selection: rows the new scope doesn't cover leave the mirror (pending: the apply
    deletes their blobs and forgets them) or, when the product keeps them, are forgotten at once."""
    new_scope = scope_of(selection, roots)
    rows = itemrows.RowCache(connection_id)
    for state in itemrows.all_rows(connection_id):
        rows.put(state)
    resolver = Resolver(rows, scope=new_scope)
    leaving = [state for state in rows.values() if state.kind is not Kind.ROOT and not state.deleted
               and resolver.desired(state.id).reason == "unselected"]
    if not leaving:
        return
    log.info("selection changed: %d items leave the mirror", len(leaving),
             extra={"connection_id": connection_id, "keep": selection.keep_deselected})
    if selection.keep_deselected:
        # Their blobs stay, detached from the sync: no item's any more, so no later sweep or
        # reconciliation removes them.
        mirror = Mirror(connection_id)
        for state in leaving:
            path = resolver.mirrored(state.id)
            if state.kind is Kind.FILE and state.mirrored and path:
                mirror.keep(path, state.id)
        itemrows.forget(connection_id, [state.id for state in leaving], skipped=[s.id for s in leaving if s.skipped])
    else:
        itemrows.mark_pending(connection_id, leaving)
