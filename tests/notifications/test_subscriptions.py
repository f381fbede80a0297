"""Subscriptions as Graph (the emulator) and our table see them.

Graph allows one subscription per resource and changeType per app and user: a second POST is a 409
naming the one it has (microsoft.md §6). Whatever state a connection starts from, signing in again
or the maintenance renewal must leave exactly one live subscription whose notifications we accept.
"""

from __future__ import annotations

import httpx
import pytest

from functions import connections, storage
from functions.notifications import subscriptions
from functions.upkeep import disconnect
from tests.fixtures.connected import connect_drive


def subscription_rows() -> list[dict]:
    return list(storage.table(storage.Tables.SUBSCRIPTIONS).list_entities())


def assert_exactly_one_accepted(drive) -> dict:
    """One live subscription in Graph; the connection names it; its clientState verifies; nothing
    else we hold verifies."""
    live = drive.emulator.subscriptions
    assert len(live) == 1, f"Graph holds {len(live)} subscriptions"
    [subscription] = live
    assert connections.require(drive.connection_id).subscription_id == subscription["id"]
    subscriptions.forget_cached()
    assert subscriptions.verify(subscription["id"], subscription["clientState"]) == drive.connection_id
    accepting = [row["PartitionKey"] for row in subscription_rows() if row.get("client_state_sha256")]
    assert accepting == [subscription["id"]]
    return subscription


def raw_subscription(drive) -> dict:
    """A subscription made behind the app's back, with a clientState it never stored."""
    from functions.tokens import vault

    token = vault.access_token(drive.connection_id)
    [existing] = drive.emulator.subscriptions
    answer = httpx.post(f"{drive.emulator.graph_base_url}/subscriptions", headers={"Authorization": f"Bearer {token}"},
                        json={"changeType": "updated", "resource": "me/drive/root",
                              "notificationUrl": existing["notificationUrl"],
                              "expirationDateTime": existing["expirationDateTime"], "clientState": "not-the-apps"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def start_none(drive) -> None:
    drive.emulator.notifier.subscriptions.clear()
    for row in subscription_rows():
        storage.table(storage.Tables.SUBSCRIPTIONS).delete_entity(row["PartitionKey"], row["RowKey"])
    connections.update(drive.connection_id, connections.Update(subscription_id=""))


def start_one(drive) -> None:
    assert len(drive.emulator.subscriptions) == 1


def start_orphan(drive) -> None:
    """Graph has one the app doesn't know: a POST whose answer was lost."""
    [known] = drive.emulator.subscriptions
    storage.table(storage.Tables.SUBSCRIPTIONS).delete_entity(known["id"], "")
    connections.update(drive.connection_id, connections.Update(subscription_id=""))


def start_duplicate(drive) -> None:
    """Graph holds two on our resource (a more lenient past); the app knows one of them."""
    drive.emulator.allow_duplicate_subscriptions = True
    raw_subscription(drive)
    drive.emulator.allow_duplicate_subscriptions = False
    assert len(drive.emulator.subscriptions) == 2


def start_deleted_remotely(drive) -> None:
    """The connection names a subscription Graph no longer has."""
    drive.emulator.notifier.subscriptions.clear()


def start_stale_after_failed_disconnect(drive) -> None:
    """A disconnect whose remote DELETE failed, then the user comes back."""
    drive.emulator.faults.inject("DELETE", r"/subscriptions/", status=400, times=1)
    disconnect.disconnect(drive.connection_id)
    assert len(drive.emulator.subscriptions) == 1  # still live in Graph


STARTS = {
    "none": start_none,
    "one": start_one,
    "orphan": start_orphan,
    "duplicate": start_duplicate,
    "deleted_remotely": start_deleted_remotely,
    "stale_after_failed_disconnect": start_stale_after_failed_disconnect,
}


@pytest.mark.parametrize("start", sorted(STARTS))
def test_signing_in_again_converges_on_one_accepted_subscription(connected_drive, start):
    before = {s["id"] for s in connected_drive.emulator.subscriptions}
    STARTS[start](connected_drive)
    connect_drive(connected_drive.app, connected_drive.emulator, connected_drive.user)
    subscription = assert_exactly_one_accepted(connected_drive)
    if start == "one":
        assert subscription["id"] in before  # renewed, not replaced


@pytest.mark.parametrize("start", sorted(set(STARTS) - {"stale_after_failed_disconnect"}))
def test_renewal_converges_on_one_accepted_subscription(connected_drive, start):
    STARTS[start](connected_drive)
    subscriptions.renew(connected_drive.connection_id)
    assert_exactly_one_accepted(connected_drive)


def test_a_failed_remote_deletion_is_remembered_and_its_notifications_refused(connected_drive):
    [old] = connected_drive.emulator.subscriptions
    start_stale_after_failed_disconnect(connected_drive)
    connection = connections.require(connected_drive.connection_id)
    assert connection.stale_subscription_ids == old["id"]
    assert subscriptions.lookup(old["id"]) == connected_drive.connection_id  # the row stays, for the retry
    subscriptions.forget_cached()
    assert subscriptions.verify(old["id"], old["clientState"]) is None
    connect_drive(connected_drive.app, connected_drive.emulator, connected_drive.user)
    assert old["id"] not in {s["id"] for s in connected_drive.emulator.subscriptions}
    assert connections.require(connected_drive.connection_id).stale_subscription_ids == ""
    assert subscriptions.lookup(old["id"]) is None


def test_a_409_without_an_id_in_its_text_is_resolved_by_listing(connected_drive):
    start_orphan(connected_drive)
    connected_drive.emulator.faults.inject("POST", r"/subscriptions$", status=409, times=1, code="ObjectIdentifierInUse",
                                           message="Subscription already exists for the requested combination")
    subscriptions.renew(connected_drive.connection_id)
    assert_exactly_one_accepted(connected_drive)


def test_each_new_subscription_has_its_own_random_client_state_within_graphs_limit(connected_drive):
    states = set()
    for _ in range(3):
        start_deleted_remotely(connected_drive)
        subscriptions.renew(connected_drive.connection_id)
        current = assert_exactly_one_accepted(connected_drive)
        states.add(current["clientState"])
        assert 43 <= len(current["clientState"]) <= 128
    assert len(states) == 3


def test_a_notification_for_a_replaced_subscription_is_not_accepted(connected_drive):
    emulator = connected_drive.emulator
    [old] = emulator.subscriptions
    subscriptions.renew(connected_drive.connection_id)  # same subscription, later expiry
    assert subscriptions.verify(old["id"], old["clientState"]) == connected_drive.connection_id
    start_deleted_remotely(connected_drive)
    subscriptions.renew(connected_drive.connection_id)
    subscriptions.forget_cached()
    assert subscriptions.verify(old["id"], old["clientState"]) is None
