"""Microsoft identity platform v2 for personal accounts: authorize (consent page), token, discovery.

Reference: shared/reference/microsoft.md §1. Access and refresh tokens are opaque random strings
kept in memory; nothing here ever logs a token, a code or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from . import pages
from .drive import Drive

if TYPE_CHECKING:
    from .server import Emulator

PERSONAL_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
GRAPH_RESOURCE = "https://graph.microsoft.com/"

# Scopes the emulated Graph knows, with what the consent page says about them.
GRAPH_SCOPES = {
    "files.read": ("Files.Read", "Read your files"),
    "files.readwrite": ("Files.ReadWrite", "Have full access to your files"),
    "files.read.all": ("Files.Read.All", "Read all files that you can access"),
    "files.readwrite.all": ("Files.ReadWrite.All", "Have full access to all files you can access"),
    "files.readwrite.appfolder": ("Files.ReadWrite.AppFolder", "Have full access to the application's folder"),
    "user.read": ("User.Read", "Sign you in and read your profile"),
}
OIDC_SCOPES = {
    "offline_access": ("offline_access", "Maintain access to data you have given it access to"),
    "openid": ("openid", "Sign you in"),
    "profile": ("profile", "View your basic profile"),
    "email": ("email", "View your email address"),
}


@dataclass
class User:
    id: str
    email: str
    display_name: str
    drive: Drive
    consent_epoch: int = 0  # bumped by revoke_consent: every token of the user dies
    refresh_epoch: int = 0  # bumped by expire_refresh_tokens
    consents: dict[str, set[str]] = field(default_factory=dict)  # client_id -> granted scopes

    @property
    def drive_id(self) -> str:
        return self.drive.id


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    nonce: str | None
    used: bool = False


@dataclass
class Grant:
    """An access or refresh token."""

    user_id: str
    client_id: str
    scopes: list[str]
    expires_at: float
    consent_epoch: int
    refresh_epoch: int = 0


def _now() -> float:
    return time.time()


def normalise_scopes(scope: str) -> tuple[list[str], list[str]]:
    """-> (known scope names in canonical case, unknown ones). Accepts the Graph resource prefix."""
    known, unknown = [], []
    for raw in scope.split():
        name = raw[len(GRAPH_RESOURCE) :] if raw.lower().startswith(GRAPH_RESOURCE) else raw
        entry = GRAPH_SCOPES.get(name.lower()) or OIDC_SCOPES.get(name.lower())
        if entry is None:
            unknown.append(raw)
        elif entry[0] not in known:
            known.append(entry[0])
    return known, unknown


def granted_scope_string(scopes: list[str]) -> str:
    # Personal accounts answer with the resource scopes only (openid/offline_access dropped).
    return " ".join(s for s in scopes if s.lower() in GRAPH_SCOPES)


def token_error(
    error: str, code: int, message: str, status: int = 400, headers: dict | None = None
) -> JSONResponse:
    """The v2 token endpoint's error shape (microsoft.md §1)."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    moment = datetime.now(timezone.utc)
    timestamp = moment.strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {message} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {timestamp}"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _redirect_with(redirect_uri: str, params: dict) -> RedirectResponse:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Identity:
    """Sign-in state: registration, pending consents, codes and tokens."""

    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.pending: dict[str, dict] = {}  # consent page request id -> authorize parameters

    # ----- tokens as Graph sees them -----------------------------------------------------------

    def user_for_access_token(self, token: str) -> tuple[User | None, str]:
        """-> (user, "") or (None, why) for a 401."""
        grant = self.access_tokens.get(token)
        if grant is None:
            return None, "IDX14100: JWT is not well formed, there are no dots (.)."
        user = self.emu.user_by_id(grant.user_id)
        if user is None or grant.consent_epoch != user.consent_epoch:
            return None, "Access token has expired or is not yet valid."
        if _now() >= grant.expires_at:
            return None, "Access token has expired or is not yet valid."
        return user, ""

    def scopes_for_access_token(self, token: str) -> list[str]:
        grant = self.access_tokens.get(token)
        return grant.scopes if grant else []

    def issue(self, user: User, client_id: str, scopes: list[str], nonce: str | None, client_info: bool) -> dict:
        lifetime = int(self.emu.options.access_token_lifetime)
        access_token = "EwB" + secrets.token_urlsafe(48)
        self.access_tokens[access_token] = Grant(
            user.id, client_id, scopes, _now() + self.emu.options.access_token_lifetime, user.consent_epoch
        )
        body: dict = {
            "token_type": "Bearer",
            "scope": granted_scope_string(scopes),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        if "offline_access" in scopes:
            refresh_token = "M.C" + secrets.token_urlsafe(64)
            self.refresh_tokens[refresh_token] = Grant(
                user.id,
                client_id,
                scopes,
                _now() + self.emu.options.refresh_token_lifetime,
                user.consent_epoch,
                user.refresh_epoch,
            )
            body["refresh_token"] = refresh_token
        if "openid" in scopes:
            body["id_token"] = self._id_token(user, client_id, nonce)
        if client_info:
            info = {"uid": user.id.rjust(32, "0"), "utid": PERSONAL_TENANT_ID}
            body["client_info"] = _b64url(json.dumps(info).encode())
        return body

    def _id_token(self, user: User, client_id: str, nonce: str | None) -> str:
        # Shaped like the real one; signed with an emulator-only key, not verifiable against JWKS.
        now = int(_now())
        claims = {
            "ver": "2.0",
            "iss": f"{self.emu.base_url}/{PERSONAL_TENANT_ID}/v2.0",
            "sub": _b64url(hashlib.sha256((user.id + client_id).encode()).digest()),
            "aud": client_id,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "name": user.display_name,
            "preferred_username": user.email,
            "email": user.email,
            "oid": "00000000-0000-0000-" + user.id[:4] + "-" + user.id[4:16].ljust(12, "0"),
            "tid": PERSONAL_TENANT_ID,
        }
        if nonce:
            claims["nonce"] = nonce
        header = {"typ": "JWT", "alg": "HS256", "kid": "emulator"}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = hmac.new(self.emu.signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64url(signature)

    # ----- routes ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/oauth2/v2.0/authorize", self.authorize, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/consent", self.consent, methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
            Route("/{tenant}/discovery/v2.0/keys", self.keys),
            Route("/common/discovery/instance", self.instance_discovery),
        ]

    async def openid_configuration(self, request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        base = self.emu.base_url
        issuer_tenant = PERSONAL_TENANT_ID if tenant == "consumers" else "{tenantid}"
        return JSONResponse(
            {
                "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/{issuer_tenant}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": f"{self.emu.graph_base_url.rsplit('/', 1)[0]}/oidc/userinfo",
                "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid", "ver", "email"],
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": urlsplit(self.emu.graph_base_url).netloc,
                "rbac_url": "https://pas.windows.net",
            }
        )

    async def keys(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": []})

    async def instance_discovery(self, request: Request) -> JSONResponse:
        authority = request.query_params.get("authorization_endpoint", "")
        tenant = urlsplit(authority).path.strip("/").split("/")[0] or "common"
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{self.emu.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [],
            }
        )

    def _redirect_allowed(self, redirect_uri: str) -> bool:
        registered = self.emu.redirect_uris
        if registered:
            return redirect_uri in registered
        # Nothing registered: any http(s) URI is accepted (a local convenience); the token
        # endpoint still demands the exact same URI as the authorize request.
        return urlsplit(redirect_uri).scheme in ("http", "https") and bool(urlsplit(redirect_uri).netloc)

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state")
        if client_id != self.emu.client_id:
            return pages.signin_error(
                self.emu,
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory "
                "'Microsoft Accounts'.",
            )
        if not self._redirect_allowed(redirect_uri):
            return pages.signin_error(
                self.emu,
                "AADSTS50011",
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'.",
            )
        if params.get("response_type") != "code":
            return _redirect_with(
                redirect_uri,
                {
                    "error": "unsupported_response_type",
                    "error_description": "AADSTS70005: response_type 'token' is not enabled for the application.",
                    "state": state,
                },
            )
        scopes, unknown = normalise_scopes(params.get("scope", ""))
        if unknown or not scopes:
            bad = unknown[0] if unknown else ""
            return _redirect_with(
                redirect_uri,
                {
                    "error": "invalid_scope",
                    "error_description": f"AADSTS70011: The provided value for the input parameter "
                    f"'scope' is not valid. The scope '{bad}' does not exist.",
                    "state": state,
                },
            )
        method = params.get("code_challenge_method")
        if params.get("code_challenge") and (method or "plain") not in ("S256", "plain"):
            return _redirect_with(
                redirect_uri,
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS501491: Invalid size of Code_Challenge parameter.",
                    "state": state,
                },
            )
        request_id = secrets.token_urlsafe(16)
        self.pending[request_id] = {**params, "scopes": scopes, "tenant": request.path_params["tenant"]}
        hint = params.get("login_hint", "").lower()
        users = self.emu.users
        hinted = next((u for u in users if u.email.lower() == hint), None)
        # A browser can also pick the account with an "emulator_user" cookie (user id).
        hinted = hinted or self.emu.user_by_id(request.cookies.get("emulator_user", ""))
        prompt = params.get("prompt", "")
        if prompt == "none":
            user = hinted or (users[0] if len(users) == 1 else None)
            if user is None or not set(scopes) <= user.consents.get(client_id, set()):
                self.pending.pop(request_id, None)
                return _redirect_with(
                    redirect_uri,
                    {
                        "error": "interaction_required",
                        "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
                        "state": state,
                    },
                )
            return self._approve(request_id, user)
        if self.emu.options.auto_consent and prompt not in ("select_account", "login"):
            user = hinted or (users[0] if users else None)
            if user is not None:
                return self._approve(request_id, user)
        if not users:
            return pages.signin_error(
                self.emu, "AADSTS50020", "There are no accounts in the emulator: add a user first."
            )
        return HTMLResponse(pages.consent_page(self.emu, request_id, scopes, users, hinted, params))

    async def consent(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        request_id = form.get("request", "")
        pending = self.pending.get(request_id)
        if pending is None:
            return pages.signin_error(self.emu, "AADSTS90015", "The sign-in request has expired. Start again.")
        if form.get("action") != "accept":
            self.pending.pop(request_id, None)
            return _redirect_with(
                pending["redirect_uri"],
                {
                    "error": "access_denied",
                    "error_description": "The user has denied access to the scope requested by the client application.",
                    "state": pending.get("state"),
                },
            )
        user = self.emu.user_by_id(form.get("user", ""))
        if user is None:
            return pages.signin_error(self.emu, "AADSTS50034", "The selected account does not exist.")
        return self._approve(request_id, user)

    def _approve(self, request_id: str, user: User) -> RedirectResponse:
        pending = self.pending.pop(request_id)
        scopes = pending["scopes"]
        user.consents.setdefault(pending["client_id"], set()).update(scopes)
        code = "M." + secrets.token_urlsafe(48)
        self.codes[code] = AuthCode(
            client_id=pending["client_id"],
            redirect_uri=pending["redirect_uri"],
            user_id=user.id,
            scopes=scopes,
            code_challenge=pending.get("code_challenge"),
            code_challenge_method=pending.get("code_challenge_method") or "plain",
            expires_at=_now() + self.emu.options.auth_code_lifetime,
            nonce=pending.get("nonce"),
        )
        return _redirect_with(pending["redirect_uri"], {"code": code, "state": pending.get("state")})

    def _client_error(self, request: Request, form: dict) -> JSONResponse | None:
        """Client authentication: secret in the body or HTTP Basic (microsoft.md §1)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
                basic_id, _, basic_secret = decoded.partition(":")
                client_id, secret = unquote(basic_id), unquote(basic_secret)
            except ValueError:
                return token_error("invalid_client", 7000216, "The client credentials are malformed.", 401)
        if not client_id:
            return token_error(
                "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        if client_id != self.emu.client_id:
            return token_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory 'Microsoft Accounts'.",
            )
        if not secret:
            return token_error(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                401,
            )
        if not hmac.compare_digest(secret.encode(), self.emu.client_secret.encode()):
            return token_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                401,
            )
        return None

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        error = self._client_error(request, form)
        if error is not None:
            return error
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return token_error(
            "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )

    def _redeem_code(self, form: dict) -> JSONResponse:
        code_value = form.get("code", "")
        if not code_value:
            return token_error(
                "invalid_request", 900144, "The request body must contain the following parameter: 'code'."
            )
        code = self.codes.get(code_value)
        if code is None or code.client_id != self.emu.client_id:
            return token_error("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if code.used:
            return token_error(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use "
                "an existing refresh token.",
            )
        if _now() >= code.expires_at:
            return token_error(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new "
                "interactive authorization request for this user and resource.",
            )
        if form.get("redirect_uri") != code.redirect_uri:
            return token_error(
                "invalid_grant",
                500112,
                f"The reply address '{form.get('redirect_uri', '')}' does not match the reply address "
                f"'{code.redirect_uri}' provided when requesting Authorization code.",
            )
        if code.code_challenge:
            verifier = form.get("code_verifier", "")
            if code.code_challenge_method == "S256":
                expected = _b64url(hashlib.sha256(verifier.encode()).digest())
            else:
                expected = verifier
            if not verifier or not hmac.compare_digest(expected, code.code_challenge):
                return token_error(
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                )
        code.used = True
        user = self.emu.user_by_id(code.user_id)
        if user is None:
            return token_error("invalid_grant", 50034, "The user account does not exist.")
        return JSONResponse(
            self.issue(user, code.client_id, code.scopes, code.nonce, form.get("client_info") == "1"),
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    def _refresh(self, form: dict) -> JSONResponse:
        grant = self.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None:
            return token_error("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        user = self.emu.user_by_id(grant.user_id)
        if user is None or grant.consent_epoch != user.consent_epoch:
            return token_error(
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid. The user or administrator "
                "has revoked the consent or the grant.",
            )
        if grant.refresh_epoch != user.refresh_epoch or _now() >= grant.expires_at:
            return token_error(
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                f"{datetime.now(timezone.utc).isoformat()} and was inactive for 90.00:00:00.",
            )
        scopes = grant.scopes
        if form.get("scope"):
            requested, unknown = normalise_scopes(form["scope"])
            if unknown or not set(requested) <= set(grant.scopes):
                return token_error(
                    "invalid_grant",
                    65001,
                    "The user or administrator has not consented to use the application with ID "
                    f"'{grant.client_id}'. Send an interactive authorization request for this user and resource.",
                )
            scopes = requested + [s for s in grant.scopes if s == "offline_access" and s not in requested]
        # Rotation: a new refresh token every time; the old one is not revoked at once.
        grant.expires_at = _now() + self.emu.options.refresh_token_lifetime
        return JSONResponse(
            self.issue(user, grant.client_id, scopes, None, form.get("client_info") == "1"),
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )
