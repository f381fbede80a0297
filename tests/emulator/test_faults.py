"""Fault injection (sync-scenarios.md 20) and the request log."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import pytest

from .helpers import graph_client, sign_in


@pytest.fixture
def graph(emulator, emulator_user):
    with graph_client(emulator) as client:
        yield client


@pytest.mark.parametrize("retry_after", ["2", "2.128", 41])
def test_429_with_retry_after_for_the_next_n_calls(emulator, emulator_user, graph, retry_after):
    fault = emulator.faults.inject(method="GET", path=r"/v1.0/.*/delta", status=429, retry_after=retry_after, times=2)
    for _ in range(2):
        response = graph.get("/me/drive/root/delta")
        assert response.status_code == 429
        assert response.headers["retry-after"] == str(retry_after)
        assert response.json()["error"]["code"] == "activityLimitReached"
        assert {"date", "request-id", "client-request-id"} <= set(response.json()["error"]["innerError"])
    assert graph.get("/me/drive/root/delta").status_code == 200
    assert graph.get("/me").status_code == 200
    assert fault.fired == 2


def test_retry_after_as_an_http_date(emulator, emulator_user, graph):
    emulator.faults.inject(path="/me$", status=429, retry_after_http_date_in=30, times=1)
    response = graph.get("/me")
    moment = parsedate_to_datetime(response.headers["retry-after"])
    assert 20 < (moment - datetime.now(UTC)).total_seconds() <= 31
    emulator.faults.inject(path="/me$", status=503, retry_after=datetime(2030, 1, 1, tzinfo=UTC), times=1)
    assert graph.get("/me").headers["retry-after"] == "Tue, 01 Jan 2030 00:00:00 GMT"


@pytest.mark.parametrize(
    "status, code",
    [(503, "serviceNotAvailable"), (500, "generalException"), (504, "gatewayTimeout"), (509, "bandwidthLimitExceeded")],
)
def test_server_errors_with_graph_bodies(emulator, emulator_user, graph, status, code):
    emulator.faults.inject(path="/v1.0/me/drive$", status=status, times=1)
    response = graph.get("/me/drive")
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert graph.get("/me/drive").status_code == 200


def test_a_graph_fault_can_carry_a_chosen_code_and_message(emulator, emulator_user, graph):
    # Graph's subscription refusals (403 limit, 401 ExtensionError) differ only in code and text.
    emulator.faults.inject(path="/v1.0/me/drive$", status=403, code="ExtensionError",
                           message="Maximum number of subscriptions has been reached.", times=1)
    error = graph.get("/me/drive").json()["error"]
    assert error["code"] == "ExtensionError"
    assert error["message"] == "Maximum number of subscriptions has been reached."
    emulator.faults.inject(path="/v1.0/me/drive$", status=403, times=1)
    assert graph.get("/me/drive").json()["error"]["message"] == "Injected fault."


def test_fraction_of_calls_with_a_seeded_rng(emulator, emulator_user, graph):
    def run() -> list[int]:
        emulator.faults.clear()
        emulator.faults.inject(path="/me$", status=503, fraction=0.3, seed=5)
        return [graph.get("/me").status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second  # reproducible
    assert 5 <= first.count(503) <= 35 and first.count(200) > 0


def test_connection_reset(emulator, emulator_user, graph):
    emulator.faults.inject(path="/me$", kind="reset", times=1)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        graph.get("/me")
    assert graph.get("/me").status_code == 200
    assert any(entry["fault"] == "reset" for entry in emulator.requests)


def test_timeout_holds_the_request_until_the_client_gives_up(emulator, emulator_user, graph):
    emulator.faults.inject(path="/me$", kind="timeout", times=1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        graph.get("/me", timeout=0.3)
    assert time.monotonic() - started < 5
    assert graph.get("/me").status_code == 200


def test_latency_delays_then_answers(emulator, emulator_user, graph):
    emulator.faults.inject(path="/me$", latency=0.3, times=1)
    started = time.monotonic()
    assert graph.get("/me").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_on_the_token_endpoint_use_sign_in_error_bodies(emulator, emulator_user):
    tokens = sign_in(emulator)
    emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", status=503, retry_after="5", times=1)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
    }
    url = f"{emulator.authority}/oauth2/v2.0/token"
    response = httpx.post(url, data=form)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"] == "temporarily_unavailable"
    assert httpx.post(url, data=form).status_code == 200
    emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", kind="reset", times=1)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(url, data=form)


def test_faults_on_the_download_host(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("big.bin", size=4 << 20, seed=3)
    location = graph.get(f"/me/drive/items/{quote(item_id)}/content").headers["location"]
    emulator.faults.inject(host="download", path="^/download/", status=503, retry_after="1", times=1)
    assert httpx.get(location).status_code == 503
    emulator.faults.inject(host="download", path="^/download/", after_bytes=1 << 20, times=1)
    received = 0
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)), httpx.stream("GET", location) as response:
        for chunk in response.iter_raw():
            received += len(chunk)
    assert 0 < received <= 1 << 20
    resumed = httpx.get(location, headers={"Range": f"bytes={received}-"})
    assert resumed.status_code == 206 and len(resumed.content) == (4 << 20) - received


def test_request_log_records_calls_without_secrets(emulator, emulator_user, graph):
    tokens = sign_in(emulator)
    item_id = emulator_user.drive.write_file("a.txt", b"x")
    location = graph.get(f"/me/drive/items/{quote(item_id)}/content").headers["location"]
    httpx.get(location)
    log = emulator.requests
    assert {"method": "GET", "path": "/v1.0/me/drive/items/" + item_id + "/content", "status": 302}.items() <= [
        e for e in log if e["path"].endswith("/content")
    ][0].items()
    assert any(e["host"] == "download" and e["status"] == 200 for e in log)
    assert any(e["path"].endswith("/oauth2/v2.0/token") and e["status"] == 200 for e in log)
    text = repr(log)
    for secret in (tokens["access_token"], tokens["refresh_token"], emulator.client_secret, location.split("/")[-2]):
        assert secret not in text


def test_clear_removes_every_fault(emulator, emulator_user, graph):
    emulator.faults.inject(path=".*", status=500)
    assert graph.get("/me").status_code == 500
    emulator.faults.clear()
    assert graph.get("/me").status_code == 200


@pytest.mark.parametrize(
    "name, status, error, code",
    [
        ("interaction_required", 400, "interaction_required", 50076),
        ("consent_required", 400, "consent_required", 65001),
        ("invalid_client", 401, "invalid_client", 7000215),
        ("client_secret_expired", 401, "invalid_client", 7000222),
    ],
)
def test_sign_in_errors_as_faults_on_the_token_endpoint(emulator, emulator_user, name, status, error, code):
    tokens = sign_in(emulator)
    fault = emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error=name, times=1)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": emulator.client_id, "client_secret": emulator.client_secret}
    url = f"{emulator.authority}/oauth2/v2.0/token"
    response = httpx.post(url, data=form)
    body = response.json()
    assert response.status_code == status and body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ") and "Trace ID:" in body["error_description"]
    if name in ("invalid_client", "client_secret_expired"):
        assert emulator.client_id in body["error_description"]
    assert fault.fired == 1 and httpx.post(url, data=form).status_code == 200


def test_unknown_token_error_is_refused(emulator):
    with pytest.raises(ValueError):
        emulator.faults.inject(path="/oauth2/", token_error="no_such_error")
