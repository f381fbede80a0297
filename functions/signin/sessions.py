"""Connect sessions: the only way a OneDrive gets attached to a product user.

The product's backend (function key) creates a session for one of its users: `ref` (its own user
id), `return_to`, optionally `login_hint`, `prompt`, `relink` and `choose` (the picker right after
consent, "choose what to share"). It gets back a link,
`{PUBLIC_BASE_URL}/api/connect?session=<token>`, to send that user's browser to. The token is
random; only its SHA-256 is a table key. A session is single-use (consumed by an ETag-guarded
MERGE when the browser opens the link, so of two racing opens one loses) and expires after
SESSION_LIFETIME. An anonymous `/api/connect` therefore writes nothing unless the product asked
for it, and nobody can mint a link that attaches a OneDrive to another product user.

Sessions live in the sign-in states' table (RowKey "session"): the maintenance timer purges both
by `expires_at`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from functions import storage
from functions.errors import BadInput, Conflict

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(minutes=15)
SESSION_ROW = "session"
MAX_REF = 512
MAX_LOGIN_HINT = 320
MAX_RETURN_TO = 2048
PROMPTS = frozenset({"select_account", "login", "consent"})


class Invalid(BadInput):
    """A session request the API refuses: `code` is stable, the message safe to show."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unusable(BadInput):
    """The link's session is unknown, used or expired: a 400 page (with a way back, if known)."""

    def __init__(self, message: str, return_to: str = "") -> None:
        super().__init__(message)
        self.return_to = return_to


@dataclass(frozen=True)
class Session:
    ref: str
    return_to: str = ""
    login_hint: str = ""
    prompt: str = ""
    relink: bool = False  # the product allows moving an existing connection to this `ref`
    choose: bool = False  # after consent, the picker (then return_to) instead of return_to at once


@dataclass(frozen=True)
class Created:
    url: str
    expires_at: datetime

    def to_public(self) -> dict[str, Any]:
        return {"url": self.url, "expiresAt": self.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")}


def _printable(value: str) -> bool:
    return value.isprintable() and value == value.strip()


def validate(session: Session, *, require_ref: bool = True) -> Session:
    """Raise Invalid unless every field is acceptable (return_to against ALLOWED_RETURN_URLS)."""
    from functions.settings import settings

    if require_ref and not session.ref:
        raise Invalid("invalid_ref", "ref (your own id of the user who connects) is required.")
    if len(session.ref) > MAX_REF or (session.ref and not _printable(session.ref)):
        raise Invalid("invalid_ref", f"ref must be at most {MAX_REF} printable characters.")
    if session.return_to and (len(session.return_to) > MAX_RETURN_TO or not settings().return_url_allowed(session.return_to)):
        raise Invalid("invalid_return_to", "return_to is not an address ALLOWED_RETURN_URLS lets the browser go back to.")
    if session.login_hint and (len(session.login_hint) > MAX_LOGIN_HINT or not _printable(session.login_hint)):
        raise Invalid("invalid_login_hint", "login_hint must be an email address.")
    if session.prompt and session.prompt not in PROMPTS:
        raise Invalid("invalid_prompt", f"prompt must be one of: {', '.join(sorted(PROMPTS))}.")
    return session


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _table() -> storage.Table:
    return storage.Table(storage.Tables.OAUTH_STATES)


def _now() -> datetime:
    return datetime.now(UTC)


def create(session: Session, *, require_ref: bool = True) -> Created:
    """Store a validated session; the single-use link for the one user it names."""
    from functions.settings import settings

    validate(session, require_ref=require_ref)
    token = secrets.token_urlsafe(32)
    expires_at = _now() + SESSION_LIFETIME
    _table().insert({
        "PartitionKey": _hash(token),
        "RowKey": SESSION_ROW,
        "expires_at": expires_at,
        "ref": session.ref,
        "return_to": session.return_to,
        "login_hint": session.login_hint,
        "prompt": session.prompt,
        "relink": session.relink,
        "choose": session.choose,
    })
    log.info("connect session created", extra={"ref": session.ref, "relink": session.relink})
    return Created(f"{settings().public_base_url}/api/connect?{urlencode({'session': token})}", expires_at)


def consume(token: str) -> Session:
    """The session of a link, spent now: Unusable if unknown, already used or expired."""
    unknown = Unusable("This connect link is unknown. Go back and choose Connect OneDrive again.")
    if not token or len(token) > 256:
        raise unknown
    key = _hash(token)
    table = _table()
    entity = table.get(key, SESSION_ROW, quick=True)
    if entity is None:
        raise unknown
    return_to = str(entity.get("return_to") or "")
    if entity.get("consumed"):
        raise Unusable("This connect link was already used. Go back and choose Connect OneDrive again.", return_to)
    expires_at = entity["expires_at"]
    if (expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)) <= _now():
        raise Unusable("This connect link has expired. Go back and choose Connect OneDrive again.", return_to)
    try:
        # Kept (consumed) until the purge, so a second open can still offer the way back.
        table.merge({"PartitionKey": key, "RowKey": SESSION_ROW, "consumed": True}, etag=entity.etag)
    except Conflict:
        raise Unusable("This connect link was already used. Go back and choose Connect OneDrive again.", return_to) from None
    return Session(
        ref=str(entity.get("ref") or ""),
        return_to=return_to,
        login_hint=str(entity.get("login_hint") or ""),
        prompt=str(entity.get("prompt") or ""),
        relink=bool(entity.get("relink")),
        choose=bool(entity.get("choose")),
    )
