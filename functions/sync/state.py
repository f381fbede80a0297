"""Per-connection sync state (Tables.SYNC_STATE): delta links, checkpoint, phase, and the lock.

The lock is a lease in the row, guarded by the row's ETag: one owner at a time, with an expiry
renewed by a heartbeat, so a killed worker's lease runs out and the retried message resumes from
the checkpoint. A message for a busy connection sets `rerun` (ETag-guarded, so it can't be lost
between the holder's check and its release); the holder makes one more pass before letting go.

`sync_queued` coalesces the webhook's messages: set (ETag-guarded, with the ETag read *before* the
message was sent) only while no worker has touched the row since, and cleared by every pickup in
`acquire`, which writes the row before any delta is read. So while it is set, a message is waiting
whose sync starts after now: a notification may skip sending another. A notification during a
sync finds it cleared, sends a message, and that message's `rerun` makes the one more pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions import storage
from functions.errors import Conflict, Failure

log = logging.getLogger(__name__)

ROW = "state"
LEASE_SECONDS = 60.0
HEARTBEAT_SECONDS = 15.0


class Phase:
    IDLE = "idle"  # up to date as of delta_link
    COLLECT = "collect"  # following pages; next_link is the checkpoint
    APPLY = "apply"  # all pages recorded; pending_delta_link waits until pending items are applied


class LeaseLost(Failure, RuntimeError):
    """Another worker took the connection over (ours expired): stop without writing anything."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class SyncState:
    connection_id: str
    delta_link: str = ""
    next_link: str = ""
    pending_delta_link: str = ""
    phase: str = Phase.IDLE
    resync_epoch: str = ""  # set: a full enumeration is running; sweep what it doesn't stamp
    rerun: bool = False
    # The full reconciliation: when the last one finished, and a sweep's checkpoint ("gone",
    # "blobs" with the listing's continuation marker, "repair"), so a big one spans messages.
    last_full_at: datetime | None = None
    sweep_step: str = ""
    sweep_marker: str = ""
    # Every skipped row is listed in SKIPPED_ITEMS (false: rows may be from before that list).
    skips_listed: bool = False
    lease_owner: str = ""
    # The owner of the last lease taken: every holder stamps it before writing any item row, so a
    # worker that finds its own stamp knows nobody else wrote the connection's rows since.
    rows_by: str = ""
    lease_expires: datetime | None = None
    watch_until: datetime | None = None
    stats: dict[str, int] = field(default_factory=dict)
    etag: str = ""

    FIELDS = ("delta_link", "next_link", "pending_delta_link", "phase", "resync_epoch", "rerun",
              "last_full_at", "sweep_step", "sweep_marker", "skips_listed", "lease_owner", "rows_by", "lease_expires",
              "watch_until")

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> SyncState:
        stats = {k[6:]: int(v) for k, v in entity.items() if k.startswith("stats_") and isinstance(v, int)}
        return cls(
            connection_id=entity["PartitionKey"],
            delta_link=entity.get("delta_link") or "",
            next_link=entity.get("next_link") or "",
            pending_delta_link=entity.get("pending_delta_link") or "",
            phase=entity.get("phase") or Phase.IDLE,
            resync_epoch=str(entity.get("resync_epoch") or ""),
            rerun=bool(entity.get("rerun")),
            last_full_at=_utc(entity.get("last_full_at")),
            sweep_step=str(entity.get("sweep_step") or ""),
            sweep_marker=str(entity.get("sweep_marker") or ""),
            skips_listed=bool(entity.get("skips_listed")),
            lease_owner=entity.get("lease_owner") or "",
            rows_by=str(entity.get("rows_by") or ""),
            lease_expires=_utc(entity.get("lease_expires")),
            watch_until=_utc(entity.get("watch_until")),
            stats=stats,
            etag=entity.etag if isinstance(entity, storage.Row) else "",
        )

    def held_by_other(self, owner: str, now: datetime) -> bool:
        return bool(self.lease_owner) and self.lease_owner != owner and self.lease_expires is not None and self.lease_expires > now


def _table() -> storage.Table:
    return storage.Table(storage.Tables.SYNC_STATE)


def read(connection_id: str) -> SyncState | None:
    row = _table().get(connection_id, ROW)
    return None if row is None else SyncState.from_entity(row)


def _write(connection_id: str, etag: str, values: dict[str, Any]) -> str | None:
    """MERGE `values` if the row is unchanged since `etag`; the new etag, or None on a conflict."""
    try:
        return _table().merge({**values, "PartitionKey": connection_id, "RowKey": ROW}, etag=etag)
    except Conflict:
        return None


# A marker older than this is ignored: a message can wait long in a backlog, and then one more
# message is cheap; the marker only saves the duplicates of a burst.
QUEUED_FRESH = timedelta(minutes=10)


@dataclass(frozen=True)
class QueuedSync:
    pending: bool  # a sync message is waiting that no worker has picked up yet
    etag: str | None  # of the row as read (None: no row yet)


def queued_sync(connection_id: str) -> QueuedSync:
    """Whether a sync message is already waiting for this connection (one quick read)."""
    row = _table().get(connection_id, ROW, quick=True)
    if row is None:
        return QueuedSync(False, None)
    marked_at = _utc(row.get("sync_queued_at"))
    pending = bool(row.get("sync_queued")) and marked_at is not None and utcnow() - marked_at < QUEUED_FRESH
    return QueuedSync(pending, row.etag)


def mark_sync_queued(connection_id: str, etag: str | None) -> bool:
    """After sending a message: remember it is waiting, unless the row changed since `etag` was
    read, or (etag None) was created since: a worker may have picked the message up already. Best
    effort: False changes nothing but the coalescing of the next notification."""
    from functions.errors import StorageError

    marker = {"sync_queued": True, "sync_queued_at": utcnow()}
    try:
        if etag is None:
            _table().insert({"PartitionKey": connection_id, "RowKey": ROW, "phase": Phase.IDLE, **marker})
            return True
        return _write(connection_id, etag, marker) is not None
    except Conflict:
        return False
    except StorageError:
        log.info("could not mark the sync as queued", extra={"connection_id": connection_id}, exc_info=True)
        return False


@dataclass(frozen=True)
class Busy:
    """Another worker holds the connection; `watch_after` > 0: enqueue a check for when its lease
    runs out, in case it died (at most one such check is pending at a time)."""

    watch_after: float


class Lease:
    """The connection's lock, held by `owner`; every write to the state row goes through it."""

    def __init__(self, state: SyncState, owner: str, lease_seconds: float, *, took_over: bool = False,
                 rows_by_before: str = "") -> None:
        self.state = state
        self.owner = owner
        self.took_over = took_over  # the previous holder died holding the lease
        self.rows_by_before = rows_by_before  # the previous holder's stamp (`SyncState.rows_by`)
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def connection_id(self) -> str:
        return self.state.connection_id

    @property
    def lost(self) -> bool:
        return self._lost

    def update(self, **values: Any) -> None:
        """Write fields of the state row, as long as we still hold the lease."""
        with self._lock:
            if self._lost:
                raise LeaseLost(self.connection_id)
            for _ in range(20):
                etag = _write(self.connection_id, self.state.etag, values)
                if etag is not None:
                    self.state.etag = etag
                    for name, value in values.items():
                        if name.startswith("stats_"):
                            self.state.stats[name[6:]] = value
                        elif hasattr(self.state, name):
                            setattr(self.state, name, value)
                    return
                # Someone wrote the row (a busy message setting `rerun`): still ours?
                fresh = read(self.connection_id)
                if fresh is None or fresh.lease_owner != self.owner:
                    self._lost = True
                    raise LeaseLost(self.connection_id)
                fresh.stats = {**fresh.stats}
                self.state = fresh
            raise LeaseLost(self.connection_id)

    def renew(self) -> None:
        self.update(lease_expires=utcnow() + timedelta(seconds=self.lease_seconds))

    def start_heartbeat(self, interval: float | None = None) -> None:
        interval = interval or min(HEARTBEAT_SECONDS, self.lease_seconds / 4)

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    self.renew()
                except LeaseLost:
                    log.warning("sync lease lost", extra={"connection_id": self.connection_id})
                    return
                except Exception:  # storage hiccup: the next beat tries again before the lease runs out
                    log.warning("sync lease renewal failed", extra={"connection_id": self.connection_id}, exc_info=True)

        self._heartbeat = threading.Thread(target=beat, name=f"lease:{self.connection_id}", daemon=True)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)

    def check(self) -> None:
        if self._lost:
            raise LeaseLost(self.connection_id)

    def finish_pass(self) -> bool:
        """Called when a pass is complete: True if a rerun was requested meanwhile (the flag is
        consumed and the lease kept: make one more pass), else the lease is released."""
        def decide(row: storage.Row | None) -> storage.Write[tuple[SyncState, dict[str, Any]]]:
            fresh = None if row is None else SyncState.from_entity(row)
            if fresh is None or fresh.lease_owner != self.owner:
                self._lost = True
                raise LeaseLost(self.connection_id)
            if fresh.rerun:
                values: dict[str, Any] = {"rerun": False, "lease_expires": utcnow() + timedelta(seconds=self.lease_seconds)}
            else:
                values = {"lease_owner": "", "lease_expires": None}
            return storage.Write(values, (fresh, values))

        with self._lock:
            try:
                swapped = storage.swap(_table(), self.connection_id, ROW, decide, attempts=20)
            except Conflict:
                raise LeaseLost(self.connection_id) from None
            fresh, values = swapped.result
            rerun = fresh.rerun
            fresh.etag = swapped.etag or ""
            self.state = fresh
            for name, value in values.items():
                setattr(self.state, name, value)
            return rerun

    def release(self) -> None:
        """Let go without consuming `rerun` (a continuation message will see it). Best effort."""
        def decide(row: storage.Row | None) -> storage.Write[None] | storage.Keep[None]:
            if row is None or (row.get("lease_owner") or "") != self.owner:
                return storage.Keep(None)
            return storage.Write({"lease_owner": "", "lease_expires": None}, None)

        with self._lock:
            if self._lost:
                return
            with contextlib.suppress(Conflict):
                if storage.swap(_table(), self.connection_id, ROW, decide, attempts=20).etag is not None:
                    self._lost = True  # no longer ours: any further write must fail


def acquire(connection_id: str, owner: str, *, lease_seconds: float = LEASE_SECONDS) -> Lease | Busy:
    """Take the connection's lock, or record that another pass is needed and report it busy."""

    def decide(row: storage.Row | None) -> storage.Write[Lease | Busy] | storage.Keep[Lease | Busy]:
        # No row yet: a first sync; it is created, idle, with the lease in it.
        state = SyncState(connection_id) if row is None else SyncState.from_entity(row)
        now = utcnow()
        # Every pickup writes the row, clearing `sync_queued`: see the module's docstring.
        if state.held_by_other(owner, now):
            values: dict[str, Any] = {"rerun": True, "sync_queued": False}
            watch_after = 0.0
            if state.watch_until is None or state.watch_until <= now:
                expires = state.lease_expires or now
                watch_after = max(1.0, (expires - now).total_seconds() + 1.0)
                values["watch_until"] = now + timedelta(seconds=watch_after)
            # else: rerun recorded and a check on its way already; the write still marks the pickup
            return storage.Write(values, Busy(watch_after))
        took_over = bool(state.lease_owner) and state.lease_owner != owner
        rows_by_before = state.rows_by
        values = {"lease_owner": owner, "rows_by": owner, "lease_expires": now + timedelta(seconds=lease_seconds),
                  "rerun": False, "sync_queued": False}
        if row is None:
            values["phase"] = Phase.IDLE
            values["skips_listed"] = state.skips_listed = True  # a new connection: nothing skipped yet
        state.lease_owner, state.rows_by, state.lease_expires, state.rerun = owner, owner, values["lease_expires"], False
        return storage.Write(values, Lease(state, owner, lease_seconds, took_over=took_over,
                                           rows_by_before=rows_by_before))

    try:
        swapped = storage.swap(_table(), connection_id, ROW, decide, attempts=50)
    except Conflict:
        raise RuntimeError(f"could not lock the sync state of {connection_id}: too much contention") from None
    if isinstance(swapped.result, Lease):
        swapped.result.state.etag = swapped.etag or ""
    return swapped.result
