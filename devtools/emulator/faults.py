"""Fault injection and the request log, as ASGI middleware on both origins.

A fault matches on method, a regex searched in the path, and the origin ("api" for Graph and
sign-in, "download" for the pre-authenticated content host). It fires for the next ``times``
matching calls, or on a ``fraction`` of them (seeded RNG), or always until cleared.

Kinds: an HTTP status (429/503/500/504/509/... with an optional Retry-After as given: integer,
decimal or an HTTP date), "reset" (the socket is closed with SO_LINGER 0: a real TCP RST, no
response), "timeout" (no answer until the client gives up, then a reset), "latency" (a delay,
then the normal answer), and ``after_bytes`` (the headers and that many body bytes, then a
reset: a transfer cut in the middle).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from .errors import WWW_AUTHENTICATE

GRAPH_CODES = {
    400: "invalidRequest",
    401: "InvalidAuthenticationToken",
    403: "accessDenied",
    404: "itemNotFound",
    409: "nameAlreadyExists",
    410: "resyncRequired",
    423: "resourceLocked",
    429: "activityLimitReached",
    500: "generalException",
    501: "notSupported",
    502: "badGateway",
    503: "serviceNotAvailable",
    504: "gatewayTimeout",
    507: "quotaLimitReached",
    509: "bandwidthLimitExceeded",
}
# Sign-in's error names for the same statuses (microsoft.md §1).
TOKEN_ERRORS = {429: "temporarily_unavailable", 503: "temporarily_unavailable", 500: "server_error"}


@dataclass
class Fault:
    id: int
    path: str
    method: str | None = None
    host: str | None = None  # "api" | "download" | None (both)
    kind: str = "status"  # "status" | "reset" | "timeout" | "latency"
    status: int | None = None
    retry_after: str | None = None
    latency: float = 0.0
    times: int | None = None
    fraction: float | None = None
    seed: int = 0
    after_bytes: int | None = None
    hang: float = 120.0  # "timeout": the longest the request is held
    retry_after_in: float | None = None  # Retry-After as the HTTP date this many seconds ahead
    fired: int = 0
    _pattern: re.Pattern = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self._rng = random.Random(self.seed)

    def public(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def retry_after_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value.astimezone(timezone.utc), usegmt=True)
    return str(value)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._next_id = 1

    def inject(
        self,
        method: str | None = None,
        path: str = ".*",
        status: int | None = None,
        retry_after: Any = None,
        times: int | None = None,
        fraction: float | None = None,
        seed: int = 0,
        kind: str | None = None,
        latency: float = 0.0,
        host: str | None = None,
        after_bytes: int | None = None,
        hang: float = 120.0,
        retry_after_http_date_in: float | None = None,
    ) -> Fault:
        """Add a rule; returns it (``fault.fired`` counts how often it fired).

        ``retry_after`` is sent as given ("2", "2.128", 41) or as an HTTP date for a datetime;
        ``retry_after_http_date_in=N`` sends the HTTP date N seconds from when it fires."""
        if kind is None:
            kind = "status" if status is not None else ("latency" if latency else "status")
        if kind not in ("status", "reset", "timeout", "latency"):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "status" and status is None and after_bytes is None:
            raise ValueError("a status fault needs a status")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                path=path,
                method=method.upper() if method else None,
                host=host,
                kind=kind,
                status=status,
                retry_after=retry_after_value(retry_after),
                latency=latency,
                times=times,
                fraction=fraction,
                seed=seed,
                after_bytes=after_bytes,
                hang=hang,
                retry_after_in=retry_after_http_date_in,
            )
            self._next_id += 1
            self._rules.append(fault)
            return fault

    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._rules = [f for f in self._rules if f.id != fault_id]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def match(self, method: str, path: str, host: str) -> Fault | None:
        with self._lock:
            for fault in self._rules:
                if fault.method and fault.method != method:
                    continue
                if fault.host and fault.host != host:
                    continue
                if not fault._pattern.search(path):
                    continue
                if fault.fraction is not None and fault._rng.random() >= fault.fraction:
                    continue
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._rules.remove(fault)
                return fault
        return None


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[dict] = []

    def add(self, entry: dict) -> None:
        with self._lock:
            self.entries.append(entry)

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self.entries]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()


def reset_connection(scope: dict) -> None:
    """Close the client's socket abruptly: SO_LINGER 0 makes the kernel send a TCP RST."""
    transport = scope.get("extensions", {}).get("emulator.transport")
    if transport is None:
        raise RuntimeError("connection reset needs the emulator's uvicorn protocol")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


UNLOGGED_PREFIXES = ("/_emulator", "/static")


class FaultMiddleware:
    """Applies faults and records every request (method, path, status; never a secret)."""

    def __init__(self, app, faults: Faults, log: RequestLog, host: str) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.host = host

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(UNLOGGED_PREFIXES) or (self.host == "api" and path in ("/", "/drive")):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        started = time.monotonic()
        entry: dict = {
            "at": datetime.now(timezone.utc).isoformat(),
            "host": self.host,
            "method": method,
            # Download URLs are signed: log only that one was used.
            "path": "/download/…" if self.host == "download" else path,
            "query": scope.get("query_string", b"").decode() if path.startswith("/v1.0/") else "",
            "status": None,
            "fault": None,
            "duration": None,
        }
        fault = self.faults.match(method, path, self.host)
        # Logged now and filled in as the answer goes out, so the entry (with its status) is there
        # before the client has the response.
        self.log.add(entry)
        try:
            if fault is not None:
                entry["fault"] = fault.kind if fault.kind != "status" else f"status {fault.status}"
                if fault.latency:
                    await asyncio.sleep(fault.latency)
                if fault.kind == "reset":
                    entry["fault"] = "reset"
                    reset_connection(scope)
                    await self._hold(receive, 1.0)  # uvicorn sees the disconnect: no 500, no error log
                    return
                if fault.kind == "timeout":
                    await self._hold(receive, fault.hang)
                    reset_connection(scope)
                    await self._hold(receive, 1.0)
                    return
                if fault.status is not None:
                    entry["status"] = fault.status
                    await self._error(scope, send, fault)
                    return
            await self.app(scope, receive, self._wrap_send(send, entry, scope, fault))
        finally:
            entry["duration"] = round(time.monotonic() - started, 4)

    def _wrap_send(self, send, entry: dict, scope: dict, fault: Fault | None):
        limit = fault.after_bytes if fault is not None else None
        sent = 0
        cut = False

        async def wrapped(message) -> None:
            nonlocal sent, cut
            if cut:
                return  # the socket is gone; the response notices the disconnect and stops
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            if limit is not None and message["type"] == "http.response.body":
                body = message.get("body", b"")
                if sent + len(body) >= limit:
                    await send({"type": "http.response.body", "body": body[: limit - sent], "more_body": True})
                    await asyncio.sleep(0.05)  # let the bytes leave before the reset
                    entry["fault"] = f"reset after {limit} bytes"
                    cut = True
                    reset_connection(scope)
                    return
                sent += len(body)
            await send(message)

        return wrapped

    async def _hold(self, receive, hang: float) -> None:
        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await asyncio.wait_for(until_disconnect(), hang)
        except asyncio.TimeoutError:
            pass

    async def _error(self, scope: dict, send, fault: Fault) -> None:
        status = fault.status or 500
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        retry_after = fault.retry_after
        if fault.retry_after_in is not None:
            moment = datetime.fromtimestamp(time.time() + fault.retry_after_in, timezone.utc)
            retry_after = format_datetime(moment, usegmt=True)
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        if "/oauth2/" in scope["path"]:
            error = TOKEN_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request")
            code = {429: 50196, 503: 90033, 500: 90000}.get(status, 90000)
            body: dict = {
                "error": error,
                "error_description": f"AADSTS{code}: The service is temporarily unavailable (injected fault).",
                "error_codes": [code],
                "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            }
        else:
            request_id = str(uuid.uuid4())
            headers += [(b"request-id", request_id.encode()), (b"client-request-id", request_id.encode())]
            if status == 401:
                headers.append((b"www-authenticate", WWW_AUTHENTICATE.encode()))
            body = {
                "error": {
                    "code": GRAPH_CODES.get(status, "generalException"),
                    "message": "Injected fault.",
                    "innerError": {
                        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": request_id,
                        "client-request-id": request_id,
                    },
                }
            }
        payload = json.dumps(body).encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
