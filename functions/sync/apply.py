"""Apply phase: bring the mirror to the desired state of every pending item, resumably.

Folders first (a renamed, moved or deleted folder carries its whole subtree: blobs are moved
server-side or deleted, one by one, by item id), then files in chunks: deletes, moves, copies
(bounded concurrency). An item's pending row is removed only after its change is in the mirror
and its mirrored values are written, so a killed worker redoes at most what was in flight.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from functions.errors import Failure, Unavailable
from functions.microsoft.driveitem import Kind
from functions.microsoft.graph import GraphClient
from functions.sync import events, itemrows
from functions.sync import mirror as mirrors
from functions.sync.events import ChangeEvent, ChangeType
from functions.sync.mirror import MOVED, OCCUPIED, STAGING_PREFIX, Listing, Mirror, metadata, staging_path
from functions.sync.plan import (
    Copy,
    Delete,
    ItemState,
    Move,
    Record,
    Resolver,
    Scope,
    move_waves,
    plan_blobs,
    plan_files,
    plan_folder,
)

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

# Concurrent downloads per connection. With 50 ms per request to Microsoft (bench/latency.py, load 2):
# 8 at once 79 files/s, 16 at once 97 (what no latency gives at 8), 32 at once 105. Still 8: with
# 16 a worker killed mid-apply loses twice the copies in flight (test_failures' resume bound).
COPY_THREADS = 8
# Of them, files of more than one block (each holds up to IN_FLIGHT + 1 blocks, 20 MiB): memory
# stays under 4 x 20 MiB whatever the mix.
LARGE_COPY_THREADS = 4
BLOB_THREADS = 16  # concurrent server-side moves and deletes
FILE_CHUNK = 200  # pending files planned together
FOLDER_CHUNK = 100
# In a full enumeration (first sync, or after a 410) nearly every file is copied or checked: a
# chunk with this many copies lists the mirror once (5,000 names a call) instead of probing each
# target (one call each), and a first sync probes nothing. Not in an incremental sync: 60 changes
# in a 100,000-file mirror are 60 probes, not 20 listing calls. Past LISTING_LIMIT names (8 bytes
# each, `mirror.Listing`) the listing would cost more memory than the probes cost calls.
LISTING_MIN_COPIES = 50
LISTING_LIMIT = 500_000
# Folder rows kept from one chunk to the next (about 400 bytes each): what bounds a run's rows
# with FILE_CHUNK, whatever the drive holds.
FOLDERS_KEPT = 20_000
UNAVAILABLE_STREAK = 5  # consecutive failed downloads (Graph down): stop, don't park the whole drive


class OutOfTime(Failure):
    """The time budget is spent: what is done is recorded, the rest stays pending."""


@dataclass
class Stats:
    copied: int = 0
    bytes: int = 0
    moved: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("copied", "bytes", "moved", "deleted", "skipped", "failed")}


class Applier:
    def __init__(self, connection_id: str, graph: GraphClient, *, stats: Stats, out_of_time: Callable[[], bool],
                 check_lease: Callable[[], None], on_park: Callable[[float], None], full: bool = False,
                 scope: Scope | None = None) -> None:
        self.connection_id = connection_id
        self.scope = scope  # a selection: only what it covers belongs in the mirror
        self.graph = graph
        self.mirror = Mirror(connection_id)
        self.rows = itemrows.RowCache(connection_id, dense=full)
        self.stats = stats
        self.out_of_time = out_of_time
        self.check_lease = check_lease
        self.on_park = on_park
        self._failed_ids: set[str] = set()
        self._unavailable = 0
        self._lock = threading.Lock()
        # Mirrored values not written yet, by item id: written in batch transactions before the
        # items' pending rows are removed (one table call per 100 items, not one per item).
        self._unwritten: dict[str, dict[str, Any]] = {}
        self._unlisted: set[str] = set()  # of them, items skipped until now: unlisted once written
        self._listed: Listing | None = None
        self.checkpoints = itemrows.CopyCheckpoints(connection_id)
        self._large_copies = threading.BoundedSemaphore(LARGE_COPY_THREADS)
        self._folders_moved = False  # a folder got a new path: skipped descendants may fit now
        self._listing_taken = not full  # a full enumeration's applier lists the mirror once

    # ----- driver ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Apply every pending item (folders, then files). Raises OutOfTime when the budget ends."""
        self._failed_ids = {str(e["item_id"]) for e in itemrows.failed(self.connection_id) if e.get("item_id")}
        due = itemrows.due_failed(self.connection_id)
        if due:
            self.rows.load(due)
            itemrows.mark_pending(self.connection_id, [self.rows[i] for i in due if i in self.rows])
            itemrows.unpark(self.connection_id, [i for i in due if i not in self.rows])
        while True:
            while ids := itemrows.pending_ids(self.connection_id, folders=True, limit=FOLDER_CHUNK):
                self._step()
                self.apply_folders(ids)
                self.rows = keep_folders(self.rows)  # a drive of a million folders: never all their rows
            if not (self._folders_moved and self._revive_skipped()):
                break
        while ids := itemrows.pending_ids(self.connection_id, folders=False, limit=FILE_CHUNK):
            self._step()
            self.apply_files(ids)
            self.rows = keep_folders(self.rows)

    def _step(self) -> None:
        self.check_lease()
        if self.out_of_time():
            raise OutOfTime()

    # ----- folders --------------------------------------------------------------------------------

    def apply_folders(self, ids: list[str]) -> None:
        self.rows.load_chains(ids)
        resolver = self._resolver()
        finished: list[str] = []
        as_files: list[str] = []
        # Outer folders first: their listing carries the inner ones along.
        ordered = sorted(ids, key=lambda i: len((resolver.mirrored(i) or "").split("/")))
        try:
            self._apply_folders(ordered, finished, as_files)
        finally:
            self._flush_mirrored()
        if as_files:
            self.apply_files(as_files)
        itemrows.done(self.connection_id, finished)

    def _apply_folders(self, ordered: list[str], finished: list[str], as_files: list[str]) -> None:
        for folder_id in ordered:
            row = self.rows.get(folder_id)
            if row is None:
                finished.append(folder_id)
                continue
            if not row.kind.holds_children:
                as_files.append(folder_id)  # a tombstone flagged as a folder we knew as a file
                continue
            if row.kind is Kind.ROOT:
                finished.append(folder_id)
                continue
            self._step()
            change = plan_folder(row, self._resolver())
            if change.old_prefix and change.old_prefix != change.new_path:
                self._relocate(change.old_prefix)
            if change.new_path is not None and change.old_prefix != change.new_path:
                self._folders_moved = True
            if change.resolved.dead:
                self._forget(folder_id)
            elif change.new_path is None:
                self._set_mirrored(row, None, skipped=change.resolved.reason)
                self.stats.add(skipped=1)
            else:
                self._set_mirrored(row, row.name, row.parent_id)
            finished.append(folder_id)

    def _relocate(self, old_prefix: str) -> None:
        """Every blob under a folder's old prefix goes where its own item must be now."""
        blobs = list(self.mirror.list(old_prefix))
        self.rows.load_chains([b.item_id for b in blobs if b.item_id], dense=True)
        resolver = self._resolver()
        moves, deletes = plan_blobs([(b.path, b.item_id) for b in blobs], resolver)
        infos = {b.path: b for b in blobs}

        def move(step: Move) -> None:
            row = self.rows[step.item_id]
            info = infos[step.source]
            blob_meta = metadata(row.id, row.etag, info.quickxorhash, row.ctag)
            outcome = self.mirror.move(step.item_id, step.source, step.target, blob_meta, may_overwrite=self._may_overwrite)
            if outcome == OCCUPIED:
                # Another live item's blob is still there (folders swapping names): wait beside
                # it; the other folder's relocation, or this file's own pending turn, finishes it.
                if self._stage(row, step.source, step.target, blob_meta, info.size, info.quickxorhash):
                    itemrows.mark_pending(self.connection_id, [row])
                return
            if outcome == MOVED:
                if not _is_staging(step.source):  # its move was announced when it was staged
                    self._emit(ChangeType.MOVED, row.id, step.target, step.source, info.size, info.quickxorhash)
                    self.stats.add(moved=1)
                current = self.rows.get(row.id, row)
                if (current.m_name, current.m_parent_id) != (row.name, row.parent_id):
                    self._set_mirrored(row, row.name, row.parent_id, content=current.m_content if current.mirrored else "")

        def delete(step: Delete) -> None:
            row = self.rows[step.item_id]
            if self.mirror.delete(step.path, step.item_id):
                self._emit(ChangeType.DELETED, row.id, step.path, reason=_reason(resolver, row.id))
                self.stats.add(deleted=1)
            resolved = resolver.desired(row.id)
            if resolved.dead:
                self._forget(row.id)  # e.g. a child whose tombstone never came
            else:  # unmirrorable where it is now (path too long, a folder name ending in "."): say why
                self._set_mirrored(row, None, skipped=resolved.reason)

        # A folder may hold 100,000 files: many at once, and stop when the budget ends (the folder
        # stays pending; the next run lists what is still under the old prefix).
        self._parallel(self._budgeted(delete), deletes, BLOB_THREADS)
        for wave in move_waves(moves):
            self._parallel(self._budgeted(move), wave, BLOB_THREADS)

    def _revive_skipped(self) -> bool:
        """Items skipped for where they were (a path too long, a folder name ending in ".") may
        fit where a renamed or moved folder puts them now, and no delta reports them (only the
        folder changed): make the skipped ones that fit pending again. True if any folder was."""
        self._folders_moved = False
        revived: list[ItemState] = []
        for ids in _chunks(itemrows.skipped_ids(self.connection_id), FILE_CHUNK):
            self.rows.load_chains(ids)
            chunk = [row for i in ids if (row := self.rows.get(i)) is not None and row.skipped and not row.deleted]
            # Listed but not skipped (a run stopped between the row's write and the list's): unlist.
            itemrows.unlist_skipped(self.connection_id, [i for i in ids if i not in self.rows
                                                         or not self.rows[i].skipped])
            resolver = self._resolver()
            fits = [row for row in chunk if resolver.desired(row.id).path is not None]
            itemrows.mark_pending(self.connection_id, fits)
            revived += [row for row in fits if row.kind.holds_children]
        return bool(revived)

    # ----- files ----------------------------------------------------------------------------------

    def apply_files(self, ids: list[str]) -> None:
        self.rows.load_chains(ids)
        resolver = self._resolver()
        folders = [i for i in ids if i in self.rows and self.rows[i].kind.holds_children]
        if folders:
            self.apply_folders(folders)
            resolver = self._resolver()
        states = [self.rows[i] for i in ids if i in self.rows and not self.rows[i].kind.holds_children]
        plan = plan_files(states, resolver)
        finished: list[str] = [i for i in ids if i not in self.rows]
        lock = threading.Lock()

        def finish(item_id: str) -> None:
            with lock:
                finished.append(item_id)

        try:
            self._parallel(lambda step: self._delete_file(step), plan.deletes, BLOB_THREADS)
            retry_as_copy: list[Copy] = []
            staged: list[Move] = []

            def move(step: Move, *, last_try: bool = False) -> None:
                outcome = self._move_file(step)
                if outcome == MOVED:
                    finish(step.item_id)
                    return
                row = self.rows[step.item_id]
                if outcome == OCCUPIED and not last_try:
                    # The target still holds another live item's blob (a swap, a cycle of names):
                    # wait beside it, and move on once the others have gone.
                    row_meta = metadata(row.id, row.etag, row.quickxorhash, row.ctag)
                    staging = self._stage(row, step.source, step.target, row_meta, row.size, row.quickxorhash)
                    if staging:
                        with lock:
                            staged.append(Move(row.id, staging, step.target))
                        return
                # Not where the mirror had it (or still blocked): copy it from OneDrive.
                old_path = step.source if outcome == OCCUPIED else None
                with lock:
                    retry_as_copy.append(Copy(row.id, step.target, old_path, row.size or 0, row.quickxorhash, empty=not row.size))

            for wave in move_waves(plan.moves):
                self._parallel(move, wave, BLOB_THREADS)
            self._parallel(lambda step: move(step, last_try=True), staged, BLOB_THREADS)
            for record in plan.records:
                self._record(record)
                finish(record.item_id)
            if len(plan.copies) >= LISTING_MIN_COPIES and not self._listing_taken:
                self._listing_taken = True
                self._listed = self.mirror.paths(LISTING_LIMIT)
            def copy(step: Copy) -> None:
                if self._copy_file(step):
                    finish(step.item_id)

            self._parallel(copy, plan.copies + retry_as_copy, COPY_THREADS)
        finally:
            # Mirrored values first: a pending row goes only once its item's values are written.
            self._flush_mirrored()
            done_ids = set(finished)
            # Deleted files finish with their record (the record forgets or re-places the row).
            itemrows.done(self.connection_id, list(done_ids))

    def _delete_file(self, step: Delete) -> None:
        if self.mirror.delete(step.path, step.item_id):
            self._emit(ChangeType.DELETED, step.item_id, step.path, reason=_reason(self._resolver(), step.item_id))
            self.stats.add(deleted=1)

    def _move_file(self, step: Move) -> str:
        row = self.rows[step.item_id]
        blob_meta = metadata(row.id, row.etag, row.quickxorhash, row.ctag)
        outcome = self.mirror.move(row.id, step.source, step.target, blob_meta, may_overwrite=self._may_overwrite)
        if outcome != MOVED:
            return outcome
        self._set_mirrored(row, row.name, row.parent_id, content=row.content_key)
        if not _is_staging(step.source):  # its move was announced when it was staged
            self._emit(ChangeType.MOVED, row.id, step.target, step.source, row.size, row.quickxorhash)
            self.stats.add(moved=1)
        self._succeeded(row.id)
        return MOVED

    def _may_overwrite(self, occupant: str | None) -> bool:
        """May a move replace the blob of `occupant`? Not when it is a live file that must be
        mirrored: it is elsewhere in the drive now and its own move has yet to come."""
        if not occupant:
            return True
        self.rows.load_chains([occupant])
        row = self.rows.get(occupant)
        if row is None or row.kind is not Kind.FILE:
            return True
        return self._resolver().desired(occupant).path is None

    def _stage(self, row: ItemState, source: str, target: str, blob_meta: dict[str, str], size: int | None,
               quickxorhash: str | None) -> str | None:
        """Move a blob to its staging name beside `target` (see `staging_path`) and record it
        there, under its desired parent. The path, or None if that didn't work either."""
        staging = staging_path(target, row.id)
        if self.mirror.move(row.id, source, staging, blob_meta, may_overwrite=self._may_overwrite) != MOVED:
            return None
        current = self.rows.get(row.id, row)
        self._set_mirrored(row, staging.rpartition("/")[2], row.parent_id, content=current.m_content if current.mirrored else "")
        self._emit(ChangeType.MOVED, row.id, target, source, size, quickxorhash)
        self.stats.add(moved=1)
        return staging

    def _record(self, record: Record) -> None:
        row = self.rows.get(record.item_id)
        if row is None:
            return
        if record.forget:
            self._forget(row.id)
            self._succeeded(row.id)
        elif record.path is None:
            self._set_mirrored(row, None, skipped=record.skipped)
            self.stats.add(skipped=1)
            self._succeeded(row.id)
        elif (row.m_name, row.m_parent_id) != (row.name, row.parent_id):
            self._set_mirrored(row, row.name, row.parent_id, content=row.content_key)
            self._succeeded(row.id)
        else:
            self._succeeded(row.id)

    def _copy_file(self, step: Copy) -> bool:
        """True when the item is finished (copied, unchanged, gone, skipped or parked)."""
        if self.out_of_time():
            return False  # stays pending for the continuation
        self.check_lease()
        row = self.rows[step.item_id]
        with self._large_copies if step.size > mirrors.BLOCK_SIZE else contextlib.nullcontext():
            result = self.mirror.copy(self.graph, step, metadata(row.id, row.etag, row.quickxorhash, row.ctag),
                                      self._listed, out_of_time=self.out_of_time, checkpoints=self.checkpoints)
        if result.outcome == "paused":
            return False  # stays pending: the next message continues after the staged blocks
        if result.outcome in ("copied", "unchanged"):
            with self._lock:
                self._unavailable = 0
            if step.old_path and step.old_path != step.path:
                self.mirror.delete(step.old_path, row.id)
            self._set_mirrored(row, row.name, row.parent_id, content=row.content_key)
            if result.outcome == "copied":
                change = ChangeType.UPDATED if step.old_path else ChangeType.CREATED
                self._emit(change, row.id, step.path, step.old_path if step.old_path != step.path else None, step.size, row.quickxorhash)
                self.stats.add(copied=1, bytes=result.size)
            self._succeeded(row.id)
        elif result.outcome == "gone":
            pass  # deleted since the delta: the next delta brings its tombstone
        elif result.outcome == "malware":
            for path in {step.path, step.old_path or step.path}:
                if self.mirror.delete(path, row.id):
                    self._emit(ChangeType.DELETED, row.id, path)
            self._set_mirrored(row, None, skipped="malware")
            self.stats.add(skipped=1)
            self._succeeded(row.id)
        else:
            delay = itemrows.park(self.connection_id, row.id, result.error or "copy failed")
            self._failed_ids.add(row.id)
            self.stats.add(failed=1)
            log.warning("item parked for retry: %s", result.error, extra={"connection_id": self.connection_id, "item_id": row.id})
            self.on_park(delay.total_seconds())
            if result.outcome == "unavailable":
                with self._lock:
                    self._unavailable += 1
                    if self._unavailable >= UNAVAILABLE_STREAK:
                        raise Unavailable("downloads keep failing: stopping this run")
        return True

    # ----- helpers --------------------------------------------------------------------------------

    def _resolver(self) -> Resolver:
        return Resolver(self.rows, self.connection_id, scope=self.scope)

    def _set_mirrored(self, row: ItemState, name: str | None, parent_id: str | None = None, *, content: str = "",
                      skipped: str = "") -> None:
        entity = itemrows.mirrored_entity(self.connection_id, row.id, name=name, parent_id=parent_id, content=content,
                                          skipped=skipped)
        current = self.rows.get(row.id, row)
        with self._lock:
            self._unwritten[row.id] = entity
            if current.skipped and not skipped:
                self._unlisted.add(row.id)
            elif skipped:
                self._unlisted.discard(row.id)
        self.rows.put(replace(current, m_name=name, m_parent_id=parent_id if name is not None else None, m_content=content,
                              skipped=skipped))

    def _flush_mirrored(self) -> None:
        with self._lock:
            entities, self._unwritten = list(self._unwritten.values()), {}
            unlisted, self._unlisted = list(self._unlisted), set()
        if entities:
            itemrows.write_mirrored(self.connection_id, entities, unlisted=unlisted)

    def _forget(self, item_id: str) -> None:
        current = self.rows.get(item_id)
        was_skipped = bool(current and current.skipped) or item_id in self._unlisted
        with self._lock:
            self._unwritten.pop(item_id, None)  # a late MERGE would bring the removed row back
            self._unlisted.discard(item_id)
        itemrows.forget(self.connection_id, [item_id], skipped=[item_id] if was_skipped else [])
        self.rows.forget(item_id)

    def _succeeded(self, item_id: str) -> None:
        if item_id in self._failed_ids:
            itemrows.unpark(self.connection_id, [item_id])
            self._failed_ids.discard(item_id)

    def _emit(self, change: ChangeType, item_id: str, path: str, old_path: str | None = None,
              size: int | None = None, quickxorhash: str | None = None, reason: str | None = None) -> None:
        if change is ChangeType.DELETED:
            size, quickxorhash = None, None
        events.emit(ChangeEvent(change, self.connection_id, item_id, path, old_path, size, quickxorhash, reason=reason))

    def _budgeted(self, work: Callable[[S], R]) -> Callable[[S], R]:
        def step(arg: S) -> R:
            self._step()
            return work(arg)

        return step

    def _parallel(self, work: Callable[[S], object], steps: Sequence[S], threads: int) -> None:
        """Run `work` on every step; the first exception stops new work and is raised."""
        if not steps:
            return
        if len(steps) == 1:
            work(steps[0])
            return
        with ThreadPoolExecutor(min(threads, len(steps))) as pool:
            futures: list[Future[object]] = [pool.submit(work, step) for step in steps]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [error for error in (f.exception() for f in finished) if error is not None]
            if errors:
                for future in futures:
                    future.cancel()
                wait(futures)
                raise errors[0]


def _reason(resolver: Resolver, item_id: str) -> str | None:
    # Only a selection's own reason is told: "unselected" (the product deselected it).
    return "unselected" if resolver.desired(item_id).reason == "unselected" else None


def _chunks(rows: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _is_staging(path: str) -> bool:
    return path.rpartition("/")[2].startswith(STAGING_PREFIX)


def keep_folders(rows: itemrows.RowCache) -> itemrows.RowCache:
    """Files are planned once per chunk; folders are the ancestors every chunk needs again, up to
    FOLDERS_KEPT of them (the latest read): a drive of a million folders re-reads older ones."""
    kept = itemrows.RowCache(rows.connection_id, dense=rows.dense)
    folders = [(item_id, state) for item_id, state in rows.items() if state.kind.holds_children]
    for item_id, state in folders[-FOLDERS_KEPT:]:
        kept[item_id] = state
    return kept
