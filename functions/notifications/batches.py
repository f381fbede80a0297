"""Graph's change and lifecycle notifications: parse a batch, verify each, queue the work.

For a drive a notification is only a shoulder tap ("something changed"), so a batch comes down to
"which connections need a sync": one message per connection per POST, however many duplicates.
Nothing here calls Graph: Graph wants an answer within 3 s, and anything slow goes to a queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from functions import messages
from functions.errors import StorageError, StorageUnavailable
from functions.microsoft.wire import MAX_NOTIFICATIONS, MalformedBatch, Notification, NotificationBatch
from functions.notifications import subscriptions

__all__ = ["MAX_BODY_BYTES", "MAX_NOTIFICATIONS", "MalformedBatch", "Notification", "Outcome", "accept_changes",
           "accept_lifecycle", "parse_batch"]
T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    received: int
    dropped: int  # unknown subscription or wrong clientState: never acted on
    connection_ids: tuple[str, ...]


def parse_batch(body: bytes) -> list[Notification]:
    """A webhook body into its notifications (`MalformedBatch` when it is not a batch)."""
    return list(NotificationBatch.from_body(body).notifications)


# Storage reads one POST may cause (distinct subscriptions not remembered): a forged POST of 1,000
# random ids cost 1,000 sequential reads (~2 s). Beyond it, unremembered ids are dropped (counted);
# a real batch naming more than this many different drives has not been seen.
MAX_DISTINCT_SUBSCRIPTIONS = 100


def accept_changes(batch: list[Notification]) -> Outcome:
    """Queue a sync for each connection a verified notification names, unless one is already
    waiting: a message nobody has picked up yet starts its sync after this change (sync/state.py)."""
    from functions.sync import state as syncstate

    checked = _verify_each(batch)
    connection_ids = tuple(dict.fromkeys(connection_id for _, connection_id in checked if connection_id))
    queued = 0

    def enqueue() -> None:
        nonlocal queued
        for connection_id in connection_ids:
            waiting = syncstate.queued_sync(connection_id)
            if waiting.pending:
                continue
            messages.enqueue_sync(connection_id, "notification", patient=False)
            queued += 1
            syncstate.mark_sync_queued(connection_id, waiting.etag)

    _guarded(enqueue)
    outcome = Outcome(len(batch), sum(1 for _, connection_id in checked if not connection_id), connection_ids)
    _log(outcome, kind="change", queued=queued)
    return outcome


# Lifecycle events we act on, and the maintenance action each becomes. Graph sends only
# `reauthorizationRequired` for drives; the others cost nothing to handle.
LIFECYCLE_ACTIONS = {
    "reauthorizationRequired": "reauthorize_subscription",
    "subscriptionRemoved": "recreate_subscription",
}


def accept_lifecycle(batch: list[Notification]) -> Outcome:
    """Queue the work a lifecycle event asks for: maintenance tasks, or a sync for `missed`."""
    verified = [(notification, connection_id) for notification, connection_id in _verify_each(batch) if connection_id]
    work: dict[tuple[str, str], None] = {}
    for notification, connection_id in verified:
        if notification.lifecycle_event == "missed":
            work[(connection_id, "missed")] = None
        elif notification.lifecycle_event in LIFECYCLE_ACTIONS:
            work[(connection_id, LIFECYCLE_ACTIONS[notification.lifecycle_event])] = None
        else:
            log.info("lifecycle event ignored: %.40r", notification.lifecycle_event, extra={"connection_id": connection_id})

    def enqueue() -> None:
        for connection_id, action in work:
            if action == "missed":
                messages.enqueue_sync(connection_id, "notifications_missed", patient=False)
            else:
                messages.enqueue_maintenance(messages.MaintenanceTask(connection_id, action), patient=False)

    _guarded(enqueue)
    connection_ids = tuple(dict.fromkeys(connection_id for _, connection_id in verified))
    outcome = Outcome(len(batch), len(batch) - len(verified), connection_ids)
    _log(outcome, kind="lifecycle", queued=len(work))
    return outcome


def _verify_each(batch: list[Notification]) -> list[tuple[Notification, str | None]]:
    # Duplicates are the norm (Graph retries, bursts): one check per distinct pair, and reads for
    # at most MAX_DISTINCT_SUBSCRIPTIONS distinct subscriptions.
    cache: dict[tuple[str, str], str | None] = {}
    distinct: dict[str, None] = {}
    over_cap = 0

    def check(notification: Notification) -> str | None:
        nonlocal over_cap
        key = (notification.subscription_id, notification.client_state)
        if key not in cache:
            distinct[notification.subscription_id] = None
            may_read = len(distinct) <= MAX_DISTINCT_SUBSCRIPTIONS
            cache[key] = _guarded(lambda: subscriptions.verify(*key, may_read=may_read))
            over_cap += cache[key] is None and not may_read
        return cache[key]

    checked = [(notification, check(notification)) for notification in batch]
    if over_cap:
        log.warning("notifications: %d distinct subscriptions over the cap of %d were not looked up",
                    over_cap, MAX_DISTINCT_SUBSCRIPTIONS, extra={"over_cap": over_cap})
    return checked


def _log(outcome: Outcome, *, kind: str, queued: int) -> None:
    # Counts only: clientStates are secrets and subscription ids of forged posts are noise.
    level = logging.WARNING if outcome.dropped else logging.INFO
    log.log(level, "%s notifications: %d received, %d dropped, %d queued", kind, outcome.received, outcome.dropped, queued,
            extra={"received": outcome.received, "dropped": outcome.dropped, "queued": queued})


def _guarded(call: Callable[[], T]) -> T:
    """Any storage failure while handling a batch is `StorageUnavailable`: the webhook answers 5xx
    so Graph delivers the batch again."""
    try:
        return call()
    except StorageUnavailable:
        raise
    except StorageError as error:
        raise StorageUnavailable(str(error), error.status) from None
