"""The maintenance timer and worker against Azurite and the emulator, through the app's own functions."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from functions import connections, storage
from functions.connections import ConnectionState
from functions.notifications import subscriptions
from functions.settings import reload_settings
from functions.upkeep import maintenance
from tests.notifications.conftest import drain, handler, put_connections, queued_count, run_maintenance_worker

SYNC = storage.Queues.SYNC
MAINTENANCE = storage.Queues.MAINTENANCE


def run_timer() -> None:
    handler("maintenance_timer")(TimerRequest(past_due=False))


def graph_subscription(emulator, subscription_id: str):
    return emulator.notifier.subscriptions[subscription_id]


def expiring_soon(drive, hours: float = 1) -> str:
    """Make the drive's subscription expire within the renewal window, in Graph and in our rows."""
    subscription_id = connections.require(drive.connection_id).subscription_id
    soon = datetime.now(UTC) + timedelta(hours=hours)
    graph_subscription(drive.emulator, subscription_id).expires_at = soon
    connections.update(drive.connection_id, connections.Update(subscription_expires_at=soon))
    return subscription_id


def test_an_expiring_subscription_gets_a_later_expiration(subscribed):
    subscription_id = expiring_soon(subscribed)
    before = graph_subscription(subscribed.emulator, subscription_id).expires_at
    run_timer()
    assert run_maintenance_worker() == [{"connection_id": subscribed.connection_id, "action": "renew_subscription"}]
    after = graph_subscription(subscribed.emulator, subscription_id).expires_at
    assert after - before > timedelta(days=29)
    connection = connections.require(subscribed.connection_id)
    assert connection.subscription_id == subscription_id
    assert abs(connection.subscription_expires_at - after) < timedelta(seconds=1)
    assert queued_count(SYNC) == 0  # nothing was missed: no sync needed
    # Renewed: the next run has nothing to do for it.
    run_timer()
    assert run_maintenance_worker() == []


def test_a_vanished_subscription_is_recreated_and_a_sync_queued(subscribed):
    emulator = subscribed.emulator
    old_id = expiring_soon(subscribed)
    emulator.expire_subscription(old_id)  # Graph forgot it: PATCH answers 404
    run_timer()
    run_maintenance_worker()
    [new] = emulator.subscriptions
    assert new["id"] != old_id
    assert connections.require(subscribed.connection_id).subscription_id == new["id"]
    assert subscriptions.verify(new["id"], new["clientState"]) == subscribed.connection_id
    assert subscriptions.lookup(old_id) is None
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "subscription_recreated"}]


def test_a_missing_subscription_is_created_with_a_sync(subscribed):
    emulator = subscribed.emulator
    subscriptions.delete(subscribed.connection_id)
    assert emulator.subscriptions == []
    run_timer()
    run_maintenance_worker()
    assert len(emulator.subscriptions) == 1
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "subscription_missing"}]


def test_a_reauth_required_connection_is_left_alone(subscribed):
    emulator = subscribed.emulator
    subscription_id = expiring_soon(subscribed)
    connections.update(subscribed.connection_id, connections.Update(last_token_refresh_at=datetime.now(UTC) - timedelta(days=30),
                       last_sync_finished_at=datetime.now(UTC) - timedelta(days=3)))
    connections.set_state(subscribed.connection_id, ConnectionState.REAUTH_REQUIRED)
    requests_before = len(emulator.requests)
    run_timer()
    assert run_maintenance_worker() == [] and queued_count(SYNC) == 0
    # Even a task that was queued before the state changed does nothing.
    handler("maintenance_worker")(QueueMessage(body=json.dumps({"connection_id": subscribed.connection_id, "action": "renew_subscription"}).encode()))
    assert len(emulator.requests) == requests_before
    assert graph_subscription(emulator, subscription_id).expires_at < datetime.now(UTC) + timedelta(hours=2)


def test_revoked_consent_during_renewal_marks_the_connection_and_stops(subscribed):
    emulator = subscribed.emulator
    expiring_soon(subscribed)
    emulator.revoke_consent(subscribed.user)
    emulator.expire_access_tokens(subscribed.user)
    from functions.tokens import vault

    vault.forget_cached_tokens()
    run_timer()
    run_maintenance_worker()  # no exception: retrying can't help until the user signs in again
    assert connections.require(subscribed.connection_id).state == ConnectionState.REAUTH_REQUIRED
    assert queued_count(MAINTENANCE) == 0


def test_an_idle_token_is_refreshed(subscribed):
    long_ago = datetime.now(UTC) - timedelta(days=8)
    connections.update(subscribed.connection_id, connections.Update(last_token_refresh_at=long_ago, connected_at=long_ago))
    token_calls = len([r for r in subscribed.emulator.requests if r["path"].endswith("/oauth2/v2.0/token")])
    run_timer()
    assert run_maintenance_worker() == [{"connection_id": subscribed.connection_id, "action": "refresh_token"}]
    assert len([r for r in subscribed.emulator.requests if r["path"].endswith("/oauth2/v2.0/token")]) == token_calls + 1
    assert connections.require(subscribed.connection_id).last_token_refresh_at > long_ago + timedelta(days=7)


def test_a_drive_not_synced_for_a_day_gets_a_safety_sync_once(subscribed):
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    connections.update(subscribed.connection_id, connections.Update(last_sync_finished_at=long_ago, last_sync_started_at=long_ago, connected_at=long_ago))
    run_timer()
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "safety_net"}]
    run_timer()  # the sync worker hasn't run it yet: no second one
    assert queued_count(SYNC) == 0


def test_throttled_renewal_becomes_a_delayed_task(subscribed):
    emulator = subscribed.emulator
    expiring_soon(subscribed)
    emulator.faults.inject(method="PATCH", path=r"/subscriptions/", status=429, retry_after="120", times=1)
    run_timer()
    assert run_maintenance_worker() == [{"connection_id": subscribed.connection_id, "action": "renew_subscription"}]
    assert queued_count(MAINTENANCE) == 1  # back on the queue, invisible for the Retry-After
    assert drain(MAINTENANCE) == []


def test_unreadable_tasks_go_straight_to_the_poison_queue(app_settings):
    worker = handler("maintenance_worker")
    worker(QueueMessage(body=b"{not json"))
    worker(QueueMessage(body=json.dumps({"connection_id": "c1", "action": "dance"}).encode()))
    poisoned = [m.content for m in storage.queue(storage.poison_queue(MAINTENANCE)).receive_messages(max_messages=32)]
    assert len(poisoned) == 2 and poisoned[0] == b"{not json"
    assert json.loads(poisoned[1]) == {"connection_id": "c1", "action": "dance"}
    assert queued_count(MAINTENANCE) == 0


def test_thousands_of_connections_fan_out_within_the_write_limit(app_settings, monkeypatch):
    monkeypatch.setenv("SUBSCRIPTION_WRITES_PER_20S", "200")
    reload_settings()
    count = 2000
    soon = datetime.now(UTC) + timedelta(hours=5)
    ids = put_connections(count, subscription_expires_at=soon)
    put_connections(50, prefix="reauth", state="reauth_required", subscription_expires_at=soon)
    started = time.monotonic()
    first = maintenance.schedule()
    elapsed = time.monotonic() - started
    delays = [delay for _, delay in first.work[maintenance.RENEW]]
    per_second = Counter(delays)
    worst = max(sum(per_second[s] for s in range(start, start + 20)) for start in range(max(delays) + 1))
    print(f"fan-out of {count} renewals: {elapsed:.2f} s; spread over {max(delays) + 1} s; worst 20-s window {worst} (limit 200)")
    assert sorted(cid for cid, _ in first.work[maintenance.RENEW]) == ids
    assert worst == 200 and max(delays) == (count - 1) * 20 // 200
    assert first.skipped_inactive == 50
    assert queued_count(MAINTENANCE) == count
    # Every row is marked: the next run queues nothing again, and new work waits behind the old.
    assert all(c.extra.get("renew_subscription_due_at") for c in connections.iterate() if c.state == ConnectionState.ACTIVE)
    assert maintenance.schedule().count(maintenance.RENEW) == 0
    put_connections(10, prefix="late", subscription_expires_at=soon)
    third = maintenance.schedule()
    assert [delay for _, delay in third.work[maintenance.RENEW]][0] > max(delays) - 2 * (time.monotonic() - started) - 1
    # Only the tasks whose second has come are visible; the rest wait for their turn.
    visible = len(drain(MAINTENANCE))
    visible_by_now = sum(n for second, n in per_second.items() if second <= time.monotonic() - started + 1)
    assert per_second[0] <= visible <= visible_by_now < count


def test_the_timer_purges_abandoned_sign_ins(app_settings):
    table = storage.table(storage.Tables.OAUTH_STATES)
    now = datetime.now(UTC)
    table.upsert_entity({"PartitionKey": "old", "RowKey": "", "expires_at": now - timedelta(minutes=1)})
    table.upsert_entity({"PartitionKey": "new", "RowKey": "", "expires_at": now + timedelta(minutes=9)})
    run_timer()
    assert [row["PartitionKey"] for row in table.list_entities()] == ["new"]
