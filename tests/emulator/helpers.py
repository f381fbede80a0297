"""Helpers for the emulator's own tests: sign-in, polling, a tiny webhook endpoint."""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

REDIRECT_URI = "http://localhost:7071/api/oauth/callback"
SCOPES = "Files.ReadWrite offline_access User.Read"


def wait_for(condition: Callable[[], object], timeout: float = 10, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize(emu, challenge: str, redirect_uri: str = REDIRECT_URI, scope: str = SCOPES, **extra) -> httpx.Response:
    params = {
        "client_id": emu.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "response_mode": "query",
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return httpx.get(f"{emu.authority}/oauth2/v2.0/authorize", params=params)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def get_code(emu, redirect_uri: str = REDIRECT_URI, scope: str = SCOPES) -> tuple[str, str]:
    """-> (code, verifier), with auto-consent on."""
    emu.auto_consent = True
    verifier, challenge = pkce_pair()
    response = authorize(emu, challenge, redirect_uri, scope)
    assert response.status_code == 302, response.text
    return query_of(response.headers["location"])["code"], verifier


def redeem(emu, code: str, verifier: str, redirect_uri: str = REDIRECT_URI, **overrides) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        **overrides,
    }
    return httpx.post(f"{emu.authority}/oauth2/v2.0/token", data={k: v for k, v in form.items() if v is not None})


def sign_in(emu, scope: str = SCOPES) -> dict:
    code, verifier = get_code(emu, scope=scope)
    response = redeem(emu, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def graph_client(emu, scope: str = SCOPES) -> httpx.Client:
    tokens = sign_in(emu, scope)
    return httpx.Client(base_url=emu.graph_base_url, headers={"Authorization": f"Bearer {tokens['access_token']}"})


def all_delta_pages(client: httpx.Client, url: str = "/me/drive/root/delta") -> tuple[list[list[dict]], str]:
    """Follow nextLinks until a deltaLink: -> (pages of items, deltaLink)."""
    pages = []
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


@dataclass
class Hook:
    """A tiny local HTTP endpoint playing the app's webhook. ``behaviour(handler) -> (status,
    content_type, body)`` decides each answer; requests are recorded."""

    behaviour: Callable[[HookRequest], tuple[int, str, bytes]]
    requests: list[HookRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                request = HookRequest(self.path, dict(self.headers), self.rfile.read(length))
                hook.requests.append(request)
                status, content_type, body = hook.behaviour(request)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the emulator gave up waiting

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/notifications"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def notifications(self) -> list[HookRequest]:
        return [r for r in self.requests if "validationToken" not in r.path]


@dataclass
class HookRequest:
    path: str
    headers: dict
    body: bytes

    @property
    def validation_token(self) -> str | None:
        values = parse_qs(urlsplit(self.path).query).get("validationToken")
        return values[0] if values else None


def echo(request: HookRequest) -> tuple[int, str, bytes]:
    """A correct endpoint: echoes the decoded validation token, 202 for notifications."""
    if request.validation_token is not None:
        return 200, "text/plain; charset=utf-8", request.validation_token.encode()
    return 202, "text/plain", b""
