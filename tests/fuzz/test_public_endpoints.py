"""Hostile and malformed input to every endpoint that is not the product API (that one is checked
against its OpenAPI document in tests/product_api): never a 5xx, never a queue message, never a
stored change. The product API's own fuzzing lives with it; here: connect, the OAuth callback,
notifications, lifecycle, and the status page."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import stored
from .strategies import content_types, header_text, hostile_text, notification_bodies, query_params

# One served app for all examples of a test: the state it must not change is checked per example.
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def api(app_server):
    with app_server.client(timeout=30) as client:
        yield client


@pytest.fixture
def anonymous(app_server):
    import httpx

    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        yield client


def _unchanged(before, response, *, allowed: tuple[str, ...] = ()) -> None:
    after = stored.snapshot()
    changed = {k: v for k, v in stored.changes(before, after).items() if k not in allowed}
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert not changed, f"HTTP {response.status_code} changed stored state: {changed}"
    assert stored.queued_messages(after) == stored.queued_messages(before)


@FUZZ
@given(params=query_params, cookie=header_text)
def test_connect_without_a_product_made_session_is_refused_and_changes_nothing(anonymous, params, cookie):
    # Only a connect session created with the function key starts a sign-in: whatever a stranger
    # puts in the query, the answer is a 4xx page and no row is written (issue 16: one per request).
    before = stored.snapshot()
    response = anonymous.get("/api/connect", params=params, headers={"cookie": cookie}, follow_redirects=False)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    _unchanged(before, response)


@FUZZ
@given(params=query_params, cookie=header_text)
def test_callback_with_forged_or_garbage_parameters_is_refused_and_changes_nothing(anonymous, params, cookie):
    before = stored.snapshot()
    response = anonymous.get("/api/oauth/callback", params=params, headers={"cookie": cookie}, follow_redirects=False)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if response.is_redirect:  # never bounce a forged callback anywhere but our own pages
        assert urlsplit(response.headers["location"]).netloc in ("", urlsplit(anonymous.base_url.__str__()).netloc)
    _unchanged(before, response)


@FUZZ
@given(body=notification_bodies("notification"), content_type=content_types,
       token=st.one_of(st.none(), hostile_text))
def test_notifications_with_garbage_or_unknown_subscriptions_enqueue_nothing(anonymous, body, content_type, token):
    before = stored.snapshot()
    params = {} if token is None else {"validationToken": token}
    response = anonymous.post("/api/notifications", params=params, content=body, headers={"content-type": content_type})
    if token is not None and response.status_code == 200:
        # The validation echo reflects caller input: it must never be served as HTML.
        assert response.headers.get("content-type", "").startswith("text/plain")
    _unchanged(before, response)


@FUZZ
@given(body=notification_bodies("lifecycle"), content_type=content_types,
       token=st.one_of(st.none(), hostile_text))
def test_lifecycle_with_garbage_or_unknown_subscriptions_changes_nothing(anonymous, body, content_type, token):
    before = stored.snapshot()
    params = {} if token is None else {"validationToken": token}
    response = anonymous.post("/api/lifecycle", params=params, content=body, headers={"content-type": content_type})
    if token is not None and response.status_code == 200:
        assert response.headers.get("content-type", "").startswith("text/plain")
    _unchanged(before, response)


@FUZZ
@given(path=st.one_of(st.just(""), st.text(min_size=1, max_size=60).map(lambda s: "/" + s.lstrip("/"))),
       params=query_params, with_key=st.booleans())
def test_status_pages_refuse_strangers_and_never_fail(app_server, path, params, with_key):
    import httpx

    headers = {"x-functions-key": app_server.function_key} if with_key else {}
    with httpx.Client(base_url=app_server.url, timeout=30, headers=headers) as client:
        before = stored.snapshot()
        response = client.get("/api/status" + quote(path, safe="/"), params=params)
    if not with_key:
        assert response.status_code in (401, 404), response.status_code
    _unchanged(before, response)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("route", ["/api/connect", "/api/oauth/callback", "/api/notifications", "/api/lifecycle"])
def test_other_methods_are_refused_without_side_effects(anonymous, route, method):
    before = stored.snapshot()
    response = anonymous.request(method, route, content=b'{"value": []}')
    assert response.status_code in (404, 405), response.status_code
    _unchanged(before, response)


def _notification_for(subscription: dict, client_state) -> bytes:
    import json

    return json.dumps({"value": [{"subscriptionId": subscription["id"], "clientState": client_state,
                                  "changeType": "updated", "resource": subscription["resource"],
                                  "tenantId": "9188040d-6c67-4c5b-b112-36a304b66dad",
                                  "subscriptionExpirationDateTime": subscription["expirationDateTime"]}]}).encode()


def test_the_genuine_notification_enqueues_a_sync(connected_drive, anonymous):
    # The control for the spoofing test below: the same request with the right clientState is seen.
    subscription = connected_drive.emulator.subscriptions[0]
    before = stored.snapshot()
    response = anonymous.post("/api/notifications", content=_notification_for(subscription, subscription["clientState"]),
                              headers={"content-type": "application/json"})
    assert response.status_code == 202
    assert stored.queued_messages(stored.snapshot()) > stored.queued_messages(before)


NEAR_MISSES = {
    "swapped case": str.swapcase, "trailing space": lambda cs: cs + " ", "truncated": lambda cs: cs[:-1],
    "doubled": lambda cs: cs * 2, "one character changed": lambda cs: cs[:-1] + ("A" if cs[-1:] != "A" else "B"),
}


@FUZZ
@given(client_state=st.one_of(st.none(), hostile_text, st.integers(), st.sampled_from(sorted(NEAR_MISSES))))
def test_notifications_for_a_real_subscription_with_a_wrong_client_state_enqueue_nothing(connected_drive, anonymous, client_state):
    subscription = connected_drive.emulator.subscriptions[0]
    if isinstance(client_state, str) and client_state in NEAR_MISSES:
        client_state = NEAR_MISSES[client_state](subscription["clientState"])
    if client_state == subscription["clientState"]:
        return
    before = stored.snapshot()
    response = anonymous.post("/api/notifications", content=_notification_for(subscription, client_state),
                              headers={"content-type": "application/json"})
    _unchanged(before, response)
