"""HTTP to the Microsoft identity platform's token endpoint: redeem a code, refresh a token.

Token errors come back as `{"error": "...", "error_codes": [...]}` (HTTP 400; a refused client
secret is 401). They become typed errors here, carrying the error name and AADSTS numbers only:
the description can quote request values, and tokens, codes and secrets never enter a message.
"""

from __future__ import annotations

import logging

import httpx

from functions.errors import MicrosoftError, ReauthRequired, SettingsError
from functions.microsoft import transport
from functions.microsoft.transport import Deadline
from functions.microsoft.wire import MalformedTokenResponse, TokenResponse, as_object
from functions.settings import settings

log = logging.getLogger(__name__)

# Refusals only the user can answer, by going through /authorize again: a revoked or expired grant,
# MFA or a new consent now required, a session that ended (microsoft.md §6).
USER_ACTION_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required", "login_required"})

__all__ = ["CredentialsRejected", "IdentityError", "TokenResponse", "redeem_code", "refresh", "token_url"]


class IdentityError(MicrosoftError):
    """The token endpoint refused the request for a reason that is neither transient nor a revoked grant."""

    def __init__(self, error: str, codes: tuple[int, ...] = (), status: int = 400) -> None:
        aadsts = ", ".join(f"AADSTS{c}" for c in codes)
        super().__init__(f"token endpoint: HTTP {status} {error}" + (f" ({aadsts})" if aadsts else ""))
        self.error = error
        self.codes = codes
        self.status = status


class CredentialsRejected(SettingsError):
    """Microsoft refused the app's own credentials: a configuration problem, not the user's."""


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
    # Transient answers (5xx, `temporarily_unavailable`) are retried inside transport.send.
    response = transport.send(
        lambda: transport.client().build_request("POST", url, data=body, headers={"Accept": "application/json"}),
        deadline=deadline,
        what=what,
    )
    if response.status_code == 200:
        return _parse_tokens(response)
    error, codes = _error_of(response)
    if error in USER_ACTION_ERRORS:
        raise ReauthRequired(f"Microsoft refused the grant ({error} {', '.join(f'AADSTS{c}' for c in codes)})".rstrip())
    if error in ("invalid_client", "unauthorized_client"):
        raise CredentialsRejected(
            f"Microsoft refused the app's credentials ({error}"
            + "".join(f", AADSTS{c}" for c in codes)
            + "): check MICROSOFT_CLIENT_ID, MICROSOFT_CLIENT_SECRET and that MICROSOFT_AUTHORITY "
            "matches the app registration's account types"
        )
    raise IdentityError(error, codes, response.status_code)


def _error_of(response: httpx.Response) -> tuple[str, tuple[int, ...]]:
    try:
        payload = as_object(response.json())
    except ValueError:
        payload = {}
    error = payload.get("error")
    if not isinstance(error, str):
        return (f"http{response.status_code}", ())
    raw_codes = payload.get("error_codes")
    codes = tuple(c for c in raw_codes if isinstance(c, int)) if isinstance(raw_codes, list) else ()
    return (error, codes)


def _parse_tokens(response: httpx.Response) -> TokenResponse:
    try:
        payload = response.json()
        if not isinstance(payload, dict):
            raise MalformedTokenResponse("not an object")
        return TokenResponse.from_json(as_object(payload))
    except ValueError:  # not JSON, or MalformedTokenResponse
        raise IdentityError("malformed_token_response", status=response.status_code) from None
