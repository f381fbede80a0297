"""Folder rows a worker carries from one sync of a connection to its next, so that a change pass
reads the rows of what changed and not, again, the ancestors of every change: 100 changes read
157 rows in a 5,000-item drive and 366 in a 100,000-item one (the same number of changes spread
over more, deeper folders), each read a round trip per level of the tree.

Exact, or not used:
- the rows are the run's own row cache (`itemrows.RowCache`) at the end of a run:
  what it read, and what it wrote itself (the cache is updated with every write);
- the next run takes them only if no other run held the connection in between: every lease holder
  stamps the state row with its owner (`SyncState.rows_by`) before it writes any item row, so a
  run that finds the stamp of the run that kept these rows knows nobody else wrote since;
- what a run records from delta (an item's new desired state, and delta repeats every ancestor
  of a changed item) is recorded in the carried rows as in the table (`itemrows.recorded`);
- what it leaves out (`Carried.to_record`: the repeats of a settled folder that change only
  what no step reads of a folder) it leaves out of both;
- a run kept them only if it finished, or ran out of time (its continuation picks up where it
  stopped); a run that ends any other way (throttled, an error, the lease lost) keeps nothing.

In memory only, per worker process, at most ROWS_KEPT rows over all connections (the least
recently kept connections are dropped first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace

from functions.microsoft.driveitem import DriveItem, Kind
from functions.sync import itemrows
from functions.sync.plan import ItemState

ROWS_KEPT = 20_000  # over all connections: about 400 bytes each


class Carried(dict[str, ItemState]):
    """The folder rows a run took over from the previous one (possibly none)."""

    def to_record(self, items: Iterable[DriveItem]) -> list[DriveItem]:
        """A change pass's delta page (the last of each id) less what would change nothing the
        sync reads: delta repeats every ancestor of a change, its eTag, cTag and size new, and a
        100-change pass in a deep tree would write, list and apply hundreds of unchanged folders
        (the sync itself 2.06 s against 1.59 s without them, at 100,000 items). Left out only
        where the carried row says the folder is settled (mirrored where it must be), so it has
        no apply work of its own, as for every folder delta does not report: one whose ancestor
        moved is carried by that ancestor's relocation. A folder's eTag, cTag and size are read
        by nothing, so its row keeps the old ones. Not in a full enumeration: it stamps every row
        it sees."""
        return [item for item in itemrows.last_of_each(items) if not self._repeats(item)]

    def _repeats(self, item: DriveItem) -> bool:
        state = self.get(item.id)
        if state is None or not _settled(state) or (now := itemrows.recorded(state, item)) is None:
            return False
        return _read_of_folders(now) == _read_of_folders(state)

    def record(self, items: Iterable[DriveItem]) -> None:
        """Delta items just written by `itemrows.record_delta_page`, in page order."""
        for item in items:
            if (state := self.get(item.id)) is None:
                continue
            if (now := itemrows.recorded(state, item)) is None:
                del self[item.id]  # read again, when needed
            else:
                self[item.id] = now


def _read_of_folders(state: ItemState) -> ItemState:
    return replace(state, etag="", ctag="", size=None)


def _settled(state: ItemState) -> bool:
    if state.deleted or state.skipped:
        return False
    if state.kind is Kind.ROOT:
        return True  # never mirrored under a name: the apply only finishes its pending row
    return state.kind is Kind.FOLDER and state.m_name is not None and (state.m_name, state.m_parent_id) == (
        state.name, state.parent_id)


_kept: OrderedDict[str, tuple[str, list[tuple[str, ItemState]]]] = OrderedDict()
_lock = threading.Lock()


def take(connection_id: str, rows_by_before: str) -> Carried:
    """The rows kept by the run that last held the connection, if it was ours (`rows_by_before`,
    the stamp our lease found); else nothing. Taken once: a run that fails leaves nothing behind."""
    with _lock:
        kept = _kept.pop(connection_id, None)
    carried = Carried()
    if kept is not None and rows_by_before and kept[0] == rows_by_before:
        carried.update(kept[1])
    return carried


def keep(connection_id: str, owner: str, rows: Iterable[tuple[str, ItemState]]) -> None:
    """After a sync that finished, or ran out of time, under `owner`'s lease: its folder rows,
    for the next run."""
    folders = [(item_id, state) for item_id, state in rows if state.kind.holds_children][-ROWS_KEPT:]
    with _lock:
        _kept.pop(connection_id, None)
        _kept[connection_id] = (owner, folders)
        total = sum(len(rows) for _, rows in _kept.values())
        while total > ROWS_KEPT:
            _, (_, dropped) = _kept.popitem(last=False)
            total -= len(dropped)


def clear() -> None:
    """Forget everything kept (a test's fresh worker process)."""
    with _lock:
        _kept.clear()
