"""A sample product that integrates onedrive-mirror end to end: its own sign-in (a demo user),
"Connect OneDrive" (a connect session made by this backend), "Choose what to share" (the
mirror's picker, through a single-use link), the mirrored files with downloads, and a live feed
of the change events.

    MIRROR_URL=http://localhost:7071 MIRROR_FUNCTION_KEY=... AzureWebJobsStorage=... \\
        .venv/bin/python -m examples.product   (or: scripts/run --example)

Everything that talks to the mirror happens here, on the server, with the function key; the
browser only ever sees this product's pages, the mirror's sign-in and picker pages, and the bytes
of the files it downloads. The mirror's API is described in docs/openapi.json.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

log = logging.getLogger("example.product")

DEMO_USERS = {"demo": "demo"}  # a stand-in for the product's own accounts
COOKIE = "product_session"
HERE = os.path.dirname(__file__)
# This product's pages load only their own script and style: no inline script at all. No
# form-action: "Connect OneDrive" posts here and is redirected on to the mirror and to Microsoft,
# and browsers check every hop of a form's redirects against it.
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"


@dataclass
class Config:
    mirror_url: str
    function_key: str
    product_url: str
    storage: str  # the mirror's storage account (its change-events queue)
    secret: bytes

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            mirror_url=os.environ.get("MIRROR_URL", "http://localhost:7071").rstrip("/"),
            function_key=os.environ.get("MIRROR_FUNCTION_KEY", ""),
            product_url=os.environ.get("PRODUCT_URL", "http://localhost:8000").rstrip("/"),
            storage=os.environ.get("MIRROR_STORAGE") or os.environ.get("AzureWebJobsStorage", ""),  # noqa: SIM112 (the host's name)
            secret=os.environ.get("PRODUCT_SECRET", secrets.token_hex(16)).encode(),
        )


@dataclass
class Feed:
    """Change events read from the mirror's queue, kept per connection for the live feed."""

    events: dict[str, deque] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    counter: int = 0

    def add(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.counter += 1
            event = {**event, "seq": self.counter}
            self.events.setdefault(event.get("connectionId", ""), deque(maxlen=200)).append(event)
            self.changed.notify_all()

    def since(self, connection_id: str, seq: int) -> list[dict[str, Any]]:
        with self.changed:
            return [e for e in self.events.get(connection_id, ()) if e["seq"] > seq]


class Mirror:
    """The mirror's product API, with the function key (server side only)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.http = httpx.Client(base_url=config.mirror_url, headers={"x-functions-key": config.function_key}, timeout=30)

    def connect_link(self, ref: str, return_to: str) -> str:
        answer = self.http.post("/api/connect-sessions", json={"ref": ref, "return_to": return_to})
        if answer.status_code == 404:
            # A mirror from before connect sessions: its /api/connect took ref and return_to itself.
            return f"{self.config.mirror_url}/api/connect?ref={quote(ref)}&return_to={quote(return_to, safe='')}"
        answer.raise_for_status()
        return str(answer.json()["url"])

    def connection_of(self, ref: str) -> dict[str, Any] | None:
        answer = self.http.get("/api/connections", params={"ref": ref})
        answer.raise_for_status()
        found = [c for c in answer.json()["connections"] if c.get("state") == "active"] or answer.json()["connections"]
        return found[0] if found else None

    def picker_link(self, connection_id: str, return_to: str) -> str:
        answer = self.http.post(f"/api/connections/{connection_id}/picker-sessions", json={"return_to": return_to})
        answer.raise_for_status()
        return str(answer.json()["url"])

    def selection(self, connection_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/connections/{connection_id}/selection")
        answer.raise_for_status()
        return dict(answer.json())

    def files(self, connection_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            answer = self.http.get(f"/api/connections/{connection_id}/files", params={"cursor": cursor} if cursor else {})
            answer.raise_for_status()
            found += answer.json()["files"]
            cursor = answer.json().get("nextCursor")
            if not cursor or len(found) >= 1000:
                return found


def _sign(config: Config, value: str) -> str:
    mac = hmac.new(config.secret, value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def _user(request: Request) -> str | None:
    config: Config = request.app.state.config
    raw = request.cookies.get(COOKIE, "")
    value, _, mac = raw.rpartition(".")
    if value and hmac.compare_digest(_sign(config, value), raw):
        return value.split(":", 1)[0]
    return None


def _csrf(request: Request, user: str) -> str:
    config: Config = request.app.state.config
    return hmac.new(config.secret, f"csrf:{user}".encode(), hashlib.sha256).hexdigest()[:32]


def _page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
                f'<link rel="stylesheet" href="/static/app.css"></head><body><header><strong>Acme Notes</strong> '
                f"<span>(a sample product)</span></header><main>{body}</main>"
                f'<script src="/static/app.js"></script></body></html>')
    return HTMLResponse(document, status_code=status, headers={
        "Content-Security-Policy": CSP, "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})


async def home(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return _page(request, "Sign in", """<h1>Sign in</h1>
<form method="post" action="/login"><p><label for="user">User name</label><br><input id="user" name="user" autocomplete="username" value="demo"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password"></p>
<p class="hint">The demo user is <code>demo</code> / <code>demo</code>.</p><button type="submit">Sign in</button></form>""")
    mirror: Mirror = request.app.state.mirror
    connection = await asyncio.to_thread(mirror.connection_of, user)
    token = _csrf(request, user)
    esc = html.escape
    if connection is None:
        return _page(request, "Acme Notes", f"""<h1>Hello, {esc(user)}</h1>
<p>Bring your notes from OneDrive: connect it, then choose the folders Acme may read.</p>
<form method="post" action="/onedrive/connect"><input type="hidden" name="csrf" value="{token}">
<button type="submit" id="connect">Connect OneDrive</button></form>""")
    connection_id = connection["id"]
    files, chosen = await asyncio.gather(asyncio.to_thread(mirror.files, connection_id),
                                         asyncio.to_thread(mirror.selection, connection_id))
    shared = ("your whole drive" if chosen["mode"] == "drive" else "its app folder" if chosen["mode"] == "appFolder"
              else ", ".join(esc(i["path"] or i["name"]) for i in chosen["items"]))
    rows = "".join(
        f'<li><a href="/files/{quote(f["path"])}" download>{esc(f["path"])}</a> <span class="size">{f["size"]} bytes</span></li>'
        for f in files) or "<li>No files yet: they appear seconds after you share them.</li>"
    return _page(request, "Acme Notes", f"""<h1>Hello, {esc(user)}</h1>
<p>OneDrive of <strong>{esc(connection["account"].get("name") or connection["account"].get("email") or "")}</strong> is connected.
Shared with Acme: <span id="shared">{shared}</span>.</p>
<form method="post" action="/onedrive/pick"><input type="hidden" name="csrf" value="{token}">
<button type="submit" id="pick">Choose what to share</button></form>
<h2>Your files</h2><ul id="files">{rows}</ul>
<h2>Live changes</h2><ol id="feed" aria-live="polite" data-connection="{esc(connection_id, quote=True)}"></ol>""")


async def _form(request: Request) -> dict[str, str]:
    # Plain urlencoded forms (starlette's request.form() needs python-multipart, which we don't).
    return {name: values[0] for name, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()}


async def login(request: Request) -> Response:
    form = await _form(request)
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    if DEMO_USERS.get(user) != password:
        return RedirectResponse("/?failed=1", status_code=303)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, _sign(request.app.state.config, f"{user}:{secrets.token_hex(8)}"), httponly=True, samesite="lax")
    return response


async def _checked_user(request: Request) -> str | None:
    user = _user(request)
    form = await _form(request)
    if user is None or not hmac.compare_digest(str(form.get("csrf", "")), _csrf(request, user)):
        return None
    return user


async def connect(request: Request) -> Response:
    user = await _checked_user(request)
    if user is None:
        return PlainTextResponse("Sign in first.", status_code=403)
    config: Config = request.app.state.config
    link = await asyncio.to_thread(request.app.state.mirror.connect_link, user, f"{config.product_url}/onedrive/connected")
    return RedirectResponse(link, status_code=303)


async def connected(request: Request) -> Response:
    """Back from the mirror's sign-in: straight on to "choose what to share"."""
    user = _user(request)
    if user is None:
        return RedirectResponse("/", status_code=303)
    return await _to_picker(request, user)


async def pick(request: Request) -> Response:
    user = await _checked_user(request)
    if user is None:
        return PlainTextResponse("Sign in first.", status_code=403)
    return await _to_picker(request, user)


async def _to_picker(request: Request, user: str) -> Response:
    """A single-use picker link for the user's connection (made by the mirror's API), back here after."""
    mirror: Mirror = request.app.state.mirror
    connection = await asyncio.to_thread(mirror.connection_of, user)
    if connection is None:
        return RedirectResponse("/", status_code=303)
    config: Config = request.app.state.config
    link = await asyncio.to_thread(mirror.picker_link, connection["id"], f"{config.product_url}/")
    return RedirectResponse(link, status_code=303)


async def download(request: Request) -> Response:
    user = _user(request)
    if user is None:
        return PlainTextResponse("Sign in first.", status_code=403)
    mirror: Mirror = request.app.state.mirror
    connection = await asyncio.to_thread(mirror.connection_of, user)
    if connection is None:
        return PlainTextResponse("Not connected.", status_code=404)
    path = request.path_params["path"]
    answer = await asyncio.to_thread(mirror.http.get, f"/api/connections/{connection['id']}/files/{quote(path)}")
    if answer.is_redirect:  # a large file: a short-lived signed URL, fetched without our function key
        answer = await asyncio.to_thread(httpx.get, answer.headers["location"], timeout=60)
    if answer.status_code != 200:
        return PlainTextResponse("Not found.", status_code=404)
    name = path.rsplit("/", 1)[-1]
    return Response(answer.content, media_type=answer.headers.get("content-type", "application/octet-stream"),
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


async def events(request: Request) -> Response:
    """Server-sent events: this user's change events, as the queue consumer receives them."""
    user = _user(request)
    mirror: Mirror = request.app.state.mirror
    connection = await asyncio.to_thread(mirror.connection_of, user) if user else None
    if connection is None:
        return PlainTextResponse("Not connected.", status_code=404)
    connection_id = connection["id"]
    feed: Feed = request.app.state.feed

    async def stream():
        seq = 0
        yield ": connected\n\n"
        while not await request.is_disconnected():
            fresh = feed.since(connection_id, seq)
            for event in fresh:
                seq = event["seq"]
                yield f"data: {json.dumps(event)}\n\n"
            await asyncio.sleep(0.3)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ("app.js", "app.css"):
        return PlainTextResponse("Not found.", status_code=404)
    with open(os.path.join(HERE, "static", name), "rb") as source:
        body = source.read()
    return Response(body, media_type="text/javascript" if name.endswith(".js") else "text/css")


def consume_events(config: Config, feed: Feed, stop: threading.Event) -> None:
    """The product's queue consumer (docs/examples/consume_change_events.py): each event is kept
    for the live feed, then deleted from the queue."""
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(config.storage, "change-events")
    while not stop.is_set():
        try:
            handled = 0
            for message in queue.receive_messages(max_messages=32, visibility_timeout=60):
                feed.add(json.loads(base64.b64decode(message.content)))
                queue.delete_message(message)
                handled += 1
            if not handled:
                stop.wait(0.5)
        except Exception as error:  # the queue may not exist yet, or storage restarts
            log.warning("reading change events failed: %s", type(error).__name__)
            stop.wait(2)


def build(config: Config | None = None) -> Starlette:
    config = config or Config.from_env()
    app = Starlette(routes=[
        Route("/", home), Route("/login", login, methods=["POST"]),
        Route("/onedrive/connect", connect, methods=["POST"]), Route("/onedrive/connected", connected),
        Route("/onedrive/pick", pick, methods=["POST"]), Route("/files/{path:path}", download),
        Route("/events", events), Route("/static/{name}", static),
    ])
    app.state.config = config
    app.state.mirror = Mirror(config)
    app.state.feed = Feed()
    app.state.stop = threading.Event()
    if config.storage:
        threading.Thread(target=consume_events, args=(config, app.state.feed, app.state.stop), daemon=True,
                         name="change-events").start()
    return app


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    port = int(os.environ.get("PRODUCT_PORT", "8000"))
    uvicorn.run(build(), host="127.0.0.1", port=port, log_level="warning")
