"""Subscriptions and notifications against microsoft.md §2."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from .helpers import Hook, echo, graph_client, wait_for


@pytest.fixture
def graph(emulator, emulator_user):
    with graph_client(emulator) as client:
        yield client


@pytest.fixture
def hook():
    endpoint = Hook(echo)
    yield endpoint
    endpoint.close()


def in_minutes(minutes: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def subscribe(graph, url: str, resource: str = "me/drive/root", minutes: float = 4000, **extra):
    body = {
        "changeType": "updated",
        "notificationUrl": url,
        "resource": resource,
        "expirationDateTime": in_minutes(minutes),
        "clientState": "secret-client-state",
        **extra,
    }
    return graph.post("/subscriptions", json=body)


def test_subscription_accepted_when_the_endpoint_echoes_the_token(emulator, emulator_user, graph, hook):
    response = subscribe(graph, hook.url)
    assert response.status_code == 201, response.text
    body = response.json()
    for key in ("id", "resource", "applicationId", "changeType", "clientState", "notificationUrl",
                "expirationDateTime", "creatorId", "latestSupportedTlsVersion"):
        assert key in body
    assert body["applicationId"] == emulator.client_id and body["creatorId"] == emulator_user.id
    handshake = hook.requests[0]
    token = handshake.validation_token
    assert token.startswith("Validation: Testing client application reachability") and " " in token
    assert "%3A" in handshake.path and "%20" in handshake.path  # URL-encoded in the query
    assert handshake.headers["Content-Type"].startswith("text/plain") and handshake.body == b""
    assert emulator.subscriptions[0]["id"] == body["id"]


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: (200, "text/plain", b"wrong token"),
        lambda r: (200, "application/json", (r.validation_token or "").encode()),
        lambda r: (202, "text/plain", (r.validation_token or "").encode()),
        lambda r: (500, "text/plain", b""),
        lambda r: (200, "text/plain", quote(r.validation_token or "").encode()),  # not decoded
    ],
    ids=["wrong-body", "wrong-content-type", "not-200", "server-error", "still-encoded"],
)
def test_subscription_refused_when_the_endpoint_answers_wrongly(emulator, emulator_user, graph, answer):
    endpoint = Hook(answer)
    try:
        response = subscribe(graph, endpoint.url)
    finally:
        endpoint.close()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ValidationError"
    assert emulator.subscriptions == []


def test_subscription_refused_when_the_endpoint_is_too_slow(emulator, emulator_user, graph):
    emulator.validation_timeout = 0.3

    def slow(request):
        request_hook.release.wait(10)  # held until the test is over
        return echo(request)

    request_hook = Hook(slow)
    try:
        response = subscribe(graph, request_hook.url)
    finally:
        request_hook.close()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequest"
    assert "timed out" in response.json()["error"]["message"]


def test_lifecycle_url_is_validated_too(emulator, emulator_user, graph, hook):
    bad = Hook(lambda r: (404, "text/plain", b""))
    try:
        response = subscribe(graph, hook.url, lifecycleNotificationUrl=bad.url)
    finally:
        bad.close()
    assert response.status_code == 400 and response.json()["error"]["code"] == "ValidationError"
    assert subscribe(graph, hook.url, lifecycleNotificationUrl=hook.url).status_code == 201


def test_expiration_over_42300_minutes_is_an_extension_error(emulator, emulator_user, graph, hook):
    response = subscribe(graph, hook.url, minutes=42301)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ExtensionError"
    assert error["message"] == "Subscription expiration can only be 42300 minutes in the future."
    assert subscribe(graph, hook.url, minutes=42299).status_code == 201


def test_a_single_file_cannot_be_subscribed_but_a_folder_can(emulator, emulator_user, graph, hook):
    drive = emulator_user.drive
    file_id = drive.write_file("Docs/a.txt", b"x")
    assert subscribe(graph, hook.url, resource=f"me/drive/items/{file_id}").status_code == 400
    assert subscribe(graph, hook.url, resource=f"/me/drive/items/{drive.item_id('Docs')}").status_code == 201


def test_get_patch_reauthorize_delete_and_404s(emulator, emulator_user, graph, hook):
    subscription = subscribe(graph, hook.url).json()
    path = f"/subscriptions/{subscription['id']}"
    assert graph.get(path).json()["id"] == subscription["id"]
    assert [s["id"] for s in graph.get("/subscriptions").json()["value"]] == [subscription["id"]]
    renewed = graph.patch(path, json={"expirationDateTime": in_minutes(42000)})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > subscription["expirationDateTime"]
    assert graph.patch(path, json={"expirationDateTime": in_minutes(50000)}).json()["error"]["code"] == "ExtensionError"
    assert graph.post(path + "/reauthorize").status_code == 204
    assert graph.delete(path).status_code == 204
    for response in (graph.get(path), graph.patch(path, json={"expirationDateTime": in_minutes(60)}),
                     graph.delete(path), graph.post(path + "/reauthorize")):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "ResourceNotFound"
        assert response.json()["error"]["message"] == "The object was not found."


def test_expired_subscription_is_404(emulator, emulator_user, graph, hook):
    subscription = subscribe(graph, hook.url).json()
    emulator.expire_subscription(subscription["id"])
    response = graph.patch(f"/subscriptions/{subscription['id']}", json={"expirationDateTime": in_minutes(60)})
    assert response.status_code == 404
    assert emulator.subscriptions == []


def test_changes_are_batched_into_one_notification_with_the_real_shape(emulator, emulator_user, graph, hook):
    emulator.notification_debounce = 5  # held until flushed
    subscription = subscribe(graph, hook.url).json()
    drive = emulator_user.drive
    drive.write_file("a.txt", b"1")
    drive.write_file("b.txt", b"2")
    drive.delete("a.txt")
    emulator.flush_notifications()
    assert len(hook.notifications) == 1
    body = json.loads(hook.notifications[0].body)
    assert body == {
        "value": [
            {
                "subscriptionId": subscription["id"],
                "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                "changeType": "updated",
                "resource": "me/drive/root",
                "clientState": "secret-client-state",
                "tenantId": "9188040d-6c67-4c5b-b112-36a304b66dad",
                "resourceData": None,
            }
        ]
    }
    delivery = [d for d in emulator.deliveries if d["kind"] == "notification"][0]
    assert delivery["status"] == 202 and delivery["url"] == hook.url and delivery["response_time"] >= 0


def test_notifications_arrive_on_their_own_after_the_debounce(emulator, emulator_user, graph, hook):
    emulator.notification_debounce = 0.05
    subscribe(graph, hook.url)
    emulator_user.drive.write_file("a.txt", b"1")
    wait_for(lambda: hook.notifications, what="a notification")


def test_one_post_carries_every_subscription_of_a_url(emulator, emulator_user, graph, hook):
    emulator.notification_debounce = 5
    first = subscribe(graph, hook.url).json()["id"]
    second = subscribe(graph, hook.url).json()["id"]
    emulator_user.drive.write_file("a.txt", b"1")
    emulator.flush_notifications()
    ids = [entry["subscriptionId"] for entry in json.loads(hook.notifications[0].body)["value"]]
    assert sorted(ids) == sorted([first, second]) and len(hook.notifications) == 1


def test_failed_deliveries_are_retried_until_accepted(emulator, emulator_user, graph):
    answers = iter([500, 503, 202])

    def flaky(request):
        if request.validation_token is not None:
            return echo(request)
        return next(answers), "text/plain", b""

    endpoint = Hook(flaky)
    try:
        subscribe(graph, endpoint.url)
        emulator_user.drive.write_file("a.txt", b"1")
        emulator.flush_notifications()
    finally:
        endpoint.close()
    attempts = [d for d in emulator.deliveries if d["kind"] == "notification"]
    assert [(d["attempt"], d["status"]) for d in attempts] == [(1, 500), (2, 503), (3, 202)]


def test_slow_delivery_counts_as_timeout_and_is_retried(emulator, emulator_user, graph):
    emulator.notification_timeout = 0.2
    slow_once = {"left": 1}

    def slow(request):
        if request.validation_token is not None:
            return echo(request)
        if slow_once["left"]:
            slow_once["left"] -= 1
            endpoint.release.wait(2)
        return 202, "text/plain", b""

    endpoint = Hook(slow)
    try:
        subscribe(graph, endpoint.url)
        emulator_user.drive.write_file("a.txt", b"1")
        emulator.flush_notifications()
    finally:
        endpoint.close()
    attempts = [d for d in emulator.deliveries if d["kind"] == "notification"]
    assert attempts[0]["error"] == "timeout" and attempts[-1]["status"] == 202


def test_paused_notifications_are_lost_and_duplicates_can_be_forced(emulator, emulator_user, graph, hook):
    emulator.notification_debounce = 5
    subscribe(graph, hook.url)
    emulator.notifications_paused = True
    emulator_user.drive.write_file("a.txt", b"1")
    emulator.flush_notifications()
    assert hook.notifications == []
    emulator.notifications_paused = False
    emulator.notifications_duplicate = True
    emulator_user.drive.write_file("b.txt", b"1")
    emulator.flush_notifications()
    assert len(hook.notifications) == 2
    assert hook.notifications[0].body == hook.notifications[1].body


def test_folder_subscription_hears_only_its_folder(emulator, emulator_user, graph, hook):
    emulator.notification_debounce = 5
    drive = emulator_user.drive
    folder_id = drive.create_folder("Watched")
    subscribe(graph, hook.url, resource=f"me/drive/items/{folder_id}")
    drive.write_file("Elsewhere/a.txt", b"1")
    emulator.flush_notifications()
    assert hook.notifications == []
    drive.write_file("Watched/Deep/b.txt", b"1")
    emulator.flush_notifications()
    assert len(hook.notifications) == 1


def test_lifecycle_notification_is_sent_to_the_lifecycle_url(emulator, emulator_user, graph, hook):
    subscription = subscribe(graph, hook.url, lifecycleNotificationUrl=hook.url).json()
    emulator.send_lifecycle_notification(subscription["id"])
    wait_for(lambda: hook.notifications, what="a lifecycle notification")
    entry = json.loads(hook.notifications[0].body)["value"][0]
    assert entry["lifecycleEvent"] == "reauthorizationRequired"
    assert entry["subscriptionId"] == subscription["id"] and entry["clientState"] == "secret-client-state"
