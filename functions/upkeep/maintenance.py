"""Upkeep of every connection: subscriptions that never lapse, tokens that never idle out, a daily safety-net sync
(half-hourly polling for app-folder connections, which Graph does not let us subscribe to).

The timer only decides and fans out: it scans the connection rows once, picks what each connection
needs, and queues small tasks with visibility delays that pace them. Workers then do one task each.
Subscription writes are paced to `subscription_writes_per_20s` (Graph allows 1,000 per 20 s per app,
and every personal account shares one tenant): task i becomes visible at second
`floor(i * 20 / limit)`, so any 20-s window holds at most `limit` of them. A marker on the connection
row (`<kind>_due_at`) says a task is already on its way: the next run neither repeats it nor starts
its own pacing before the last one queued.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from functions import connections, messages, storage
from functions.connections import Connection, ConnectionState
from functions.errors import ReauthRequired, StorageError, SubscriptionRefused, Throttled
from functions.messages import BadMessage, MaintenanceTask
from functions.settings import settings

log = logging.getLogger(__name__)

RENEW = "renew_subscription"
REAUTHORIZE = "reauthorize_subscription"
RECREATE = "recreate_subscription"
REFRESH_TOKEN = "refresh_token"
SAFETY_SYNC = "safety_sync"  # not a task: a sync request, paced like one

# Refresh tokens die after 90 days without use; refreshing idle ones weekly keeps them far from it.
IDLE_TOKEN_AGE = timedelta(days=7)
# Notifications get lost (Graph outages, our own): every drive gets a delta at least once a day.
SAFETY_SYNC_AGE = timedelta(hours=24)
# App-folder connections have no subscription (Graph refuses one to that scope): every run of the
# timer (MAINTENANCE_SCHEDULE, half-hourly by default) polls those not synced in the last 20 minutes.
APP_FOLDER_POLL_AGE = timedelta(minutes=20)
# A task still not done this long after it became visible is presumed lost (poisoned) and queued again.
TASK_GRACE = timedelta(minutes=30)
# Work paced further ahead than this is left to the next run (which re-reads the rows anyway).
HORIZON_SECONDS = 3600
# And no run queues more than this many tasks in all, in `kinds()` order (renewals first: a lapsed
# subscription loses notifications; a late safety sync loses nothing). At ~1.75 ms a task plus the
# scan, a run with 1M connections all due stays near 5 minutes, inside the 10-minute timeout.
MAX_TASKS_PER_RUN = 100_000
WINDOW_SECONDS = 20
TOKEN_REFRESHES_PER_20S = 200  # the token endpoint's limits are unpublished: stay modest
SAFETY_SYNCS_PER_20S = 2000
SEND_THREADS = 8  # the storage SDK pools 10 connections per client
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Pace:
    """At most `per_window` items per `window` seconds: item i waits floor(i * window / per_window) s."""

    per_window: int
    window: int = WINDOW_SECONDS

    def delay(self, position: int) -> int:
        return (position * self.window) // self.per_window


@dataclass(frozen=True)
class Kind:
    name: str  # the action, and the marker field `<name>_due_at`
    pace: Pace

    @property
    def marker(self) -> str:
        return f"{self.name}_due_at"


@dataclass
class Plan:
    """What one timer run queues: (connection_id, delay_seconds) per kind, and what it left for later."""

    now: datetime
    work: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)
    skipped_inactive: int = 0

    def count(self, kind: str) -> int:
        return len(self.work.get(kind, []))


def kinds() -> tuple[Kind, ...]:
    return (
        Kind(RENEW, Pace(settings().subscription_writes_per_20s)),
        Kind(REFRESH_TOKEN, Pace(TOKEN_REFRESHES_PER_20S)),
        Kind(SAFETY_SYNC, Pace(SAFETY_SYNCS_PER_20S)),
    )


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def needs(kind: str, connection: Connection, now: datetime, renewal_window: timedelta) -> datetime | None:
    """When `connection` started needing `kind` (for ordering: most overdue first), or None if it doesn't."""
    if kind == RENEW:
        if settings().app_folder_only:
            return None  # nothing to renew: polled instead (SAFETY_SYNC)
        retry_at = connection.subscription_retry_at
        if connection.subscription_error and retry_at is not None and retry_at > now:
            return None  # Graph refused it lately: wait for the backoff, don't hammer it
        expires = connection.subscription_expires_at
        if not connection.subscription_id or expires is None:
            return _NEVER  # missing: most urgent
        return expires if expires <= now + renewal_window else None
    if kind == REFRESH_TOKEN:
        last = _latest(connection.last_token_refresh_at, connection.connected_at)  # tokens are new at each connect
        return _overdue(last, now - IDLE_TOKEN_AGE)
    if kind == SAFETY_SYNC:
        # A safety sync queued earlier counts as activity: a backlogged sync queue gets one a day, not one a run.
        last = _latest(connection.last_sync_started_at, connection.last_sync_finished_at, connection.connected_at,
                       _utc(connection.extra.get(f"{SAFETY_SYNC}_due_at")))
        return _overdue(last, now - (APP_FOLDER_POLL_AGE if settings().app_folder_only else SAFETY_SYNC_AGE))
    raise ValueError(kind)


def _overdue(last: datetime | None, threshold: datetime) -> datetime | None:
    if last is None:
        return _NEVER
    return last if last <= threshold else None


def plan(rows: Iterable[Connection], *, now: datetime, renewal_window: timedelta, kinds: Iterable[Kind],
         max_tasks: int = MAX_TASKS_PER_RUN) -> Plan:
    """Decide, without I/O, which connections get which task and how long each waits (kinds in
    priority order: the first ones take the run's `max_tasks` first)."""
    kinds = tuple(kinds)
    result = Plan(now=now)
    candidates: dict[str, list[tuple[datetime, str]]] = {k.name: [] for k in kinds}
    busy_until: dict[str, datetime] = {k.name: now for k in kinds}
    for connection in rows:
        if connection.state != ConnectionState.ACTIVE:
            result.skipped_inactive += 1  # reauth_required needs the user; disconnected needs nothing
            continue
        for kind in kinds:
            due = _utc(connection.extra.get(kind.marker))
            if due is not None and due + TASK_GRACE > now:
                busy_until[kind.name] = max(busy_until[kind.name], due)  # already on its way
                continue
            since = needs(kind.name, connection, now, renewal_window)
            if since is not None:
                candidates[kind.name].append((since, connection.connection_id))
    for kind in kinds:
        queue = sorted(candidates[kind.name])
        # Start after the last task a previous run queued, so two runs never double the pace.
        start = math.ceil((busy_until[kind.name] - now).total_seconds()) + (1 if busy_until[kind.name] > now else 0)
        planned: list[tuple[str, int]] = []
        for position, (_, connection_id) in enumerate(queue):
            delay = start + kind.pace.delay(position)
            if delay >= HORIZON_SECONDS or len(planned) >= max_tasks:
                break
            planned.append((connection_id, delay))
        max_tasks -= len(planned)
        result.work[kind.name] = planned
        result.deferred[kind.name] = len(queue) - len(planned)
    return result


def schedule(*, now: datetime | None = None) -> Plan:
    """The timer's work: scan every connection once, queue paced tasks, mark them as on their way."""
    now = now or datetime.now(UTC)
    current = plan(
        connections.iterate(),
        now=now,
        renewal_window=timedelta(hours=settings().subscription_renewal_window_hours),
        kinds=kinds(),
    )
    sends: list[Callable[[], None]] = []
    for kind, planned in current.work.items():
        for connection_id, delay in planned:
            sends.append(_sender(kind, connection_id, delay))
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        list(pool.map(lambda send: send(), sends))  # re-raises the first failure
    _mark(current)
    _purge_abandoned_sign_ins()
    log.info(
        "maintenance scheduled: %s; deferred %s; %d inactive skipped",
        {kind: len(planned) for kind, planned in current.work.items()},
        current.deferred,
        current.skipped_inactive,
    )
    return current


def _purge_abandoned_sign_ins() -> None:
    from functions.signin import flow

    try:
        purged = flow.purge_expired_states()
    except StorageError as error:  # housekeeping: never worth failing the timer over
        log.warning("could not purge expired sign-in states: %s", type(error).__name__)
        return
    if purged:
        log.info("purged %d abandoned sign-in states", purged)


def _sender(kind: str, connection_id: str, delay: int) -> Callable[[], None]:
    if kind == SAFETY_SYNC:
        return lambda: messages.enqueue_sync(connection_id, "safety_net", delay_seconds=delay)
    return lambda: messages.enqueue_maintenance(MaintenanceTask(connection_id, kind), delay_seconds=delay)


def _mark(current: Plan) -> None:
    """Write `<kind>_due_at` on each row that got a task, 100 rows per transaction (one partition)."""
    marks: dict[str, dict[str, datetime]] = {}
    for kind, planned in current.work.items():
        for connection_id, delay in planned:
            marks.setdefault(connection_id, {})[f"{kind}_due_at"] = current.now + timedelta(seconds=delay)
    table = storage.Table(storage.Tables.CONNECTIONS)
    items = list(marks.items())

    def mark(chunk: list[tuple[str, dict[str, datetime]]]) -> None:
        operations = [storage.Op("merge", {"PartitionKey": connections.PARTITION, "RowKey": cid, **fields})
                      for cid, fields in chunk]
        try:
            table.batch(operations)
        except StorageError:
            # One row vanished (disconnect deletes nothing, but a product may): mark the rest one by one.
            for connection_id, fields in chunk:
                try:
                    connections.update(connection_id, connections.Update(due=fields))
                except StorageError:
                    log.warning("could not mark maintenance", extra={"connection_id": connection_id})

    with ThreadPoolExecutor(SEND_THREADS) as pool:
        list(pool.map(mark, [items[start : start + 100] for start in range(0, len(items), 100)]))


def run_task(task: MaintenanceTask, *, now: datetime | None = None) -> str:
    """One worker invocation; returns what it did (for logs and tests). Idempotent: rechecks the row."""
    from functions.notifications import subscriptions

    if task.action not in (RENEW, REAUTHORIZE, RECREATE, REFRESH_TOKEN):
        raise BadMessage(f"unknown maintenance action {task.action!r}")
    now = now or datetime.now(UTC)
    connection = connections.get(task.connection_id)
    if connection is None or connection.state != ConnectionState.ACTIVE:
        log.info("maintenance skipped: connection not active", extra={"connection_id": task.connection_id, "action": task.action})
        return "skipped"
    window = timedelta(hours=settings().subscription_renewal_window_hours)
    from functions.microsoft.identity import CredentialsRejected
    from functions.tokens import app_credentials

    if paused := app_credentials.pause_seconds(now):
        messages.enqueue_maintenance(task, delay_seconds=math.ceil(paused) + 1)
        return "paused"  # the app's client secret is refused: nothing here could work now
    try:
        if task.action == RENEW:
            if needs(RENEW, connection, now, window) is None:
                return "skipped"  # renewed meanwhile (a duplicate task, or a lifecycle event)
            subscriptions.renew(task.connection_id)
        elif task.action == REAUTHORIZE:
            subscriptions.reauthorize(task.connection_id)
        elif task.action == RECREATE:
            subscriptions.recreate(task.connection_id, reason="subscription_removed")
        elif task.action == REFRESH_TOKEN:
            if needs(REFRESH_TOKEN, connection, now, window) is None:
                return "skipped"
            from functions.tokens import vault

            vault.refresh(task.connection_id)
    except ReauthRequired:
        # The vault has marked the connection; it waits for the user to sign in again.
        log.warning("maintenance stopped: sign-in required", extra={"connection_id": task.connection_id, "action": task.action})
        return "reauth_required"
    except CredentialsRejected:
        delay = max(app_credentials.pause_seconds(), float(app_credentials.BACKOFF_START_SECONDS))
        messages.enqueue_maintenance(task, delay_seconds=math.ceil(delay) + 1)
        log.warning("maintenance paused: Microsoft refuses the app's credentials",
                    extra={"connection_id": task.connection_id, "action": task.action})
        return "paused"
    except SubscriptionRefused as refused:
        # Recorded on the connection with its retry time; the timer tries again after it.
        log.warning("maintenance: subscription refused (%s)", refused.reason,
                    extra={"connection_id": task.connection_id, "action": task.action})
        return "backed_off"
    except Throttled as throttled:
        # A wait is a delayed message, never a sleep.
        messages.enqueue_maintenance(task, delay_seconds=math.ceil(throttled.retry_after) + 1)
        log.warning("maintenance throttled; retry in %.0f s", throttled.retry_after,
                    extra={"connection_id": task.connection_id, "action": task.action})
        return "deferred"
    return "done"
