"""Graph refusing a subscription heals instead of poisoning (microsoft.md §6): a lower lifetime cap
is read from the refusal and obeyed; a subscription limit (403) or a 401 `ExtensionError` is recorded
on the connection, shown by the API and the status page, and retried after a backoff."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest

from functions import connections
from functions.connections import ConnectionState
from functions.messages import MaintenanceTask
from functions.notifications import subscriptions
from functions.upkeep import maintenance
from tests.notifications.conftest import run_maintenance_worker
from tests.notifications.test_subscriptions import assert_exactly_one_accepted, start_deleted_remotely, start_none


@pytest.mark.parametrize("start", ["known", "deleted_remotely"])
def test_a_lower_lifetime_cap_is_read_from_the_refusal_and_obeyed(connected_drive, start):
    connected_drive.emulator.max_subscription_minutes = 90
    if start == "deleted_remotely":
        start_deleted_remotely(connected_drive)
    subscription = subscriptions.renew(connected_drive.connection_id)
    assert subscription.expires_at <= datetime.now(UTC) + timedelta(minutes=90)
    assert subscription.expires_at >= datetime.now(UTC) + timedelta(minutes=60)
    assert_exactly_one_accepted(connected_drive)


REFUSALS = {
    "subscription_limit": dict(status=403, code="ExtensionError", message="Maximum number of subscriptions has been reached."),
    "extension_error_401": dict(status=401, code="ExtensionError", message="Authentication failed"),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refused_subscription_is_recorded_shown_and_retried_after_a_backoff(connected_drive, refusal):
    cid = connected_drive.connection_id
    emulator = connected_drive.emulator
    start_none(connected_drive)
    fault = emulator.faults.inject("POST", r"/subscriptions$", **REFUSALS[refusal])
    assert maintenance.run_task(MaintenanceTask(cid, maintenance.RENEW)) == "backed_off"  # not raised: no poison
    connection = connections.require(cid)
    assert connection.state == ConnectionState.ACTIVE  # Graph refused the subscription, not the user's sign-in
    assert connection.subscription_error and connection.subscription_failures == 1
    now = datetime.now(UTC)
    assert connection.subscription_retry_at is not None and connection.subscription_retry_at > now + timedelta(minutes=4)

    with connected_drive.app.client(timeout=30) as api:
        shown = api.get(f"/api/connections/{cid}").json()["subscriptionError"]
        assert shown["message"] == connection.subscription_error and shown["retryAt"]
        page = api.get("/api/status").text
        assert html.escape(connection.subscription_error) in page

    # The timer leaves it alone until the backoff is over, then tries again.
    window = timedelta(hours=24)
    assert maintenance.needs(maintenance.RENEW, connection, now, window) is None
    assert maintenance.needs(maintenance.RENEW, connection, connection.subscription_retry_at + timedelta(seconds=1), window)
    assert maintenance.run_task(MaintenanceTask(cid, maintenance.RENEW)) == "skipped"
    # A second refusal, once the wait is over, doubles the wait.
    later = connection.subscription_retry_at + timedelta(seconds=1)
    assert maintenance.run_task(MaintenanceTask(cid, maintenance.RENEW), now=later) == "backed_off"
    again = connections.require(cid)
    assert again.subscription_failures == 2
    assert again.subscription_retry_at - datetime.now(UTC) > timedelta(minutes=9)

    emulator.faults.remove(fault.id)
    later = again.subscription_retry_at + timedelta(seconds=1)
    assert maintenance.run_task(MaintenanceTask(cid, maintenance.RENEW), now=later) == "done"
    healed = connections.require(cid)
    assert healed.subscription_error == "" and healed.subscription_failures == 0
    assert_exactly_one_accepted(connected_drive)
    with connected_drive.app.client(timeout=30) as api:
        assert api.get(f"/api/connections/{cid}").json()["subscriptionError"] is None


def test_the_maintenance_worker_does_not_fail_its_message_on_a_refusal(subscribed):
    cid = subscribed.connection_id
    start_none(subscribed)
    subscribed.emulator.faults.inject("POST", r"/subscriptions$", status=403, code="ExtensionError",
                                      message="Maximum number of subscriptions has been reached.")
    from functions import messages

    messages.enqueue_maintenance(MaintenanceTask(cid, maintenance.RENEW))
    assert run_maintenance_worker() == [{"connection_id": cid, "action": maintenance.RENEW}]  # no exception
    assert connections.require(cid).subscription_error
