"""Picker links and the browser sessions they open.

The product's backend asks for a link for one connection (`create_link`): a random token, stored
only as its hash, valid LINK_LIFETIME and usable once. Opening it (`redeem`) consumes the token
(an ETag-guarded write: two tabs can't both win) and opens a browser session bound by an HttpOnly
cookie (`{id}.{secret}`, the secret stored only as a hash) for SESSION_LIFETIME; the link itself
is then useless, so a leaked URL (history, a Referer, a log) opens nothing. Every form post also
carries the session's CSRF token. Rows live in Tables.OAUTH_STATES with `expires_at`, so the
maintenance timer's purge of abandoned sign-ins removes them too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions import storage
from functions.errors import BadInput, Conflict

LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(minutes=30)
COOKIE_NAME = "picker_session"
COOKIE_PATH = "/api/picker"
_LINK_ROW = "picker-link"
_SESSION_ROW = "picker-session"


class PickerRefused(BadInput):
    """A link or session that can't be used (unknown, used, expired): say so, change nothing."""


@dataclass(frozen=True)
class Session:
    session_id: str
    connection_id: str
    csrf: str
    return_to: str


def _table() -> storage.Table:
    return storage.Table(storage.Tables.OAUTH_STATES)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _expired(entity: dict[str, Any]) -> bool:
    expires = entity.get("expires_at")
    if isinstance(expires, datetime) and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return not isinstance(expires, datetime) or expires <= _now()


def create_link(connection_id: str, *, return_to: str = "") -> tuple[str, datetime]:
    """A single-use link to the picker of one connection, and when it expires."""
    from functions.settings import settings

    token = secrets.token_urlsafe(32)
    expires = _now() + LINK_LIFETIME
    _table().insert({"PartitionKey": _hash(token), "RowKey": _LINK_ROW, "connection_id": connection_id,
                     "return_to": return_to, "expires_at": expires, "consumed": False})
    return f"{settings().public_base_url}/api/picker?s={token}", expires


def redeem(token: str) -> tuple[Session, str]:
    """Consume a link's token; returns the new session and its cookie value."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        raise PickerRefused("This link is not valid.")
    key = _hash(token)
    entity = _table().get(key, _LINK_ROW)
    used = PickerRefused("This link was already used or does not exist. Ask for a new one.")
    if entity is None or entity.get("consumed"):
        raise used
    try:  # single use: only the request that flips `consumed` on this version wins
        _table().merge({"PartitionKey": key, "RowKey": _LINK_ROW, "consumed": True}, etag=entity.etag)
    except Conflict:
        raise used from None
    if _expired(entity):
        raise PickerRefused("This link has expired. Ask for a new one.")
    session_id, secret, csrf = secrets.token_urlsafe(12), secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    _table().insert({"PartitionKey": _hash(session_id), "RowKey": _SESSION_ROW,
                     "connection_id": entity["connection_id"], "secret_hash": _hash(secret), "csrf": csrf,
                     "return_to": entity.get("return_to") or "", "expires_at": _now() + SESSION_LIFETIME})
    session = Session(session_id, entity["connection_id"], csrf, entity.get("return_to") or "")
    return session, f"{session_id}.{secret}"


def from_cookie(value: str | None) -> Session:
    session_id, _, secret = (value or "").partition(".")
    if not session_id or not secret or len(value or "") > 200:
        raise PickerRefused("Open the picker from the link you were given.")
    entity = _table().get(_hash(session_id), _SESSION_ROW)
    if entity is None:
        raise PickerRefused("This picker session has ended. Ask for a new link.")
    if _expired(entity) or not hmac.compare_digest(str(entity.get("secret_hash") or ""), _hash(secret)):
        raise PickerRefused("This picker session has ended. Ask for a new link.")
    return Session(session_id, entity["connection_id"], entity["csrf"], entity.get("return_to") or "")


def cookie_header(value: str) -> str:
    from functions.settings import settings

    secure = "; Secure" if settings().public_base_url.startswith("https://") else ""
    return (f"{COOKIE_NAME}={value}; Max-Age={int(SESSION_LIFETIME.total_seconds())}; Path={COOKIE_PATH}; "
            f"HttpOnly; SameSite=Lax{secure}")


def check_csrf(session: Session, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(session.csrf, submitted):
        raise PickerRefused("This form has expired. Reload the page and try again.")
