"""The token vault: one encrypted token row per connection, refreshed with rotation.

- At rest: access and refresh token sealed together with AES-GCM (`keyring`), the connection id as
  associated data, sealed with the newest key on every write so old keys can retire.
- The access token is reused until 5 minutes before it expires; then the refresh token buys a new
  pair and the new refresh token replaces the old one (Microsoft rotates them).
- Several workers may refresh one connection at once. Writes are guarded by the row's ETag: the
  first writer wins, a loser re-reads and uses the winner's tokens, so the stored refresh token is
  never overwritten by an older chain.
- `invalid_grant` (revoked consent, expired by inactivity) marks the connection `reauth_required`;
  the way back is signing in again through /api/connect, which `store`s a fresh pair.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions import connections, storage
from functions.errors import Conflict, NotFound, ReauthRequired
from functions.microsoft import identity
from functions.tokens import app_credentials, keyring

log = logging.getLogger(__name__)

ROW = "current"
REUSE_MARGIN = timedelta(minutes=5)  # refresh an access token this long before it expires
REAUTH_MESSAGE = "Microsoft sign-in expired or was revoked: the user must connect again through /api/connect"


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime  # of the access token, UTC
    scope: str = ""

    @classmethod
    def from_response(cls, response: identity.TokenResponse, previous_refresh_token: str = "") -> TokenSet:
        return cls(response.access_token, response.refresh_token or previous_refresh_token, response.expires_at, response.scope)


@dataclass(frozen=True)
class _Stored:
    tokens: TokenSet
    etag: str
    reauth_required: bool


def _now() -> datetime:
    return datetime.now(UTC)


def _table() -> storage.Table:
    return storage.Table(storage.Tables.TOKENS)


# In-process copy of fresh access tokens, so a sync making thousands of Graph calls does not read
# the table for each. Only ever used while the token is valid for longer than REUSE_MARGIN.
_cache: dict[str, TokenSet] = {}
_cache_lock = threading.Lock()


def _remember(connection_id: str, tokens: TokenSet | None) -> None:
    with _cache_lock:
        if tokens is None:
            _cache.pop(connection_id, None)
        else:
            _cache[connection_id] = tokens


def forget_cached_tokens() -> None:
    """Empty the in-process copy, as a new process starts (tests; settings reloads)."""
    with _cache_lock:
        _cache.clear()


def _fresh(tokens: TokenSet) -> bool:
    return tokens.expires_at - _now() > REUSE_MARGIN


# ----- rows ----------------------------------------------------------------------------------------


def _entity(connection_id: str, tokens: TokenSet) -> dict[str, Any]:
    secret = json.dumps({"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}).encode()
    sealed = keyring.seal(secret, connection_id)
    return {
        "PartitionKey": connection_id,
        "RowKey": ROW,
        "sealed": sealed,
        "key_id": keyring.key_id_of(sealed),
        "expires_at": tokens.expires_at,
        "obtained_at": _now(),  # for people reading the table; the vault goes by expires_at
        "scope": tokens.scope,
        "reauth_required": False,
    }


def _read(connection_id: str) -> _Stored | None:
    entity = _table().get(connection_id, ROW)
    if entity is None:
        return None
    secret = json.loads(keyring.open_sealed(entity["sealed"], connection_id))
    tokens = TokenSet(secret["access_token"], secret["refresh_token"], _utc(entity["expires_at"]), entity.get("scope") or "")
    return _Stored(
        tokens=tokens,
        etag=entity.etag,
        reauth_required=bool(entity.get("reauth_required")),
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _replace_if_unchanged(connection_id: str, entity: dict[str, Any], etag: str) -> bool:
    """Write `entity` only if the row still has `etag`; False when someone else wrote first."""
    try:
        _table().replace(entity, etag=etag)
        return True
    except Conflict:
        return False


# ----- the interface ---------------------------------------------------------------------------------


def store(connection_id: str, tokens: TokenSet) -> None:
    """Save the tokens of a fresh sign-in. It replaces whatever was there: a new consent is the newest grant."""
    _table().upsert(_entity(connection_id, tokens))
    _remember(connection_id, tokens)
    log.info("tokens stored", extra={"connection_id": connection_id})


def access_token(connection_id: str, *, force_refresh: bool = False) -> str:
    """A valid access token for the connection, refreshed when it is within 5 minutes of expiring
    (or when `force_refresh`, after Graph refused it). Raises ReauthRequired when the user must sign in again."""
    return _access_token(connection_id, force_refresh=force_refresh, refused=None)


def token_source(connection_id: str) -> Callable[[bool], str]:
    """What GraphClient calls for a token: `source(force_refresh)`.

    It remembers the token it handed out last: when Graph refused that one but the vault already
    holds another (a parallel request refreshed first), the other is used without a new refresh."""
    last: str | None = None

    def source(force_refresh: bool = False) -> str:
        nonlocal last
        last = _access_token(connection_id, force_refresh=force_refresh, refused=last if force_refresh else None)
        return last

    return source


def _access_token(connection_id: str, *, force_refresh: bool, refused: str | None) -> str:
    if not force_refresh:
        with _cache_lock:
            cached = _cache.get(connection_id)
        if cached is not None and _fresh(cached):
            return cached.access_token
    stored = _require(connection_id)
    usable = _fresh(stored.tokens) and (not force_refresh or (refused is not None and stored.tokens.access_token != refused))
    if usable:
        _remember(connection_id, stored.tokens)
        return stored.tokens.access_token
    return _refresh(connection_id, stored).access_token


def refresh(connection_id: str) -> None:
    """Refresh now, whatever the access token's age: keeps an idle connection's refresh token alive
    (they expire after 90 days unused) and re-seals it with the newest key. Used by maintenance."""
    _refresh(connection_id, _require(connection_id))


def delete(connection_id: str) -> None:
    """Forget the connection's tokens (idempotent)."""
    _remember(connection_id, None)
    _table().delete(connection_id, ROW)


def _require(connection_id: str) -> _Stored:
    stored = _read(connection_id)
    if stored is None:
        raise ReauthRequired("no tokens are stored for this connection: connect it through /api/connect")
    if stored.reauth_required:
        raise ReauthRequired(REAUTH_MESSAGE)
    return stored


def _refresh(connection_id: str, stored: _Stored) -> TokenSet:
    """Exchange the stored refresh token; store the result unless someone else refreshed first."""
    for _ in range(3):
        try:
            response = identity.refresh(stored.tokens.refresh_token)
        except identity.CredentialsRejected as refused:
            app_credentials.rejected(str(refused))  # the app's secret, not this user's grant
            raise
        except ReauthRequired:
            current = _read(connection_id)
            if current is not None and current.etag != stored.etag and not current.reauth_required:
                # Someone else refreshed meanwhile (our token may be the one they rotated away).
                stored = current
                if _fresh(current.tokens):
                    _remember(connection_id, current.tokens)
                    return current.tokens
                continue
            _mark_reauth_required(connection_id, stored.etag)
            raise ReauthRequired(REAUTH_MESSAGE) from None
        app_credentials.accepted()
        tokens = TokenSet.from_response(response, stored.tokens.refresh_token)
        if _replace_if_unchanged(connection_id, _entity(connection_id, tokens), stored.etag):
            _remember(connection_id, tokens)
            _note_refresh(connection_id)
            log.info("tokens refreshed", extra={"connection_id": connection_id})
            return tokens
        # Lost the race: the winner's refresh token is the one to keep; use its access token too.
        winner = _require(connection_id)
        log.info("tokens refreshed concurrently; using the stored ones", extra={"connection_id": connection_id})
        _remember(connection_id, winner.tokens)
        return winner.tokens
    raise ReauthRequired(REAUTH_MESSAGE)


def _mark_reauth_required(connection_id: str, etag: str) -> None:
    _remember(connection_id, None)
    try:
        # Only if nothing changed: a sign-in that stored fresh tokens meanwhile must not be flagged.
        _table().merge({"PartitionKey": connection_id, "RowKey": ROW, "reauth_required": True}, etag=etag)
    except Conflict:
        return
    connections.leave_active(connection_id, connections.ConnectionState.REAUTH_REQUIRED, error=REAUTH_MESSAGE)
    log.warning("refresh token refused: connection needs a new sign-in", extra={"connection_id": connection_id})


def _note_refresh(connection_id: str) -> None:
    with contextlib.suppress(NotFound):
        connections.update(connection_id, connections.Update(last_token_refresh_at=_now()))
