"""What the product API's core modules share: typed client errors, opaque cursors, paging limits,
and finding the connection a request names."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from functions import connections
from functions.errors import Failure


class ApiError(Failure):
    """A request the API refuses: `status` (4xx), a stable `code` and a message safe to show."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


# Connection ids are uuid5 strings (connections.connection_id_for); anything else can't exist,
# and is refused before it reaches a table query or a blob prefix.
_CONNECTION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def require_connection(connection_id: str) -> connections.Connection:
    found = connections.get(connection_id, prompt=True) if _CONNECTION_ID.match(connection_id or "") else None
    if found is None:
        raise ApiError(404, "connection_not_found", "No connection with this id.")
    return found


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= maximum:
        raise bad_request(f"limit must be a whole number from 1 to {maximum}.", "invalid_limit")
    return int(raw)


def json_object(body: bytes, *, limit: int) -> dict[str, Any]:
    """A request body that must be one JSON object of at most `limit` bytes, or a 400/413."""
    if len(body) > limit:
        raise ApiError(413, "body_too_large", f"The body must be at most {limit} bytes.")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: deeply nested arrays
        payload = None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object.", "invalid_body")
    return payload


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, scope: dict[str, Any]) -> dict[str, Any]:
    """The payload of a cursor made by `encode_cursor`; it must carry the same `scope` (the
    listing it came from), so a cursor can't be replayed against another listing."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if not isinstance(payload, dict) or any(payload.get(key) != value for key, value in scope.items()):
        raise bad_request("cursor is not valid for this listing; start again without it.", "invalid_cursor")
    return payload
