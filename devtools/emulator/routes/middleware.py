"""ASGI middleware on both origins: applies the faults that match a request, and logs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime

from ..services.faults import TOKEN_FAULTS, Fault, Faults, RequestLog
from ..state import State
from .responses import WWW_AUTHENTICATE

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



def _closed(scope: dict) -> bool:
    transport = scope.get("extensions", {}).get("emulator.transport")
    return transport is not None and transport.is_closing()


def reset_connection(scope: dict) -> None:
    """Close the client's socket abruptly: SO_LINGER 0 makes the kernel send a TCP RST."""
    transport = scope.get("extensions", {}).get("emulator.transport")
    if transport is None:
        raise RuntimeError("connection reset needs the emulator's uvicorn protocol")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


UNLOGGED_PREFIXES = ("/_emulator", "/static")


class FaultMiddleware:
    """Applies faults and records every request (method, path, status; never a secret)."""

    def __init__(self, app, faults: Faults, log: RequestLog, host: str, state: State) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.host = host
        self.state = state

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
            "at": datetime.now(UTC).isoformat(),
            "host": self.host,
            "method": method,
            # Download URLs are signed: log only that one was used.
            "path": "/download/…" if self.host == "download" else path,
            "query": scope.get("query_string", b"").decode() if path.startswith("/v1.0/") else "",
            "status": None,
            "fault": None,
            "duration": None,
            "range": dict(scope.get("headers") or []).get(b"range", b"").decode() or None,
            "bytes": 0,  # body bytes sent
        }
        fault = self.faults.match(method, path, self.host)
        # Logged now and filled in as the answer goes out, so the entry (with its status) is there
        # before the client has the response.
        self.log.add(entry)
        try:
            if self.state.options.request_latency:
                await asyncio.sleep(self.state.options.request_latency)
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
            if message["type"] == "http.response.body" and not _closed(scope):
                # Counted only while the client is there: after it hangs up, uvicorn drops what the
                # response still sends until the disconnect reaches it (a second or more of a stream).
                length = len(message.get("body", b""))
                entry["bytes"] += length if limit is None else min(length, max(0, limit - sent))
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

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_disconnect(), hang)

    async def _error(self, scope: dict, send, fault: Fault) -> None:
        status = fault.status or 500
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        retry_after = fault.retry_after
        if fault.retry_after_in is not None:
            moment = datetime.fromtimestamp(time.time() + fault.retry_after_in, UTC)
            retry_after = format_datetime(moment, usegmt=True)
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        if "/oauth2/" in scope["path"]:
            error = TOKEN_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request")
            code = {429: 50196, 503: 90033, 500: 90000}.get(status, 90000)
            message = "The service is temporarily unavailable (injected fault)."
            if fault.token_error is not None:
                _, error, code, message = TOKEN_FAULTS[fault.token_error]
                message = message.format(client_id=self.state.client_id)
            trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
            timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            body: dict = {
                "error": error,
                "error_description": f"AADSTS{code}: {message} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}",
                "error_codes": [code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            }
        else:
            request_id = str(uuid.uuid4())
            headers += [(b"request-id", request_id.encode()), (b"client-request-id", request_id.encode())]
            if status == 401:
                headers.append((b"www-authenticate", WWW_AUTHENTICATE.encode()))
            body = {
                "error": {
                    "code": fault.code or GRAPH_CODES.get(status, "generalException"),
                    "message": fault.message or "Injected fault.",
                    "innerError": {
                        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": request_id,
                        "client-request-id": request_id,
                    },
                }
            }
        payload = json.dumps(body).encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
