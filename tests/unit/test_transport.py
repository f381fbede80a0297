"""The retry policy for every call to Microsoft, against a scripted server over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.serving import ServerThread
from functions.errors import Throttled, Unavailable
from functions.microsoft import transport
from functions.microsoft.transport import Deadline, parse_retry_after


def test_retry_after_accepts_integer_decimal_and_http_date():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("41") == 41
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=315), usegmt=True), now=now) == pytest.approx(315)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class Script:
    """Answers each request with the next scripted (status, headers) and records arrival times."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.arrivals: list[float] = []

    async def handle(self, request) -> Response:
        self.arrivals.append(time.monotonic())
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return JSONResponse({"n": len(self.arrivals)}, status_code=status, headers=headers)


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(transport, "BASE_BACKOFF_SECONDS", 0.01)
    servers = []

    def serve(script: Script) -> str:
        server = ServerThread(Starlette(routes=[Route("/x", script.handle, methods=["GET"])])).start()
        servers.append(server)
        return server.url + "/x"

    yield serve
    for server in servers:
        server.stop()


def get(url: str, deadline: Deadline | None = None) -> httpx.Response:
    return transport.send(lambda: transport.client().build_request("GET", url), deadline=deadline)


def test_429_waits_the_retry_after_then_succeeds(scripted):
    script = Script((429, {"Retry-After": "0.3"}))
    response = get(scripted(script))
    assert response.status_code == 200
    assert script.arrivals[1] - script.arrivals[0] >= 0.3


def test_5xx_are_retried_with_backoff_until_success(scripted):
    script = Script((500, {}), (503, {}), (504, {}))
    assert get(scripted(script)).json() == {"n": 4}


def test_persistent_5xx_raises_unavailable_after_the_attempt_limit(scripted):
    script = Script(*[(500, {})] * 20)
    with pytest.raises(Unavailable):
        get(scripted(script))
    assert len(script.arrivals) == transport.MAX_ATTEMPTS


def test_a_wait_longer_than_the_budget_is_raised_not_slept(scripted):
    script = Script((429, {"Retry-After": "30"}))
    started = time.monotonic()
    with pytest.raises(Throttled) as raised:
        get(scripted(script), deadline=Deadline(5))
    assert raised.value.retry_after == 30
    assert time.monotonic() - started < 5


def test_client_errors_are_returned_without_retry(scripted):
    script = Script((404, {}))
    assert get(scripted(script)).status_code == 404
    assert len(script.arrivals) == 1


def test_refused_connections_become_unavailable(monkeypatch):
    monkeypatch.setattr(transport, "BASE_BACKOFF_SECONDS", 0.01)
    from devtools.serving import free_port

    with pytest.raises(Unavailable) as raised:
        get(f"http://127.0.0.1:{free_port()}/x")
    assert "ConnectError" in str(raised.value)
