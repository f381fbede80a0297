"""HTTP to the Microsoft identity platform's token endpoint: redeem a code, refresh a token.

Token errors come back as `{"error": "...", "error_codes": [...]}` (HTTP 400; a refused client
secret is 401). They become typed errors here, carrying the error name and AADSTS numbers only:
the description can quote request values, and tokens, codes and secrets never enter a message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from functions.errors import ReauthRequired, Unavailable
from functions.microsoft import transport
from functions.microsoft.transport import Deadline
from functions.settings import SettingsError, settings

log = logging.getLogger(__name__)

# `temporarily_unavailable` arrives as a 400 that transport.send does not retry: retried here.
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
MAX_TRANSIENT_ATTEMPTS = 4


class IdentityError(Exception):
    """The token endpoint refused the request for a reason that is neither transient nor a revoked grant."""

    def __init__(self, error: str, codes: tuple[int, ...] = (), status: int = 400) -> None:
        aadsts = ", ".join(f"AADSTS{c}" for c in codes)
        super().__init__(f"token endpoint: HTTP {status} {error}" + (f" ({aadsts})" if aadsts else ""))
        self.error = error
        self.codes = codes
        self.status = status


class CredentialsRejected(SettingsError):
    """Microsoft refused the app's own credentials: a configuration problem, not the user's."""


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)  # absent when a refresh does not rotate it
    expires_at: datetime
    scope: str = ""


def token_url() -> str:
    return f"{settings().microsoft_authority}/oauth2/v2.0/token"


def redeem_code(code: str, code_verifier: str, *, deadline: Deadline | None = None) -> TokenResponse:
    """authorization_code grant with PKCE and the exact redirect URI of the authorize request."""
    s = settings()
    tokens = _request(
        {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": s.redirect_uri,
            "scope": " ".join(s.onedrive_scopes),
        },
        deadline=deadline,
        what="redeem code",
    )
    if not tokens.refresh_token:
        raise IdentityError("no_refresh_token: is offline_access in ONEDRIVE_SCOPES?", status=200)
    return tokens


def refresh(refresh_token: str, *, deadline: Deadline | None = None) -> TokenResponse:
    """refresh_token grant. No `scope`: Microsoft then reuses the granted scopes, which for personal
    accounts may be fewer than were asked (asking for a dropped one would fail)."""
    return _request({"grant_type": "refresh_token", "refresh_token": refresh_token}, deadline=deadline, what="refresh token")


def _request(form: dict[str, str], *, deadline: Deadline | None, what: str) -> TokenResponse:
    s = settings()
    deadline = deadline or Deadline()
    body = {**form, "client_id": s.microsoft_client_id, "client_secret": s.microsoft_client_secret}
    url = token_url()
    for attempt in range(1, MAX_TRANSIENT_ATTEMPTS + 1):
        response = transport.send(
            lambda: transport.client().build_request("POST", url, data=body, headers={"Accept": "application/json"}),
            deadline=deadline,
            what=what,
        )
        if response.status_code == 200:
            return _parse_tokens(response)
        error, codes = _error_of(response)
        if error in TRANSIENT_ERRORS and attempt < MAX_TRANSIENT_ATTEMPTS:
            delay = transport.backoff_delay(attempt)
            if delay >= deadline.remaining():
                break
            log.warning("%s: %s, retrying in %.1f s", what, error, delay)
            time.sleep(delay)
            continue
        if error in TRANSIENT_ERRORS:
            break
        if error == "invalid_grant":
            raise ReauthRequired(f"Microsoft refused the grant (invalid_grant {', '.join(f'AADSTS{c}' for c in codes)})".rstrip())
        if error in ("invalid_client", "unauthorized_client"):
            raise CredentialsRejected(
                f"Microsoft refused the app's credentials ({error}"
                + "".join(f", AADSTS{c}" for c in codes)
                + "): check MICROSOFT_CLIENT_ID, MICROSOFT_CLIENT_SECRET and that MICROSOFT_AUTHORITY "
                "matches the app registration's account types"
            )
        raise IdentityError(error, codes, response.status_code)
    raise Unavailable(f"{what}: the token endpoint stayed unavailable")


def _error_of(response: httpx.Response) -> tuple[str, tuple[int, ...]]:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
        return (f"http{response.status_code}", ())
    codes = tuple(c for c in payload.get("error_codes") or () if isinstance(c, int))
    return (payload["error"], codes)


def _parse_tokens(response: httpx.Response) -> TokenResponse:
    try:
        payload = response.json()
        access_token = payload["access_token"]
        expires_in = float(payload.get("expires_in", 3599))
    except (ValueError, KeyError, TypeError):
        raise IdentityError("malformed_token_response", status=response.status_code) from None
    refresh_token = payload.get("refresh_token")
    if not isinstance(access_token, str) or not access_token or not (refresh_token is None or isinstance(refresh_token, str)):
        raise IdentityError("malformed_token_response", status=response.status_code)
    return TokenResponse(
        access_token=access_token,
        refresh_token=refresh_token or None,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        scope=str(payload.get("scope") or ""),
    )
