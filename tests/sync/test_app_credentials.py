"""Microsoft refusing the app's own client secret (`invalid_client`, AADSTS7000222 expired /
7000215 wrong) is one app-wide condition (microsoft.md §6): detected once, shown on the status
page and by the health check, syncs and maintenance paused with a backoff until the secret works
again; nothing is lost and no message is poisoned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions import connections, storage
from functions.messages import MaintenanceTask
from functions.settings import reload_settings
from functions.sync import engine
from functions.tokens import app_credentials, vault
from functions.upkeep import maintenance
from tests.fixtures.mirror import assert_mirror_equals_drive
from tests.sync.test_failures import sync_queue_length


def token_requests(emulator) -> int:
    return sum(1 for r in emulator.requests if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token"))


def end_the_pause() -> None:
    """As if the backoff had run out."""
    storage.table(storage.Tables.APP_STATE).update_entity(
        {"PartitionKey": app_credentials.PARTITION, "RowKey": app_credentials.ROW,
         "retry_at": datetime.now(UTC) - timedelta(seconds=1)})
    app_credentials.forget_cached()


def test_an_expired_client_secret_pauses_syncs_app_wide_and_loses_nothing(connected_drive, emulator, drive, sync_until_done):
    cid = connected_drive.connection_id
    emulator.notifications_paused = True  # count only the sync requests this test makes
    drive.write_file("a.txt", b"a")
    expired = emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error="client_secret_expired")
    emulator.expire_access_tokens(connected_drive.user)
    vault.forget_cached_tokens()
    queued = sync_queue_length()

    result = engine.run(cid)
    assert result.outcome == "paused" and result.retry_after >= 50  # returned: the message is not failed
    assert sync_queue_length() == queued + 1  # the same sync, delayed
    assert connections.require(cid).state == connections.ConnectionState.ACTIVE  # not the user's fault
    ok, detail = app_credentials.health()
    assert not ok and "AADSTS7000222" in detail and "emulator-client-secret" not in detail

    # Every further sync waits without asking Microsoft again.
    asked = token_requests(emulator)
    assert engine.run(cid).outcome == "paused"
    assert token_requests(emulator) == asked

    with connected_drive.app.client(timeout=30) as api:
        assert "AADSTS7000222" in api.get("/api/status").text

    # A probe after the pause that fails again doubles it.
    end_the_pause()
    assert engine.run(cid).outcome == "paused"
    assert app_credentials.status(fresh=True).failures == 2
    assert app_credentials.pause_seconds() > 100

    # The secret works again: the next probe syncs everything and clears the condition.
    emulator.faults.remove(expired.id)
    end_the_pause()
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(cid, drive)
    assert app_credentials.health()[0] and not app_credentials.status(fresh=True).rejected
    with connected_drive.app.client(timeout=30) as api:
        assert "AADSTS7000222" not in api.get("/api/status").text


def test_a_new_secret_ends_the_pause_at_once(connected_drive, emulator, drive, sync_until_done, monkeypatch):
    cid = connected_drive.connection_id
    drive.write_file("a.txt", b"a")
    right = emulator.client_secret
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "a-wrong-secret")
    reload_settings()
    emulator.expire_access_tokens(connected_drive.user)
    vault.forget_cached_tokens()
    assert engine.run(cid).outcome == "paused"
    assert "AADSTS7000215" in app_credentials.health()[1]
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", right)  # the operator fixed it
    reload_settings()
    assert app_credentials.pause_seconds() == 0  # another secret: worth a try now
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(cid, drive)
    assert app_credentials.health()[0]


def test_maintenance_pauses_instead_of_failing_its_message(connected_drive, emulator):
    cid = connected_drive.connection_id
    emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error="client_secret_expired")
    task = MaintenanceTask(cid, maintenance.REFRESH_TOKEN)
    due = datetime.now(UTC) + timedelta(days=30)  # the token is idle enough to need a refresh
    assert maintenance.run_task(task, now=due) == "paused"
    assert not app_credentials.health()[0]
    queued = storage.queue(storage.Queues.MAINTENANCE).get_queue_properties().approximate_message_count
    assert maintenance.run_task(task, now=due) == "paused"  # waits without asking Microsoft
    assert storage.queue(storage.Queues.MAINTENANCE).get_queue_properties().approximate_message_count == queued + 1
    assert connections.require(cid).state == connections.ConnectionState.ACTIVE
