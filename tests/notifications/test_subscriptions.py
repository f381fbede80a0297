"""Subscriptions as Graph (the emulator) and our table see them."""

from __future__ import annotations

from functions import connections, storage
from functions.notifications import subscriptions
from tests.fixtures.connected import connect_drive


def subscription_rows() -> list[dict]:
    return list(storage.table(storage.Tables.SUBSCRIPTIONS).list_entities())


def test_signing_in_again_replaces_the_subscription_instead_of_adding_one(connected_drive):
    emulator = connected_drive.emulator
    emulator.allow_duplicate_subscriptions = True  # until the app handles it (issue 19 #1)
    [first] = emulator.subscriptions
    connect_drive(connected_drive.app, emulator, connected_drive.user)
    [second] = emulator.subscriptions
    assert second["id"] != first["id"]
    assert [row["PartitionKey"] for row in subscription_rows()] == [second["id"]]
    assert connections.require(connected_drive.connection_id).subscription_id == second["id"]


def test_each_subscription_has_its_own_random_client_state(connected_drive):
    emulator = connected_drive.emulator
    emulator.allow_duplicate_subscriptions = True  # until the app handles it (issue 19 #1)
    states = set()
    for _ in range(3):
        subscriptions.create(connected_drive.connection_id)
        [current] = emulator.subscriptions
        states.add(current["clientState"])
        assert 43 <= len(current["clientState"]) <= 128
    assert len(states) == 3
    assert len(subscription_rows()) == 1


def test_a_notification_for_a_replaced_subscription_is_not_accepted(connected_drive):
    emulator = connected_drive.emulator
    emulator.allow_duplicate_subscriptions = True  # until the app handles it (issue 19 #1)
    [old] = emulator.subscriptions
    subscriptions.renew(connected_drive.connection_id)  # same subscription, later expiry
    assert subscriptions.verify(old["id"], old["clientState"]) == connected_drive.connection_id
    subscriptions.create(connected_drive.connection_id)
    assert subscriptions.verify(old["id"], old["clientState"]) is None
