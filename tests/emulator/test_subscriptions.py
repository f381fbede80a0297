"""Subscriptions and notifications against microsoft.md §2."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from .helpers import Hook, echo, graph_client, sign_in, wait_for


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
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


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
    folder_id = emulator_user.drive.create_folder("Docs")
    first = subscribe(graph, hook.url).json()["id"]
    second = subscribe(graph, hook.url, resource=f"me/drive/items/{folder_id}").json()["id"]
    emulator_user.drive.write_file("Docs/a.txt", b"1")
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


# ----- the real service's rules (issue 19, "Emulator: the real behaviour by default") ---------------


def test_a_second_subscription_for_the_same_resource_is_409(emulator, emulator_user, graph, hook):
    first = subscribe(graph, hook.url).json()
    drive_id = emulator_user.drive_id
    for resource in ("me/drive/root", f"drives/{drive_id}/root", f"/drives/{drive_id.upper()}/root"):
        response = subscribe(graph, hook.url, resource=resource)
        assert response.status_code == 409, resource
        error = response.json()["error"]
        assert error["code"] == "ObjectIdentifierInUse"
        assert error["message"] == f"Subscription Id {first['id']} already exists for the requested combination"
    folder_id = emulator_user.drive.create_folder("Docs")
    assert subscribe(graph, hook.url, resource=f"me/drive/items/{folder_id}").status_code == 201  # another resource
    assert graph.delete(f"/subscriptions/{first['id']}").status_code == 204
    assert subscribe(graph, hook.url).status_code == 201  # the combination is free again


def test_an_expired_subscription_does_not_block_a_new_one(emulator, emulator_user, graph, hook):
    emulator.expire_subscription(subscribe(graph, hook.url).json()["id"])
    assert subscribe(graph, hook.url).status_code == 201


def test_duplicates_only_with_the_leniency_switch(emulator, emulator_user, graph, hook):
    emulator.allow_duplicate_subscriptions = True
    assert [subscribe(graph, hook.url).status_code for _ in range(2)] == [201, 201]
    assert len(emulator.subscriptions) == 2


def test_client_state_is_at_most_128_characters(emulator, emulator_user, graph, hook):
    response = subscribe(graph, hook.url, clientState="x" * 129)
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidRequest"
    assert hook.requests == []  # refused before any handshake
    assert subscribe(graph, hook.url, clientState="x" * 128).status_code == 201


def test_subscription_writes_need_files_readwrite(emulator, emulator_user, graph, hook):
    subscription = subscribe(graph, hook.url).json()
    tokens = sign_in(emulator, scope="Files.Read offline_access User.Read")
    with httpx.Client(base_url=emulator.graph_base_url, headers={"Authorization": f"Bearer {tokens['access_token']}"}) as reader:
        path = f"/subscriptions/{subscription['id']}"
        refused = [
            subscribe(reader, hook.url, resource=f"me/drive/items/{emulator_user.drive.create_folder('F')}"),
            reader.patch(path, json={"expirationDateTime": in_minutes(60)}),
            reader.delete(path),
            reader.post(path + "/reauthorize"),
        ]
        assert [r.status_code for r in refused] == [403] * 4
        assert all(r.json()["error"]["code"] == "ExtensionError" for r in refused)
        assert reader.get(path).status_code == 200  # reading is not a write
    assert graph.get(f"/subscriptions/{subscription['id']}").status_code == 200  # nothing was deleted


def test_notification_urls_must_be_https_unless_http_is_allowed(emulator, emulator_user, graph, hook):
    emulator.allow_http_notification_urls = False
    for url, lifecycle in ((hook.url, None), ("https://127.0.0.1:9/api/notifications", hook.url)):
        extra = {"lifecycleNotificationUrl": lifecycle} if lifecycle else {}
        response = subscribe(graph, url, **extra)
        assert response.status_code == 400 and "HTTPS" in response.json()["error"]["message"]
    assert hook.requests == []
    # An https URL passes the rule and goes on to the handshake (nothing listens there: it fails).
    response = subscribe(graph, "https://127.0.0.1:9/api/notifications")
    assert response.json()["error"]["code"] == "ValidationError"


def test_the_lifetime_cap_is_a_setting_with_the_real_error(emulator, emulator_user, graph, hook):
    emulator.max_subscription_minutes = 4230
    response = subscribe(graph, hook.url, minutes=4231)
    assert response.status_code == 400
    assert response.json()["error"] == {**response.json()["error"], "code": "ExtensionError",
                                         "message": "Subscription expiration can only be 4230 minutes in the future."}
    subscription = subscribe(graph, hook.url, minutes=4229).json()
    renewal = graph.patch(f"/subscriptions/{subscription['id']}", json={"expirationDateTime": in_minutes(5000)})
    assert renewal.json()["error"]["message"] == "Subscription expiration can only be 4230 minutes in the future."


def notifications_of(emulator) -> list[dict]:
    return [d for d in emulator.deliveries if d["kind"] == "notification"]


def test_every_non_2xx_answer_is_retried_4xx_too(emulator, emulator_user, graph):
    answers = iter([400, 404, 410, 202])

    def refusing(request):
        if request.validation_token is not None:
            return echo(request)
        return next(answers), "text/plain", b""

    endpoint = Hook(refusing)
    try:
        subscribe(graph, endpoint.url)
        emulator_user.drive.write_file("a.txt", b"1")
        emulator.flush_notifications()
    finally:
        endpoint.close()
    assert [(d["attempt"], d["status"]) for d in notifications_of(emulator)] == [(1, 400), (2, 404), (3, 410), (4, 202)]


def test_retries_go_on_for_four_hours_of_modelled_time_then_stop(emulator, emulator_user, graph):
    endpoint = Hook(lambda r: echo(r) if r.validation_token is not None else (503, "text/plain", b""))
    try:
        subscribe(graph, endpoint.url)
        started = time.monotonic()
        emulator_user.drive.write_file("a.txt", b"1")
        emulator.flush_notifications()
        elapsed = time.monotonic() - started
    finally:
        endpoint.close()
    attempts = [d for d in notifications_of(emulator) if d["status"] == 503]
    gave_up = [d for d in notifications_of(emulator) if d["error"] == "gave up: retry window over"]
    # Waits of 1, 2, 4 ... 1024 s, then 1,800 s: the 18th attempt comes 3.6 h after the first, a 19th
    # would be past 4 h.
    assert [d["attempt"] for d in attempts] == list(range(1, 19)) and len(gave_up) == 1
    assert 3.5 * 3600 < attempts[-1]["retrying_for"] <= 4 * 3600
    assert elapsed < 10, "modelled time: the test must not wait hours"


def test_slow_answers_delay_then_drop_deliveries(emulator, emulator_user, graph):
    emulator.time_scale = 1
    emulator.notification_debounce = 5  # sent when flushed
    emulator.slow_response_seconds = 0.5  # Graph's is 2.9 s; far above a plain answer, even on a busy machine
    emulator.slow_min_notifications = 10
    emulator.slow_delay_seconds = 0.2  # modelled seconds; Graph's are 600
    slow_next = {"value": False}

    def answer(request):
        if request.validation_token is not None:
            return echo(request)
        if slow_next["value"]:
            time.sleep(0.7)
        return 202, "text/plain", b""

    endpoint = Hook(answer)

    def one_notification(slow: bool) -> dict:
        slow_next["value"] = slow
        emulator_user.drive.write_file("a.txt", str(time.monotonic()).encode())
        emulator.flush_notifications()
        return notifications_of(emulator)[-1]

    try:
        subscribe(graph, endpoint.url)
        for index in range(10):  # 1 slow in 10: 10%
            assert one_notification(slow=index == 0)["delayed"] == 0
        delayed = one_notification(slow=True)  # 2 slow in 11 after this one
        assert delayed["delayed"] == 0.2 and delayed["status"] == 202
        before = len(endpoint.notifications)
        dropped = one_notification(slow=False)  # 2/11 = 18% slow: dropped, never sent
        assert dropped["error"] == "dropped: slow endpoint" and dropped["status"] is None
        assert len(endpoint.notifications) == before
    finally:
        endpoint.close()
