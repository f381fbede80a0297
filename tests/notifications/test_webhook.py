"""POST /api/notifications and /api/lifecycle, over real HTTP, against the emulator and Azurite."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
import pytest

from devtools.azurite import Azurite
from functions import storage
from functions.notifications import subscriptions
from tests.fixtures.waiting import eventually
from tests.notifications.conftest import drain, post_json, queued_count, run_maintenance_worker

SYNC = storage.Queues.SYNC


def only_subscription(emulator) -> dict:
    found = emulator.subscriptions
    assert len(found) == 1, found
    return found[0]


def entry(subscription: dict, client_state: str | None = None, **extra) -> dict:
    return {
        "subscriptionId": subscription["id"],
        "subscriptionExpirationDateTime": subscription["expirationDateTime"],
        "changeType": "updated",
        "resource": subscription["resource"],
        "clientState": subscription["clientState"] if client_state is None else client_state,
        "tenantId": "9188040d-6c67-4c5b-b112-36a304b66dad",
        "resourceData": None,
        **extra,
    }


@pytest.fixture
def app(app_server):
    with httpx.Client(base_url=app_server.url, timeout=10) as client:  # anonymous, as Graph calls
        yield client


def test_connecting_subscribes_through_the_validation_handshake(connected_drive):
    emulator = connected_drive.emulator
    subscription = only_subscription(emulator)
    assert subscription["resource"] == "me/drive/root"
    assert subscription["notificationUrl"].endswith("/api/notifications")
    assert subscription["lifecycleNotificationUrl"].endswith("/api/lifecycle")
    # The emulator's tokens read "Validation: Testing client application reachability ... Request-Id: <uuid>".
    validations = [d for d in emulator.deliveries if d["kind"] == "validation"]
    assert {d["url"].rsplit("/", 1)[1] for d in validations} == {"notifications", "lifecycle"}
    assert all(d["status"] == 200 for d in validations)
    # Only a hash of the clientState is kept, with the expiry, keyed by the subscription id.
    row = storage.table(storage.Tables.SUBSCRIPTIONS).get_entity(subscription["id"], subscriptions.ROW)
    assert row["connection_id"] == connected_drive.connection_id
    assert subscription["clientState"] not in json.dumps({k: str(v) for k, v in row.items()})
    assert row["client_state_sha256"] == subscriptions.digest(subscription["clientState"])
    from functions import connections

    connection = connections.require(connected_drive.connection_id)
    assert connection.subscription_id == subscription["id"]
    assert connection.subscription_expires_at > connection.connected_at + subscriptions.LIFETIME - subscriptions.LIFETIME / 100


def test_validation_echoes_the_decoded_token_as_plain_text_without_storage(app, monkeypatch):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1f2e <b>&amp;"
    # No storage is reachable at all: the handshake must not need it.
    monkeypatch.setenv(storage.CONNECTION, "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;TableEndpoint=http://127.0.0.1:9/x;QueueEndpoint=http://127.0.0.1:9/x;BlobEndpoint=http://127.0.0.1:9/x")
    storage.reset_clients()
    for route in ("notifications", "lifecycle"):
        response = app.post(f"/api/{route}?validationToken={quote(token, safe='')}", headers={"Content-Type": "text/plain"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.text == token


@pytest.mark.parametrize("token", ["", "x" * 1025])
def test_validation_refuses_empty_or_oversized_tokens(app, token):
    response = app.post("/api/notifications", params={"validationToken": token})
    assert response.status_code == 400
    assert token not in response.text or not token


def test_a_change_in_the_drive_queues_exactly_one_sync(subscribed):
    emulator = subscribed.emulator
    subscribed.drive.write_file("Docs/a.txt", b"hello")
    subscribed.drive.write_file("Docs/b.txt", b"world")
    emulator.flush_notifications()
    delivered = [d for d in emulator.deliveries if d["kind"] == "notification"]
    assert delivered and all(d["status"] == 202 for d in delivered)
    # However many deliveries: one message waits for the connection until a worker picks it up.
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "notification"}]


def test_a_forged_client_state_queues_nothing(subscribed, app):
    subscription = only_subscription(subscribed.emulator)
    forged = [entry(subscription, client_state="guess"), entry(subscription, client_state=""),
              entry({**subscription, "id": "00000000-0000-0000-0000-000000000000"}), entry({**subscription, "id": "../x#y"})]
    response = post_json(app, "/api/notifications", {"value": forged})
    assert response.status_code == 202
    assert queued_count(SYNC) == 0


def test_fifty_duplicates_for_one_drive_queue_one_sync(subscribed, app):
    subscription = only_subscription(subscribed.emulator)
    response = post_json(app, "/api/notifications", {"value": [entry(subscription)] * 50})
    assert response.status_code == 202
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "notification"}]


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"value": {}}', "application/json", 400),
        (b'{"value": [42]}', "application/json", 400),
        (b'{"value": [{"clientState": "x"}]}', "application/json", 400),
        (b'{"value": [{"subscriptionId": 7, "clientState": "x"}]}', "application/json", 400),
        (b'{"value": [{"subscriptionId": "s", "clientState": ["x"]}]}', "application/json", 400),
        (b'{"value": []}', "text/plain", 415),
        (b'{"value": []}', "", 415),
        (b'{"value": []}', "application/x-www-form-urlencoded", 415),
    ],
)
def test_bad_bodies_are_refused_and_queue_nothing(subscribed, app, body, content_type, status):
    subscription = only_subscription(subscribed.emulator)
    # A valid notification rides along where the body is still parseable: it must not leak through.
    if body.startswith(b'{"value": [{'):
        body = body.replace(b'{"value": [', b'{"value": [' + json.dumps(entry(subscription)).encode() + b", ")
    response = app.post("/api/notifications", content=body, headers={"Content-Type": content_type} if content_type else {})
    assert response.status_code == status, response.text
    assert queued_count(SYNC) == 0


def test_an_oversized_body_is_refused_and_queues_nothing(subscribed, app):
    subscription = only_subscription(subscribed.emulator)
    padding = "x" * (1024 * 1024)
    response = post_json(app, "/api/notifications", {"value": [entry(subscription)], "padding": padding})
    assert response.status_code == 413
    too_many = post_json(app, "/api/notifications", {"value": [entry(subscription)] * 1001})
    assert too_many.status_code == 400
    assert queued_count(SYNC) == 0


def test_storage_unavailable_answers_503_so_graph_retries(app_settings, app, monkeypatch, tmp_path):
    client_state = "a-client-state"
    with Azurite(location=tmp_path, in_memory=True) as doomed:
        monkeypatch.setenv(storage.CONNECTION, doomed.connection_string)
        storage.reset_clients()
        storage.table(storage.Tables.SUBSCRIPTIONS).upsert_entity(
            {"PartitionKey": "sub-1", "RowKey": subscriptions.ROW, "connection_id": "c1", "client_state_sha256": subscriptions.digest(client_state)})
        assert post_json(app, "/api/notifications", {"value": [{"subscriptionId": "sub-1", "clientState": client_state}]}).status_code == 202
        doomed.stop()
        started = time.monotonic()
        response = post_json(app, "/api/notifications", {"value": [{"subscriptionId": "sub-1", "clientState": client_state}]})
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 3, f"Graph gives up after 3 s; the 503 took {elapsed:.2f} s"
        lifecycle = post_json(app, "/api/lifecycle", {"value": [{"subscriptionId": "sub-1", "clientState": client_state, "lifecycleEvent": "missed"}]})
        assert lifecycle.status_code == 503
        # The handshake still works: it never touches storage.
        assert app.post("/api/notifications?validationToken=still%20here").text == "still here"
    storage.reset_clients()


def test_lifecycle_missed_queues_a_sync_and_unknown_events_nothing(subscribed, app):
    subscription = only_subscription(subscribed.emulator)
    batch = [entry(subscription, lifecycleEvent="missed")] * 3 + [entry(subscription, lifecycleEvent="somethingNew")]
    assert post_json(app, "/api/lifecycle", {"value": batch}).status_code == 202
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "notifications_missed"}]
    assert queued_count(storage.Queues.MAINTENANCE) == 0


def test_a_lifecycle_outcome_names_the_connections_it_verified(subscribed):
    from functions.notifications import batches

    subscription = only_subscription(subscribed.emulator)
    batch = batches.parse_batch(json.dumps({"value": [entry(subscription, lifecycleEvent="missed")] * 2}).encode())
    outcome = batches.accept_lifecycle(batch)
    assert outcome.connection_ids == (subscribed.connection_id,)
    assert (outcome.received, outcome.dropped) == (2, 0)


def test_lifecycle_reauthorization_required_reauthorizes_through_the_worker(subscribed):
    emulator = subscribed.emulator
    subscription = only_subscription(emulator)
    emulator.send_lifecycle_notification(subscription["id"], "reauthorizationRequired")
    tasks = eventually(lambda: run_maintenance_worker(), message="a maintenance task from the lifecycle event")
    assert tasks == [{"connection_id": subscribed.connection_id, "action": "reauthorize_subscription"}]
    assert any(r["method"] == "POST" and r["path"].endswith(f"/subscriptions/{subscription['id']}/reauthorize") for r in emulator.requests)
    assert only_subscription(emulator)["id"] == subscription["id"]


def test_lifecycle_subscription_removed_recreates_and_syncs(subscribed):
    emulator = subscribed.emulator
    old = only_subscription(emulator)
    emulator.send_lifecycle_notification(old["id"], "subscriptionRemoved")
    emulator.notifier.subscriptions.pop(old["id"])  # what the event says: Graph removed it
    eventually(lambda: run_maintenance_worker(), message="a maintenance task from the lifecycle event")
    new = only_subscription(emulator)
    assert new["id"] != old["id"] and new["clientState"] != old["clientState"]
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "subscription_removed"}]
    from functions import connections

    assert connections.require(subscribed.connection_id).subscription_id == new["id"]
    assert subscriptions.verify(old["id"], old["clientState"]) is None
    assert subscriptions.verify(new["id"], new["clientState"]) == subscribed.connection_id


def test_lifecycle_subscription_removed_while_graph_still_has_it_keeps_that_one(subscribed):
    emulator = subscribed.emulator
    old = only_subscription(emulator)
    emulator.send_lifecycle_notification(old["id"], "subscriptionRemoved")
    eventually(lambda: run_maintenance_worker(), message="a maintenance task from the lifecycle event")
    assert only_subscription(emulator)["id"] == old["id"]  # renewed: a POST would only meet a 409
    assert subscriptions.verify(old["id"], old["clientState"]) == subscribed.connection_id


def test_repeated_notifications_are_each_accepted_and_coalesced_into_one_sync(subscribed, app):
    # How fast it answers is measured in bench/webhook.py (p50/p99 against a bare function), not
    # asserted here: a wall-clock limit fails on a busy machine and proves nothing on a quiet one.
    subscription = only_subscription(subscribed.emulator)
    payload = {"value": [entry(subscription)] * 3}
    for _ in range(200):
        assert post_json(app, "/api/notifications", payload).status_code == 202
    assert queued_count(SYNC) == 1  # coalesced: no worker picked the first one up
