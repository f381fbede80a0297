"""One sync of one connection: lock, collect delta pages, apply them, advance the deltaLink.

A pass is COLLECT (follow pages from the stored deltaLink, recording each item's latest state and
marking it pending, checkpointing the nextLink after every page) then APPLY (see sync/apply.py). The
new deltaLink is stored only when nothing is pending any more (applied, or parked in the retry
list): the stored link never skips an unapplied change. A 410/400 on a link starts a full
enumeration that stamps every item it sees; after it is applied, the unstamped items are deleted
and any blob that isn't exactly where a live item belongs is swept (mark and sweep).

Time budget: when it runs out, what is done is checkpointed and a "continue" message is queued.
Throttling longer than the budget becomes a delayed message. A revoked sign-in stops quietly.
Storage errors propagate: the queue retries the message, and nothing was advanced.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from functions import connections, messages
from functions.errors import GraphError, NotFound, ReauthRequired, ResyncRequired, StorageUnavailable, Throttled
from functions.microsoft.driveitem import DELTA_SELECT, Kind
from functions.microsoft.graph import GraphClient, TokenSource
from functions.microsoft.identity import CredentialsRejected
from functions.microsoft.transport import Deadline
from functions.settings import settings
from functions.sync import carryover, forget, itemrows, selection
from functions.sync import state as syncstate
from functions.sync.apply import Applier, OutOfTime, Stats, keep_folders
from functions.sync.mirror import BlobInfo, Mirror
from functions.sync.plan import ItemState, Resolver
from functions.sync.state import Busy, Lease, LeaseLost, Phase
from functions.tokens import app_credentials

log = logging.getLogger(__name__)

FULL_DELTA = f"/me/drive/root/delta?$select={DELTA_SELECT}"
# Stop starting new work when less than this is left of the budget: in-flight work must finish.
BUDGET_MARGIN_SECONDS = 10.0
MAX_PASSES = 10  # rerun requests are coalesced; this only bounds a pathological stream of them
MAX_RESTARTS_PER_RUN = 1  # full enumerations a run starts after a dead link
RESYNC_BACKOFF_SECONDS = 3600  # then the next try, when delta still refuses


class ResyncLoop(GraphError):
    """Delta refuses even a fresh full enumeration (or keeps killing links): back off, report."""


@dataclass
class _Restarts:
    count: int = 0


@dataclass
class RunResult:
    outcome: str  # "done" | "busy" | "continued" | "throttled" | "backoff" | "reauth" | "inactive" | "lost" | "paused"
    passes: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    retry_after: float = 0.0


def run(
    connection_id: str,
    *,
    reason: str = "notification",
    token_source: TokenSource | None = None,
    deadline: Deadline | None = None,
    owner: str | None = None,
    lease_seconds: float | None = None,
) -> RunResult:
    """Bring the connection's mirror up to date (or as far as the time budget allows)."""
    context = {"connection_id": connection_id, "reason": reason}
    connection = connections.get(connection_id)
    if connection is None or connection.state != connections.ConnectionState.ACTIVE:
        log.info("sync skipped: connection not active", extra=context)
        if connection is not None and connection.state == connections.ConnectionState.DISCONNECTED:
            forget.after_disconnect(connection_id)  # in case a lost sync's own clean-up failed
        return RunResult("inactive")
    if paused := app_credentials.pause_seconds():
        # Microsoft refuses the app's client secret: every connection would fail alike. Wait
        # (a delayed message, nothing lost) instead of failing into the poison queue.
        messages.enqueue_sync(connection_id, reason, delay_seconds=math.ceil(paused))
        log.warning("sync paused: Microsoft refuses the app's credentials", extra=context)
        return RunResult("paused", retry_after=paused)
    owner = owner or uuid.uuid4().hex
    lease = syncstate.acquire(connection_id, owner, lease_seconds=lease_seconds or syncstate.LEASE_SECONDS)
    if isinstance(lease, Busy):
        if lease.watch_after:
            # If the holder died, nobody would make the pass we just asked for: check back when
            # its lease has run out (a live holder will have made the pass by then: cheap no-op).
            messages.enqueue_sync(connection_id, "lease-check", delay_seconds=math.ceil(lease.watch_after))
        log.info("sync busy: another pass requested", extra=context)
        return RunResult("busy")

    if deadline is None:
        deadline = Deadline(settings().sync_time_budget_seconds)
    if token_source is None:
        from functions.tokens import vault

        token_source = vault.token_source(connection_id)
    graph = GraphClient(connection_id, token_source, deadline=deadline)
    # The folder rows of this worker's previous sync of the connection, if nobody synced it since.
    carried = carryover.take(connection_id, "" if lease.took_over else lease.rows_by_before)
    stats = Stats()
    passes = 0
    restarts = _Restarts()
    lease.start_heartbeat()
    try:
        if lease.state.phase == Phase.IDLE:
            connections.update(connection_id, connections.Update(last_sync_started_at=connections.utcnow()))
        else:
            # Continuing a sync an earlier message began: the status counts the whole sync. Read
            # now that we hold the lease: the previous holder reported before letting go.
            stats = _counted_so_far(connections.get(connection_id) or connection)
        while True:
            passes += 1
            _one_pass(lease, graph, deadline, stats, restarts, carried)
            if not lease.finish_pass():
                break
            if passes >= MAX_PASSES:
                # The rerun requests keep coming: let go (never keep the lock past our run) and
                # leave the next pass to a new message.
                lease.release()
                messages.enqueue_sync(connection_id, "continue")
                break
        _report(connection_id, stats, finished=True, error="")
        carryover.keep(connection_id, owner, carried.items())
        log.info("sync done", extra={**context, "passes": passes, **stats.as_dict()})
        return RunResult("done", passes, stats.as_dict())
    except OutOfTime:
        _report(connection_id, stats, finished=False, error="")
        carryover.keep(connection_id, owner, carried.items())  # for the continuation queued below
        lease.release()
        messages.enqueue_sync(connection_id, "continue")
        log.info("sync continues in a new message (time budget)", extra={**context, **stats.as_dict()})
        return RunResult("continued", passes, stats.as_dict())
    except Throttled as throttled:
        _report(connection_id, stats, finished=False, error=f"throttled by Microsoft; retrying in {throttled.retry_after:.0f} s")
        lease.release()
        messages.enqueue_sync(connection_id, "throttled", delay_seconds=math.ceil(throttled.retry_after))
        log.warning("sync throttled, re-queued", extra={**context, "retry_after": throttled.retry_after})
        return RunResult("throttled", passes, stats.as_dict(), retry_after=throttled.retry_after)
    except ResyncLoop as error:
        _report(connection_id, stats, finished=False,
                error=f"delta keeps refusing (HTTP {error.status} {error.code}); retrying in {RESYNC_BACKOFF_SECONDS // 60} min")
        lease.release()
        messages.enqueue_sync(connection_id, "resync-backoff", delay_seconds=RESYNC_BACKOFF_SECONDS)
        log.error("delta refused a full enumeration: backing off", extra={**context, "status": error.status})
        return RunResult("backoff", passes, stats.as_dict(), retry_after=RESYNC_BACKOFF_SECONDS)
    except ReauthRequired:
        lease.release()
        # A disconnect also removes the tokens: then the user's verdict stands, not ours.
        if connections.leave_active(connection_id, connections.ConnectionState.REAUTH_REQUIRED,
                                    error="Microsoft sign-in expired or was revoked: the user must connect again"):
            # This sync has ended (whoever marked the connection first, the vault or us): say so,
            # or the status shows a sync started after the last one finished, i.e. still running.
            with contextlib.suppress(NotFound, StorageUnavailable):  # deleted meanwhile, or storage down
                connections.update(connection_id, connections.Update(last_sync_finished_at=connections.utcnow()))
            log.warning("sync stopped: sign-in required", extra=context)
            return RunResult("reauth", passes, stats.as_dict())
        forget.after_disconnect(connection_id)
        return RunResult("lost", passes, stats.as_dict())
    except CredentialsRejected:
        # Recorded app-wide by the vault; this sync waits out the pause like every other.
        delay = max(app_credentials.pause_seconds(), float(app_credentials.BACKOFF_START_SECONDS))
        _report(connection_id, stats, finished=False, error="paused: Microsoft refuses the app's client credentials")
        lease.release()
        messages.enqueue_sync(connection_id, reason, delay_seconds=math.ceil(delay))
        log.warning("sync paused: Microsoft refuses the app's credentials", extra=context)
        return RunResult("paused", passes, stats.as_dict(), retry_after=delay)
    except LeaseLost:
        log.warning("sync stopped: lease lost (another worker, or a disconnect)", extra=context)
        forget.after_disconnect(connection_id)
        return RunResult("lost", passes, stats.as_dict())
    except Exception as error:
        # Storage or Graph failing for good: the message is retried (and finally kept in the poison
        # queue). Everything done so far is recorded; nothing was advanced past it.
        if not (isinstance(error, StorageUnavailable) and error.unreachable):  # these would only wait too
            with contextlib.suppress(Exception):
                _report(connection_id, stats, finished=False, error=_describe(error))
            with contextlib.suppress(Exception):
                lease.release()
        raise
    finally:
        lease.stop_heartbeat()


def _one_pass(lease: Lease, graph: GraphClient, deadline: Deadline, stats: Stats, restarts: _Restarts,
              carried: carryover.Carried) -> None:
    """One pass; `carried`: folder rows known exact when it starts (see sync/carryover.py), and
    when it ends, this pass's."""
    state = lease.state
    out_of_time = lambda: deadline.remaining() < BUDGET_MARGIN_SECONDS  # noqa: E731
    restart = False
    if state.phase == Phase.IDLE:
        selected, delta_link = selection.begin_pass(lease.connection_id, state.delta_link)
        if delta_link and state.last_full_at is None:
            # Connected before reconciliations existed: its first one falls somewhere in the interval.
            interval = timedelta(days=settings().full_reconciliation_days)
            lease.update(last_full_at=syncstate.utcnow() - reconciliation_offset(lease.connection_id, interval))
        # First sync (or after a reconnect), or the periodic reconciliation: enumerate everything
        # (a selection: every selected item) and sweep what isn't in the drive.
        full = not delta_link or reconciliation_due(lease.state)
        if selected and full and delta_link:
            selection.start_over(lease.connection_id)
        start = selection.MARKER if selected else FULL_DELTA if full else delta_link
        lease.update(phase=Phase.COLLECT, next_link=start, delta_link=delta_link,
                     resync_epoch=_new_epoch() if full else "", sweep_step="", sweep_marker="")
    elif state.phase == Phase.COLLECT and lease.took_over:
        # The previous worker died between fetching a page and checkpointing it. Replaying its
        # nextLink is only safe if Graph serves the same page again, which nothing promises:
        # collect again from the last deltaLink (re-recording pages is idempotent; the apply
        # phase's progress is kept). A full enumeration starts over as one: the sweep deletes
        # whatever it did not stamp, so it stamps with an epoch of its own: what only the dead
        # worker's pages saw and was deleted since is in no page of the new enumeration (it lists
        # live items, no tombstones), and the old stamp would keep its row and blob for ever.
        lease.took_over = False
        restart = True
        if not selection.is_marker(state.next_link):
            if state.resync_epoch:
                lease.update(next_link=FULL_DELTA, resync_epoch=_new_epoch())
            else:
                lease.update(next_link=state.delta_link or FULL_DELTA)
    if lease.state.phase == Phase.COLLECT:
        if selection.is_marker(lease.state.next_link):
            carried.clear()  # a selection's collect records rows of its own: carry nothing over it
            pending = selection.collect(
                lease.connection_id, graph, epoch=lease.state.resync_epoch or None, check=lease.check,
                out_of_time=out_of_time, set_epoch=lambda epoch: lease.update(resync_epoch=epoch),
                new_epoch=_new_epoch, restart=restart)
            lease.update(phase=Phase.APPLY, pending_delta_link=pending, next_link="")
        else:
            _collect(lease, graph, out_of_time, restarts, carried)
    if lease.state.phase == Phase.APPLY:
        if not lease.state.skips_listed:
            itemrows.list_skipped_rows(lease.connection_id)  # once: rows skipped before the list existed
            lease.update(skips_listed=True)
        selected = selection.is_marker(lease.state.pending_delta_link)
        scope = selection.scope(lease.connection_id) if selected else None
        scheduled: list[float] = []

        def on_park(delay: float) -> None:
            if not scheduled:  # one retry message per pass is enough: it retries every due item
                scheduled.append(delay)
                _schedule_retry(lease.connection_id, delay)

        applier = Applier(lease.connection_id, graph, stats=stats, out_of_time=out_of_time, check_lease=lease.check,
                          on_park=on_park, full=bool(lease.state.resync_epoch), scope=scope)
        applier.rows.update(carried)
        carried.clear()  # until the pass has ended: what it ends with is carried on, nothing else
        try:
            applier.run()
            finished: dict[str, object] = {}
            if lease.state.resync_epoch:
                _sweep(lease, applier, out_of_time)
                finished = {"last_full_at": syncstate.utcnow(), "sweep_step": "", "sweep_marker": ""}
        finally:
            # The rows the pass ends with. run() keeps them only when it ends done or out of time,
            # and then they are exact: a chunk's writes are flushed, and its copies waited for,
            # before OutOfTime leaves it; the sweep's steps start caches of their own after each
            # write they make beside the applier.
            carried.update(keep_folders(applier.rows))
        if selected:
            selection.commit(lease.connection_id)
        lease.update(phase=Phase.IDLE, delta_link=lease.state.pending_delta_link, pending_delta_link="", resync_epoch="",
                     **finished)

def _collect(lease: Lease, graph: GraphClient, out_of_time: Callable[[], bool], restarts: _Restarts,
             carried: carryover.Carried) -> None:
    connection_id = lease.connection_id
    link = lease.state.next_link or FULL_DELTA
    while True:
        lease.check()
        if out_of_time():
            raise OutOfTime()
        try:
            page = graph.delta_page(link)
        except ResyncRequired as resync:
            # The link is dead (410, or a 400 on a stored one): enumerate everything again, stamping
            # what we see; what isn't stamped is deleted only after the enumeration is applied.
            # A 400 on the full enumeration itself is no dead link, and a run restarts once at
            # most: otherwise a broken answer is a tight loop of requests on every run.
            if (resync.status == 400 and link == FULL_DELTA) or restarts.count >= MAX_RESTARTS_PER_RUN:
                raise ResyncLoop(resync.status, resync.code, str(resync)) from None
            restarts.count += 1
            log.warning("delta resync required (%s)", resync.code, extra={"connection_id": connection_id})
            lease.update(next_link=FULL_DELTA, resync_epoch=_new_epoch())
            link = FULL_DELTA
            continue
        for _ in range(page.without_id):
            log.warning("delta item without an id ignored", extra={"connection_id": connection_id})
        epoch = lease.state.resync_epoch or None
        items = page.items if epoch else carried.to_record(page.items)
        itemrows.record_delta_page(connection_id, items, epoch=epoch)
        carried.record(items)  # the rows it carries are as the table holds them now
        for item in page.items:
            if item.download_url and not item.deleted:
                graph.remember_download_url(item.id, item.download_url)
        if page.next_link:
            lease.update(next_link=page.next_link)  # the checkpoint: a killed worker resumes here
            link = page.next_link
        else:
            lease.update(phase=Phase.APPLY, pending_delta_link=page.delta_link or "", next_link="")
            restarts.count = 0  # that restart worked: a later pass of this run may need its own
            return


# ----- full reconciliation: mark and sweep, blob repair ------------------------------------------

SWEEP_PAGE = 1000  # blobs (and rows) one step of the sweep holds at once, whatever the drive's size


def reconciliation_offset(connection_id: str, interval: timedelta) -> timedelta:
    """A fixed point of the interval per connection: where its first reconciliation falls
    (connections that exist before reconciliations were turned on don't all start at once)."""
    return interval * _fraction(connection_id)


def reconciliation_due(state: syncstate.SyncState, *, now: datetime | None = None) -> bool:
    """Is a full reconciliation of this connection due? Every FULL_RECONCILIATION_DAYS, each
    time 0.75-1.25 of it (drawn per connection and round): connections that were connected
    together drift apart instead of reconciling in step for ever."""
    days = settings().full_reconciliation_days
    if days <= 0 or not state.delta_link or state.last_full_at is None:
        return False
    now = now or syncstate.utcnow()
    period = timedelta(days=days) * (0.75 + 0.5 * _fraction(f"{state.connection_id}:{state.last_full_at.isoformat()}"))
    return now >= state.last_full_at + period


def _fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def _sweep(lease: Lease, applier: Applier, out_of_time: Callable[[], bool]) -> None:
    """After a full enumeration is applied: delete what it didn't contain ("gone"), then every
    blob that no live item's row claims, exactly there and with those bytes ("blobs"), then copy
    again every file whose row claims a blob that wasn't found so ("repair"). Each step streams
    pages of SWEEP_PAGE and checkpoints in the state row, so a big drive spans messages."""
    step = lease.state.sweep_step or "gone"
    if step == "gone":
        _sweep_gone(lease, applier, out_of_time)
        lease.update(sweep_step="blobs", sweep_marker="")
        step = "blobs"
    if step == "blobs":
        _sweep_blobs(lease, applier, out_of_time)
        lease.update(sweep_step="repair", sweep_marker="")
    _repair_blobs(lease, applier, out_of_time)


def _budget(lease: Lease, out_of_time: Callable[[], bool]) -> None:
    lease.check()
    if out_of_time():
        raise OutOfTime()


def _chunks(rows: Iterator[ItemState], size: int) -> Iterator[list[ItemState]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _sweep_gone(lease: Lease, applier: Applier, out_of_time: Callable[[], bool]) -> None:
    """Rows the enumeration didn't stamp: deleted in the drive (a tombstone we never got)."""
    connection_id = lease.connection_id
    for gone in _chunks(itemrows.unseen(connection_id, lease.state.resync_epoch), SWEEP_PAGE):
        _budget(lease, out_of_time)
        itemrows.mark_deleted(connection_id, gone)
        itemrows.mark_pending(connection_id, gone)
        applier.rows = itemrows.RowCache(connection_id)
        applier.run()


def _sweep_blobs(lease: Lease, applier: Applier, out_of_time: Callable[[], bool]) -> None:
    """Every blob, a page at a time: kept (and its row stamped) if a live file's row claims it
    at that path with those bytes, else deleted (strays, leftovers, tampered or lost copies)."""
    connection_id = lease.connection_id
    epoch = lease.state.resync_epoch
    mirror = Mirror(connection_id)
    rows = itemrows.RowCache(connection_id)
    for page, marker in mirror.pages(SWEEP_PAGE, lease.state.sweep_marker or None):
        _budget(lease, out_of_time)
        rows = keep_folders(rows)  # folders are every page's ancestors; files are this page's
        rows.load_chains(blob.item_id for blob in page if blob.item_id)
        resolver = Resolver(rows, connection_id, scope=applier.scope)
        verified = []
        for blob in page:
            if blob.kept:
                continue  # a deselection kept it: nobody's, on purpose
            row = rows.get(blob.item_id or "")
            if row is not None and _claims(row, blob, resolver):
                verified.append(row.id)
                continue
            log.info("sweeping a blob that no live item claims", extra={"connection_id": connection_id})
            mirror.delete_raw(blob.path, blob.etag)
            applier.stats.add(deleted=1)
        if _verifying(lease):
            itemrows.stamp_verified(connection_id, verified, epoch)
        if marker:
            lease.update(sweep_marker=marker)


def _claims(row: ItemState, blob: BlobInfo, resolver: Resolver) -> bool:
    """Does the row say the mirror holds its file at `blob.path`, with the blob's bytes?"""
    if row.deleted or row.kind is not Kind.FILE or not row.mirrored or resolver.mirrored(row.id) != blob.path:
        return False
    kind, _, rest = row.m_content.partition(":")
    value, _, size = rest.rpartition(":")
    if size.isdigit() and int(size) != blob.size:
        return False
    return not (kind == "h" and value != blob.quickxorhash)


def _verifying(lease: Lease) -> bool:
    """A connection's first full sync wrote every blob it claims, verified, just now: checking
    them all again would cost a table write per item for nothing. Every later one checks."""
    return lease.state.last_full_at is not None


def _repair_blobs(lease: Lease, applier: Applier, out_of_time: Callable[[], bool]) -> None:
    """Rows whose blob the sweep did not find as they describe it: copy those files again."""
    connection_id = lease.connection_id
    if not _verifying(lease):
        return
    for missing in _chunks(itemrows.unverified(connection_id, lease.state.resync_epoch), SWEEP_PAGE):
        _budget(lease, out_of_time)
        log.warning("%d mirrored files were missing or wrong: copying them again", len(missing),
                    extra={"connection_id": connection_id})
        itemrows.forget_blobs(connection_id, [row.id for row in missing], lease.state.resync_epoch)
        itemrows.mark_pending(connection_id, missing)
    applier.rows = itemrows.RowCache(connection_id)
    applier.run()


def _schedule_retry(connection_id: str, delay_seconds: float) -> None:
    messages.enqueue_sync(connection_id, "retry-failed", delay_seconds=math.ceil(delay_seconds) + 1)


def _new_epoch() -> str:
    return uuid.uuid4().hex[:16]


def _counted_so_far(connection: connections.Connection) -> Stats:
    return Stats(copied=connection.items_copied, bytes=connection.bytes_copied, moved=connection.items_moved,
                 deleted=connection.items_deleted, skipped=connection.items_skipped)


def _report(connection_id: str, stats: Stats, *, finished: bool, error: str) -> None:
    counts = stats.as_dict()
    connections.update(connection_id, connections.Update(
        last_sync_error=error,
        items_copied=counts["copied"],
        bytes_copied=counts["bytes"],
        items_moved=counts["moved"],
        items_deleted=counts["deleted"],
        items_skipped=counts["skipped"],
        items_failed=len(itemrows.failed(connection_id)),
        last_sync_finished_at=connections.utcnow() if finished else None,
    ))


def _describe(error: Exception) -> str:
    # Type and message only: our typed errors never carry tokens or signed URLs.
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]
