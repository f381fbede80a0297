"""The sync engine's tables: the id map (DRIVE_ITEMS), the work list (PENDING_ITEMS), the retry
list (FAILED_ITEMS) and the list of skipped items (SKIPPED_ITEMS). PartitionKey = connection id
everywhere, so disconnect can wipe a connection.

Delta collect writes only *desired* fields (MERGE), apply writes only *mirrored* fields (MERGE):
neither clobbers the other, and a resumed collect or apply is idempotent.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from functions import storage
from functions.microsoft.driveitem import DriveItem, Kind
from functions.sync.plan import ItemState

log = logging.getLogger(__name__)

BATCH = 100  # Table batch transactions: at most 100 entities of one partition
READ_THREADS = 16
# Many ids are read as RowKey ranges of RANGE_READ_IDS ids, one query each: in a full enumeration
# (or a big folder's listing) they are nearly consecutive keys. A page holds at most SLACK rows
# per id, so a sparse range costs one bounded page, then point reads for what it didn't settle.
RANGE_READ_MIN = 20
# Not dense (an incremental pass): the changed ids are scattered over the whole drive, and how many
# a range page settles depends on the drive's size; point reads cost one call per id whatever the
# drive holds. Ranges only for many ids at once, or where a caller asks (a folder's relocation
# lists all its blobs: by point reads, a short budget could be spent before the first move).
RANGE_READ_SPARSE_MIN = 1000
RANGE_READ_IDS = 300
RANGE_READ_SLACK = 3


def row_key(item_id: str) -> str:
    # RowKey forbids / \ # ? and control characters; item ids come from a server we don't control.
    return quote(item_id, safe="!-_.~")


def _items() -> storage.Table:
    return storage.Table(storage.Tables.DRIVE_ITEMS)


def _pending() -> storage.Table:
    return storage.Table(storage.Tables.PENDING_ITEMS)


def _failed() -> storage.Table:
    return storage.Table(storage.Tables.FAILED_ITEMS)


def _skips() -> storage.Table:
    return storage.Table(storage.Tables.SKIPPED_ITEMS)


def _upserts(entities: Iterable[dict[str, Any]]) -> list[storage.Op]:
    return [storage.Op("upsert", entity) for entity in entities]


# ----- collect ---------------------------------------------------------------------------------


def last_of_each(items: Iterable[DriveItem]) -> list[DriveItem]:
    """A delta page's items, the last report of each id, in the order of those last reports."""
    latest: dict[str, DriveItem] = {}
    for item in items:
        latest.pop(item.id, None)
        latest[item.id] = item
    return list(latest.values())


def record_delta_page(connection_id: str, items: Iterable[DriveItem], *, epoch: str | None) -> int:
    """Upsert each item's latest state and mark it pending. Repeats on a page: the last one wins."""
    latest = last_of_each(items)
    if not latest:
        return 0
    desired_ops = []
    pending_ops = []
    for item in latest:
        entity = _desired_entity(item)
        entity["PartitionKey"] = connection_id
        if epoch is not None:
            entity["seen_epoch"] = epoch
        desired_ops.append(storage.Op("upsert", entity))
        pending_ops.append(storage.Op("upsert", {
            "PartitionKey": connection_id,
            "RowKey": row_key(item.id),
            "item_id": item.id,
            "folder": item.kind.holds_children or (item.deleted and item.kind is Kind.FOLDER),
        }))
    # The id map first: a pending row must never point at a row that doesn't exist.
    _items().batch(desired_ops)
    _pending().batch(pending_ops)
    return len(latest)


def _desired_entity(item: DriveItem) -> dict[str, Any]:
    """What `record_delta_page` merges into an item's row: its desired values."""
    entity: dict[str, Any] = {"RowKey": row_key(item.id), "item_id": item.id, "deleted": item.deleted, "etag": item.etag}
    if not item.deleted:
        # A tombstone's name, size and parent are unreliable: keep what we knew (microsoft.md §3).
        entity.update(
            kind=str(item.kind),
            name=item.name or "",
            parent_id=item.parent_id or "",
            size=storage.Int64(item.size if item.size is not None else -1),
            quickxorhash=item.quickxorhash or "",
            ctag=item.ctag,
            malware=item.malware,
        )
    else:
        entity["tomb_kind"] = str(item.kind)  # used only when we never saw the item alive
    return entity


def recorded(state: ItemState, item: DriveItem) -> ItemState | None:
    """`state` (a row as read) once `record_delta_page` has merged `item` into it: what reading
    the row again would give, without reading it. None for a tombstone: its kind is the row's
    if it was ever seen alive, else the tombstone's, and the state does not say which."""
    if item.deleted:
        return None
    before = {"RowKey": row_key(state.id), "item_id": state.id, "kind": str(state.kind), "name": state.name or "",
              "parent_id": state.parent_id or "", "size": -1 if state.size is None else state.size,
              "quickxorhash": state.quickxorhash or "", "ctag": state.ctag, "malware": state.malware}
    merged = _state({**before, **_desired_entity(item)})
    return replace(merged, m_name=state.m_name, m_parent_id=state.m_parent_id, m_content=state.m_content,
                   skipped=state.skipped)


# ----- reading rows ----------------------------------------------------------------------------


def _state(entity: dict[str, Any]) -> ItemState:
    kind_text = entity.get("kind") or entity.get("tomb_kind") or "file"
    try:
        kind = Kind(kind_text)
    except ValueError:
        kind = Kind.FILE
    size = entity.get("size")
    return ItemState(
        id=entity.get("item_id") or unquote(entity["RowKey"]),
        kind=kind,
        name=entity.get("name") or None,
        parent_id=entity.get("parent_id") or None,
        size=size if isinstance(size, int) and size >= 0 else None,
        quickxorhash=entity.get("quickxorhash") or None,
        ctag=entity.get("ctag") or "",
        etag=entity.get("etag") or "",
        deleted=bool(entity.get("deleted")),
        malware=bool(entity.get("malware")),
        m_name=entity.get("m_name") if entity.get("m_present") else None,
        m_parent_id=entity.get("m_parent_id") if entity.get("m_present") else None,
        m_content=entity.get("m_content") or "",
        skipped=entity.get("skipped") or "",
    )


class RowCache(dict[str, ItemState]):
    """Rows read during one run, by item id. One worker owns a connection at a time (the lease),
    so what it wrote itself is what the table holds."""

    def __init__(self, connection_id: str, *, dense: bool = True) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.dense = dense  # the ids asked for are most of the drive's (a full enumeration)
        self._lock = threading.Lock()
        self._missing: set[str] = set()
        self.aliases: dict[str, str] = {}  # a parent id as delta spelt it -> the row's id (case differs)

    def load(self, item_ids: Iterable[str], *, dense: bool | None = None) -> None:
        """Read the rows not cached yet: a dense run of keys (an initial sync's chunk) in one
        range query, the rest by point reads, concurrently. `dense` overrides the cache's own."""
        wanted = [i for i in dict.fromkeys(item_ids) if i and i not in self and i not in self._missing]
        dense = self.dense if dense is None else dense
        if len(wanted) >= (RANGE_READ_MIN if dense else RANGE_READ_SPARSE_MIN):
            ordered = sorted(wanted, key=row_key)
            slices = [ordered[start:start + RANGE_READ_IDS] for start in range(0, len(ordered), RANGE_READ_IDS)]
            with ThreadPoolExecutor(min(READ_THREADS, len(slices))) as pool:
                wanted = [item_id for unsettled in pool.map(self._load_range, slices) for item_id in unsettled]
        if not wanted:
            return
        if len(wanted) == 1:
            found = [_read(self.connection_id, wanted[0])]
        else:
            with ThreadPoolExecutor(min(READ_THREADS, len(wanted))) as pool:
                found = list(pool.map(lambda item_id: _read(self.connection_id, item_id), wanted))
        with self._lock:
            for item_id, state in zip(wanted, found, strict=True):
                if state is None:
                    self._missing.add(item_id)
                else:
                    self[item_id] = state

    def _load_range(self, wanted: list[str]) -> list[str]:
        """One page of the RowKey range the ids span; returns the ids it could not settle."""
        keys = {row_key(i): i for i in wanted}
        low, high = min(keys), max(keys)
        page_size = min(1000, RANGE_READ_SLACK * len(keys))
        page, more = _items().first_page("PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                                         {"pk": self.connection_id, "low": low, "high": high}, page_size=page_size)
        # A page with a continuation may stop short of `high` (or be empty): ids past its last key
        # are still unknown.
        covered = high if not more else (page[-1]["RowKey"] if page else "")
        with self._lock:
            for entity in page:
                item_id = keys.get(entity["RowKey"])
                if item_id is not None:
                    self[item_id] = _state(entity)
            unsettled = []
            for key, item_id in keys.items():
                if item_id in self:
                    continue
                if key <= covered:
                    self._missing.add(item_id)
                else:
                    unsettled.append(item_id)
        return unsettled

    def load_chains(self, item_ids: Iterable[str], *, dense: bool | None = None) -> None:
        """The rows of these items and of all their ancestors, desired and mirrored (`dense`: of
        the items themselves, as in `load`)."""
        # Each level is a set: siblings share a parent, and parent_id usually equals m_parent_id;
        # a list would double at every level (2^depth ids for a folder 30 levels down).
        frontier = list(dict.fromkeys(item_ids))
        seen = set(frontier)
        for depth in range(1000):
            if depth == 0 and dense is not None:
                self.load(frontier, dense=dense)
            else:
                self.load(frontier)
            if depth:
                frontier += self._load_case_variants([i for i in frontier if i in self._missing])
            nxt: dict[str, None] = {}
            for item_id in frontier:
                row = self.get(item_id)
                if row is None:
                    continue
                for parent in (row.parent_id, row.m_parent_id):
                    if parent and parent not in seen and parent not in self and parent not in self._missing:
                        nxt[parent] = None
            if not nxt:
                return
            seen.update(nxt)
            frontier = list(nxt)

    def _load_case_variants(self, parent_ids: list[str]) -> list[str]:
        """Parents not found under their exact id: read their case variants (the planner's
        Resolver then uses what matched instead of declaring the subtree orphaned)."""
        from functions.sync.plan import case_variants

        found = []
        for parent_id in parent_ids:
            if parent_id in self.aliases:
                continue
            variants = case_variants(parent_id)
            self.load(variants)
            hit = next((v for v in variants if v in self), None)
            if hit is not None:
                log.info("parent id found only in another case", extra={"connection_id": self.connection_id,
                                                                          "item_id": parent_id, "matched": hit})
                self.aliases[parent_id] = hit
                found.append(hit)
        return found

    def put(self, state: ItemState) -> None:
        with self._lock:
            self[state.id] = state
            self._missing.discard(state.id)

    def forget(self, item_id: str) -> None:
        with self._lock:
            self.pop(item_id, None)
            self._missing.add(item_id)


def _read(connection_id: str, item_id: str) -> ItemState | None:
    row = _items().get(connection_id, row_key(item_id))
    return None if row is None else _state(row)


# ----- apply: mirrored values, pending list ----------------------------------------------------


def mirrored_entity(connection_id: str, item_id: str, *, name: str | None, parent_id: str | None, content: str = "",
                    skipped: str = "") -> dict[str, Any]:
    """Where the mirror now holds an item (name None: nowhere; `skipped`: why not)."""
    return {
        "PartitionKey": connection_id,
        "RowKey": row_key(item_id),
        "m_present": name is not None,
        "m_name": name or "",
        "m_parent_id": parent_id or "",
        "m_content": content,
        "skipped": skipped,
    }


def write_mirrored(connection_id: str, entities: list[dict[str, Any]], *, unlisted: Iterable[str] = ()) -> None:
    """Many `mirrored_entity` values of one partition, in batch transactions (one RowKey each).
    `unlisted`: items among them that were skipped and no longer are."""
    # The skipped ones are listed before their rows say so, and the others unlisted only after:
    # whatever stops us in between, every skipped row is listed (and a listed row may not be
    # skipped any more: `skipped_ids` says who checks).
    _list_skipped(connection_id, [e["RowKey"] for e in entities if e["skipped"]])
    _items().batch(_upserts(entities))
    _skips().delete_rows(connection_id, [row_key(i) for i in unlisted])


def forget(connection_id: str, item_ids: list[str], *, skipped: Iterable[str] = ()) -> None:
    """Remove dead items from the id map (`skipped`: those of them that were skipped)."""
    _items().delete_rows(connection_id, [row_key(i) for i in item_ids])
    _skips().delete_rows(connection_id, [row_key(i) for i in skipped])


def pending_ids(connection_id: str, *, folders: bool, limit: int) -> list[str]:
    query = "PartitionKey eq @pk and folder eq @folder"
    found = []
    for entity in _pending().query(query, {"pk": connection_id, "folder": folders}, select=["item_id", "RowKey"],
                                   page_size=min(limit, 1000)):
        found.append(entity.get("item_id") or unquote(entity["RowKey"]))
        if len(found) >= limit:
            break
    return found


def has_pending(connection_id: str) -> bool:
    for _ in _pending().query("PartitionKey eq @pk", {"pk": connection_id}, select=["RowKey"], page_size=1):
        return True
    return False


def mark_pending(connection_id: str, states: list[ItemState]) -> None:
    _pending().batch(_upserts({"PartitionKey": connection_id, "RowKey": row_key(s.id), "item_id": s.id,
                               "folder": s.kind.holds_children} for s in states))


class CopyCheckpoints:
    """A long copy's checkpoint (sync/mirror.py `Staged`), kept in the item's pending row: it
    goes with the row when the item is done."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id

    def load(self, item_id: str) -> str | None:
        row = _pending().get(self.connection_id, row_key(item_id))
        value = row.get("copy_checkpoint") if row is not None else None
        return value if isinstance(value, str) and value else None

    def save(self, item_id: str, value: str) -> None:
        # Insert or merge: collect's own merge of the pending row keeps it (a changed file's
        # checkpoint names other bytes and is ignored).
        _pending().upsert({"PartitionKey": self.connection_id, "RowKey": row_key(item_id), "item_id": item_id,
                           "folder": False, "copy_checkpoint": value})


def done(connection_id: str, item_ids: list[str]) -> None:
    # Rows already gone (a resumed apply) are fine.
    _pending().delete_rows(connection_id, [row_key(i) for i in item_ids])


# ----- resync: mark and sweep, in pages ----------------------------------------------------------
# A full reconciliation visits every row of a drive that may hold a million items: these stream
# the partition a page at a time (only the columns the sweep reads), never all of it at once.

SCAN_PAGE = 1000
_SCAN_COLUMNS = ["RowKey", "item_id", "kind", "tomb_kind", "name", "parent_id", "size", "quickxorhash", "ctag",
                 "etag", "deleted", "malware", "m_present", "m_name", "m_parent_id", "m_content", "skipped",
                 "seen_epoch", "blob_epoch"]


def _scan(connection_id: str) -> Iterator[dict[str, Any]]:
    yield from _items().query("PartitionKey eq @pk", {"pk": connection_id}, select=_SCAN_COLUMNS, page_size=SCAN_PAGE)


def unseen(connection_id: str, epoch: str) -> Iterator[ItemState]:
    """Rows the last full enumeration did not contain (not stamped with its epoch)."""
    for entity in _scan(connection_id):
        if entity.get("seen_epoch") != epoch and not entity.get("deleted"):
            yield _state(entity)


def unverified(connection_id: str, epoch: str) -> Iterator[ItemState]:
    """Live files whose row says the mirror holds them, but whose blob this sweep did not find
    where the row says, with the bytes the row says (not stamped by `stamp_verified`)."""
    for entity in _scan(connection_id):
        if (entity.get("m_present") and not entity.get("deleted") and entity.get("kind") == "file"
                and entity.get("blob_epoch") != epoch):
            yield _state(entity)


def stamp_verified(connection_id: str, item_ids: list[str], epoch: str) -> None:
    """These items' blobs were found as their rows describe them, in this sweep."""
    _items().batch(_upserts({"PartitionKey": connection_id, "RowKey": row_key(i), "blob_epoch": epoch}
                            for i in dict.fromkeys(item_ids)))


def forget_blobs(connection_id: str, item_ids: list[str], epoch: str) -> None:
    """The mirror does not hold these items after all: copy them again. Stamped, so that a sweep
    resumed after the copies does not take them for missing again."""
    entities = [{**mirrored_entity(connection_id, i, name=None, parent_id=None), "blob_epoch": epoch}
                for i in dict.fromkeys(item_ids)]
    _items().batch(_upserts(entities))


def mark_deleted(connection_id: str, states: list[ItemState]) -> None:
    _items().batch(_upserts({"PartitionKey": connection_id, "RowKey": row_key(s.id), "deleted": True} for s in states))


def all_rows(connection_id: str) -> Iterator[ItemState]:
    for entity in _scan(connection_id):
        yield _state(entity)


# ----- skipped items ---------------------------------------------------------------------------


# The id map has no index but its keys: a filter on `skipped` would read every row of the drive
# (a table scan on Azure Storage) whenever a folder is created or moved. SKIPPED_ITEMS lists them
# instead (one row per skipped item, same keys), so that finding them costs what they are.


def _list_skipped(connection_id: str, keys: list[str]) -> None:
    _skips().batch(_upserts({"PartitionKey": connection_id, "RowKey": key, "item_id": unquote(key)} for key in keys))


def skipped_ids(connection_id: str) -> Iterator[str]:
    """The items listed as skipped: each one whose row says so, and perhaps a few whose row
    says otherwise or is gone (a run stopped between the two writes): check the row."""
    for entity in _skips().query("PartitionKey eq @pk", {"pk": connection_id}, select=["item_id", "RowKey"],
                                 page_size=SCAN_PAGE):
        yield entity.get("item_id") or unquote(entity["RowKey"])


def unlist_skipped(connection_id: str, item_ids: list[str]) -> None:
    """Listed items that are not skipped after all (only while holding the lease: a sync may be
    skipping them again right now)."""
    _skips().delete_rows(connection_id, [row_key(i) for i in item_ids])


def list_skipped_rows(connection_id: str) -> int:
    """List every skipped row of the id map, reading all of it: once per connection, for the rows
    skipped before SKIPPED_ITEMS existed. How many."""
    keys = [e["RowKey"] for e in _items().query("PartitionKey eq @pk and skipped ne ''", {"pk": connection_id},
                                                 select=["RowKey"], page_size=SCAN_PAGE)]
    _list_skipped(connection_id, keys)
    return len(keys)


def skipped(connection_id: str, *, limit: int) -> tuple[list[tuple[ItemState, str]], bool]:
    """Up to `limit` rows the apply phase skipped, with the reason; True when there are more."""
    found: list[tuple[ItemState, str]] = []
    rows = RowCache(connection_id, dense=False)
    listed = skipped_ids(connection_id)
    while chunk := list(itertools.islice(listed, limit + 1)):
        rows.load(chunk)
        for item_id in chunk:
            row = rows.get(item_id)
            if row is None or row.deleted or not row.skipped:
                continue
            if len(found) == limit:
                return found, True
            found.append((row, row.skipped))
    return found, False


# ----- failed items ----------------------------------------------------------------------------

RETRY_BASE = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=24)


def park(connection_id: str, item_id: str, error: str, *, now: datetime | None = None) -> timedelta:
    """Put an item on the retry list (its pending row is removed by the caller). Returns the delay."""
    now = now or datetime.now(UTC)
    previous = _failed().get(connection_id, row_key(item_id))
    attempts = int(previous.get("attempts") or 0) if previous is not None else 0
    delay: timedelta = min(RETRY_MAX, RETRY_BASE * (1 << max(0, min(attempts, 10))))
    _failed().upsert({
        "PartitionKey": connection_id,
        "RowKey": row_key(item_id),
        "item_id": item_id,
        "error": error[:500],
        "attempts": attempts + 1,
        "failed_at": now,
        "retry_at": now + delay,
    }, replace=True)
    return delay


def failed(connection_id: str) -> list[dict[str, Any]]:
    return [dict(e) for e in _failed().query("PartitionKey eq @pk", {"pk": connection_id})]


def due_failed(connection_id: str, *, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    due = []
    for entity in failed(connection_id):
        retry_at = entity.get("retry_at")
        if isinstance(retry_at, datetime) and retry_at.tzinfo is None:
            retry_at = retry_at.replace(tzinfo=UTC)
        if retry_at is None or retry_at <= now:
            due.append(entity.get("item_id") or unquote(entity["RowKey"]))
    return due


def unpark(connection_id: str, item_ids: list[str]) -> None:
    _failed().delete_rows(connection_id, [row_key(i) for i in item_ids])
