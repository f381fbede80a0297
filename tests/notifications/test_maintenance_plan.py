"""The maintenance plan, without I/O: who gets which task, and when, so Graph's write limit holds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from functions.connections import Connection, ConnectionState
from functions.upkeep.maintenance import (
    HORIZON_SECONDS,
    REFRESH_TOKEN,
    RENEW,
    SAFETY_SYNC,
    TASK_GRACE,
    Kind,
    Pace,
    plan,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=72)


def connection(n: int, *, expires_in: timedelta | None = timedelta(days=20), state=ConnectionState.ACTIVE,
               synced_ago=timedelta(hours=1), refreshed_ago=timedelta(hours=1), **extra) -> Connection:
    return Connection(
        connection_id=f"c{n:06d}", account_id="a", drive_id="d", state=state,
        connected_at=NOW - timedelta(days=40), created_at=NOW - timedelta(days=40),
        subscription_id="s" if expires_in is not None else "",
        subscription_expires_at=NOW + expires_in if expires_in is not None else None,
        last_sync_finished_at=NOW - synced_ago, last_token_refresh_at=NOW - refreshed_ago, extra=extra,
    )


def renewals(rows, limit=500):
    return plan(rows, now=NOW, renewal_window=WINDOW, kinds=[Kind(RENEW, Pace(limit))])


def max_in_any_window(delays: list[int], window: int = 20) -> int:
    per_second = Counter(delays)
    last = max(delays) if delays else 0
    return max((sum(per_second[s] for s in range(start, start + window)) for start in range(-window, last + 1)), default=0)


@pytest.mark.parametrize("limit", [1, 7, 333, 500, 1000])
def test_paced_tasks_never_exceed_the_limit_in_any_twenty_second_window(limit):
    delays = [Pace(limit).delay(i) for i in range(min(5000, limit * 40))]
    assert max_in_any_window(delays) == limit  # at the limit, never over: no capacity wasted either
    assert delays == sorted(delays) and delays[0] == 0


def test_a_hundred_thousand_expiring_subscriptions_are_spread_within_the_limit():
    rows = [connection(n, expires_in=timedelta(hours=n % 70)) for n in range(100_000)]
    result = renewals(rows, limit=500)
    delays = [delay for _, delay in result.work[RENEW]]
    assert max_in_any_window(delays) <= 500
    # An hour of pacing per run (90,000 writes); the rest waits for the next run, most urgent first.
    assert max(delays) < HORIZON_SECONDS
    assert len(delays) == 90_000 and result.deferred[RENEW] == 10_000
    by_id = {row.connection_id: row for row in rows}
    planned = [by_id[cid].subscription_expires_at for cid, _ in result.work[RENEW]]
    assert planned == sorted(planned)
    assert max(planned) <= min(by_id[cid].subscription_expires_at for cid in set(by_id) - {c for c, _ in result.work[RENEW]})


def test_only_subscriptions_inside_the_window_or_missing_are_renewed_missing_first():
    rows = [connection(1, expires_in=timedelta(hours=71)), connection(2, expires_in=timedelta(hours=73)),
            connection(3, expires_in=None), connection(4, expires_in=timedelta(minutes=-5))]
    assert [cid for cid, _ in renewals(rows).work[RENEW]] == ["c000003", "c000004", "c000001"]


def test_reauth_required_and_disconnected_connections_get_nothing():
    rows = [connection(1, expires_in=None, state=ConnectionState.REAUTH_REQUIRED, synced_ago=timedelta(days=3), refreshed_ago=timedelta(days=30)),
            connection(2, expires_in=None, state=ConnectionState.DISCONNECTED, synced_ago=timedelta(days=3))]
    result = plan(rows, now=NOW, renewal_window=WINDOW, kinds=[Kind(RENEW, Pace(500)), Kind(REFRESH_TOKEN, Pace(200)), Kind(SAFETY_SYNC, Pace(2000))])
    assert all(planned == [] for planned in result.work.values())
    assert result.skipped_inactive == 2


def test_work_already_on_its_way_is_not_repeated_and_new_work_queues_behind_it():
    pending = [connection(n, expires_in=timedelta(hours=1), renew_subscription_due_at=NOW + timedelta(seconds=300)) for n in range(3)]
    lost = connection(10, expires_in=timedelta(hours=1), renew_subscription_due_at=NOW - TASK_GRACE - timedelta(seconds=1))
    fresh = connection(11, expires_in=timedelta(hours=2))
    result = renewals([*pending, lost, fresh], limit=1)
    # The lost task (never done, long past due) is queued again; nothing starts before second 300.
    assert result.work[RENEW] == [("c000010", 301), ("c000011", 321)]


def test_idle_tokens_and_unsynced_drives_get_their_tasks():
    rows = [connection(1, refreshed_ago=timedelta(days=8)), connection(2, refreshed_ago=timedelta(days=6)),
            connection(3, synced_ago=timedelta(hours=25)), connection(4, synced_ago=timedelta(hours=23)),
            connection(5, synced_ago=timedelta(hours=30), safety_sync_due_at=NOW - timedelta(hours=2))]
    result = plan(rows, now=NOW, renewal_window=WINDOW, kinds=[Kind(REFRESH_TOKEN, Pace(200)), Kind(SAFETY_SYNC, Pace(2000))])
    assert result.work[REFRESH_TOKEN] == [("c000001", 0)]
    # c5 got a safety sync two hours ago that the sync worker hasn't reached: not another one yet.
    assert result.work[SAFETY_SYNC] == [("c000003", 0)]


def test_one_run_queues_at_most_its_task_cap_renewals_first():
    # After a long outage every kind falls due for everyone: the run stays inside the function
    # timeout by queueing at most MAX_TASKS_PER_RUN tasks, the most urgent kinds first.
    overdue = dict(expires_in=timedelta(hours=1), synced_ago=timedelta(days=3), refreshed_ago=timedelta(days=30))
    kinds = [Kind(RENEW, Pace(500)), Kind(REFRESH_TOKEN, Pace(200)), Kind(SAFETY_SYNC, Pace(2000))]
    rows = [connection(n, **overdue) for n in range(3_000)]
    result = plan(rows, now=NOW, renewal_window=WINDOW, kinds=kinds, max_tasks=5_000)
    assert {kind: result.count(kind) for kind in (RENEW, REFRESH_TOKEN, SAFETY_SYNC)} == {RENEW: 3_000, REFRESH_TOKEN: 2_000, SAFETY_SYNC: 0}
    assert result.deferred == {RENEW: 0, REFRESH_TOKEN: 1_000, SAFETY_SYNC: 3_000}
    assert max_in_any_window([delay for _, delay in result.work[REFRESH_TOKEN]]) <= 200  # pacing unchanged

