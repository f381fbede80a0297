"""Disconnect through DELETE /api/connections/{id}: Graph subscription, tokens and sync state go; history stays."""

from __future__ import annotations

import pytest

from functions import connections, storage
from functions.connections import ConnectionState
from functions.notifications import subscriptions
from functions.sync import forget
from functions.upkeep import disconnect
from tests.notifications.conftest import drain, queued_count

OTHER = "someone-else"


def rows(table_name: str, connection_id: str) -> list[dict]:
    return list(storage.table(table_name).query_entities("PartitionKey eq @pk", parameters={"pk": connection_id}))


def seed_sync_state(connection_id: str, count: int = 3) -> None:
    """Rows in every per-connection table, as the sync worker leaves them (and a neighbour's)."""
    for table_name in forget.PER_CONNECTION_TABLES:
        for owner in (connection_id, OTHER):
            for start in range(0, count, 100):
                storage.table(table_name).submit_transaction(
                    [("upsert", {"PartitionKey": owner, "RowKey": f"row{n}", "value": n}) for n in range(start, min(count, start + 100))])


def seed_mirror(connection_id: str) -> None:
    container = storage.files_container()
    for owner in (connection_id, OTHER):
        for path in ("a.txt", "Docs/b.txt", "Docs/deep/c.txt"):
            container.upload_blob(f"{owner}/{path}", b"x", overwrite=True)


def mirrored(owner: str) -> list[str]:
    return sorted(b.name for b in storage.files_container().list_blobs(name_starts_with=f"{owner}/"))


@pytest.fixture
def api(connected_drive):
    with connected_drive.app.client(timeout=30) as client:
        yield client


def test_disconnect_removes_the_subscription_tokens_and_sync_state_and_keeps_the_mirror(connected_drive, api):
    connection_id = connected_drive.connection_id
    emulator = connected_drive.emulator
    [subscription] = emulator.subscriptions
    seed_sync_state(connection_id, count=150)  # more than one 100-row transaction
    seed_mirror(connection_id)
    assert rows(storage.Tables.TOKENS, connection_id)

    response = api.delete(f"/api/connections/{connection_id}")
    assert response.status_code == 204, response.text

    assert emulator.subscriptions == []
    assert rows(storage.Tables.TOKENS, connection_id) == []
    assert subscriptions.lookup(subscription["id"]) is None
    for table_name in forget.PER_CONNECTION_TABLES:
        assert rows(table_name, connection_id) == [], table_name
        assert len(rows(table_name, OTHER)) == 150, table_name
    connection = connections.require(connection_id)
    assert connection.state == ConnectionState.DISCONNECTED and connection.subscription_id == ""
    assert mirrored(connection_id) == [f"{connection_id}/{p}" for p in ("Docs/b.txt", "Docs/deep/c.txt", "a.txt")]
    # A change in the drive now reaches nobody.
    drain(storage.Queues.SYNC)
    connected_drive.drive.write_file("after.txt", b"late")
    emulator.flush_notifications()
    assert queued_count(storage.Queues.SYNC) == 0

    again = api.delete(f"/api/connections/{connection_id}")
    assert again.status_code == 204, again.text
    assert connections.require(connection_id).state == ConnectionState.DISCONNECTED


def test_disconnect_can_delete_the_mirror_too(connected_drive, api):
    connection_id = connected_drive.connection_id
    seed_mirror(connection_id)
    assert api.delete(f"/api/connections/{connection_id}", params={"deleteMirror": "true"}).status_code == 204
    assert mirrored(connection_id) == []
    assert len(mirrored(OTHER)) == 3


def test_disconnect_with_revoked_tokens_still_removes_local_state(connected_drive, api):
    connection_id = connected_drive.connection_id
    emulator = connected_drive.emulator
    [subscription] = emulator.subscriptions
    emulator.revoke_consent(connected_drive.user)
    emulator.expire_access_tokens(connected_drive.user)
    from functions.tokens import vault

    vault.forget_cached_tokens()
    assert api.delete(f"/api/connections/{connection_id}").status_code == 204
    assert rows(storage.Tables.TOKENS, connection_id) == []
    assert connections.require(connection_id).state == ConnectionState.DISCONNECTED
    # Graph keeps the subscription until it lapses, but its notifications are no longer ours.
    assert [s["id"] for s in emulator.subscriptions] == [subscription["id"]]
    assert subscriptions.verify(subscription["id"], subscription["clientState"]) is None


def test_disconnecting_an_unknown_connection_changes_nothing(app_settings):
    seed_sync_state(OTHER)
    assert disconnect.disconnect("never-connected") is False
    assert connections.get("never-connected") is None
    assert len(rows(storage.Tables.SYNC_STATE, OTHER)) == 3


def test_signing_in_again_after_disconnect_subscribes_again(connected_drive):
    from tests.fixtures.connected import connect_drive

    disconnect.disconnect(connected_drive.connection_id)
    assert connected_drive.emulator.subscriptions == []
    again = connect_drive(connected_drive.app, connected_drive.emulator, connected_drive.user)
    assert again.connection_id == connected_drive.connection_id
    [subscription] = connected_drive.emulator.subscriptions
    assert connections.require(again.connection_id).state == ConnectionState.ACTIVE
    assert subscriptions.verify(subscription["id"], subscription["clientState"]) == again.connection_id


def test_a_late_sign_in_verdict_does_not_overwrite_a_disconnect(connected_drive):
    connection_id = connected_drive.connection_id
    disconnect.disconnect(connection_id)
    # What a sync or a token refresh does when it finds the tokens gone mid-run:
    assert connections.leave_active(connection_id, ConnectionState.REAUTH_REQUIRED, error="sign in again") is False
    assert connections.require(connection_id).state == ConnectionState.DISCONNECTED
    assert connections.leave_active("no-such-connection", ConnectionState.REAUTH_REQUIRED) is False
