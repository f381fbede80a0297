"""Microsoft identity platform v2 for personal accounts: authorize, consent, token, token checks.

Reference: shared/reference/microsoft.md §1. Access and refresh tokens are opaque random strings;
nothing here ever logs a token, a code or a secret. The answers are plain values (a redirect, a
page to show, a token body) or a raised ``TokenError``; ``routes/signin.py`` speaks HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlencode, urlsplit

from ..errors import TokenError
from ..state import AuthCode, Grant, State, User

PERSONAL_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
ANSWERED_KEPT_SECONDS = 3600  # how long a used consent request is remembered as used

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


# ----- what authorize and consent answer -----------------------------------------------------------


@dataclass
class Redirect:
    """Back to the app: ``{redirect_uri}?code=...&state=...`` or ``?error=...``."""

    url: str


@dataclass
class ErrorPage:
    """Microsoft's "we're having trouble signing you in" page; no redirect (the URI is not trusted)."""

    code: str
    message: str
    hint: str = "Check the app registration values (client id, redirect URI) the app is using."


@dataclass
class ConsentPage:
    request_id: str
    scopes: list[str]
    users: list[User]
    hinted: User | None
    params: dict


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


def redirect_with(redirect_uri: str, params: dict) -> Redirect:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    return Redirect(f"{redirect_uri}{separator}{query}")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Identity:
    """Sign-in: registration checks, consent, codes and tokens, all kept in the state."""

    def __init__(self, state: State) -> None:
        self.state = state

    # Views of the state, for tests that look for secrets in logs (tests/signin/test_vault.py).
    codes = property(lambda self: self.state.codes)
    access_tokens = property(lambda self: self.state.access_tokens)
    refresh_tokens = property(lambda self: self.state.refresh_tokens)

    # ----- tokens as Graph sees them -----------------------------------------------------------

    def user_for_access_token(self, token: str) -> tuple[User | None, str]:
        """-> (user, "") or (None, why) for a 401."""
        grant = self.state.access_tokens.get(token)
        if grant is None:
            return None, "IDX14100: JWT is not well formed, there are no dots (.)."
        user = self.state.user_by_id(grant.user_id)
        if user is None or grant.consent_epoch != user.consent_epoch:
            return None, "Access token has expired or is not yet valid."
        if _now() >= grant.expires_at:
            return None, "Access token has expired or is not yet valid."
        return user, ""

    def scopes_for_access_token(self, token: str) -> list[str]:
        grant = self.state.access_tokens.get(token)
        return grant.scopes if grant else []

    def issue(self, user: User, client_id: str, scopes: list[str], nonce: str | None, client_info: bool) -> dict:
        options = self.state.options
        lifetime = int(options.access_token_lifetime)
        access_token = "EwB" + secrets.token_urlsafe(48)
        self.state.access_tokens[access_token] = Grant(
            user.id, client_id, scopes, _now() + options.access_token_lifetime, user.consent_epoch
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
            self.state.refresh_tokens[refresh_token] = Grant(
                user.id,
                client_id,
                scopes,
                _now() + options.refresh_token_lifetime,
                user.consent_epoch,
                user.refresh_epoch,
            )
            body["refresh_token"] = refresh_token
        if "openid" in scopes:
            body["id_token"] = self._id_token(user, client_id, nonce)
        if client_info:
            info = {"uid": user.id.rjust(32, "0"), "utid": PERSONAL_TENANT_ID}
            body["client_info"] = _b64url(json.dumps(info).encode())
        self.state.changed()
        return body

    def _id_token(self, user: User, client_id: str, nonce: str | None) -> str:
        # Shaped like the real one; signed with an emulator-only key, not verifiable against JWKS.
        now = int(_now())
        claims = {
            "ver": "2.0",
            "iss": f"{self.state.base_url}/{PERSONAL_TENANT_ID}/v2.0",
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
        signature = hmac.new(self.state.signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64url(signature)

    # ----- breaking sign-in on purpose ---------------------------------------------------------

    def revoke_consent(self, user: User) -> None:
        """Refresh tokens give invalid_grant (AADSTS70000); access tokens give 401."""
        with self.state.lock:
            user.consent_epoch += 1
            user.consents.clear()
            self.state.changed()

    def expire_refresh_tokens(self, user: User) -> None:
        """Refresh tokens give invalid_grant AADSTS700082 (expired by inactivity)."""
        with self.state.lock:
            user.refresh_epoch += 1
            self.state.changed()

    def expire_access_tokens(self, user: User | None = None) -> None:
        """Every access token (of the user, or of everyone) answers 401 from now on."""
        with self.state.lock:
            for grant in self.state.access_tokens.values():
                if user is None or grant.user_id == user.id:
                    grant.expires_at = 0
            self.state.changed()

    # ----- authorize and the consent page ------------------------------------------------------

    def _redirect_allowed(self, redirect_uri: str) -> bool:
        registered = self.state.redirect_uris
        if registered:
            return redirect_uri in registered
        # Nothing registered: any http(s) URI is accepted (a local convenience); the token
        # endpoint still demands the exact same URI as the authorize request.
        return urlsplit(redirect_uri).scheme in ("http", "https") and bool(urlsplit(redirect_uri).netloc)

    def authorize(self, params: dict, tenant: str, cookie_user_id: str = "") -> Redirect | ErrorPage | ConsentPage:
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state = params.get("state")
        if client_id != self.state.client_id:
            return ErrorPage(
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory 'Microsoft Accounts'.",
            )
        if not self._redirect_allowed(redirect_uri):
            return ErrorPage(
                "AADSTS50011",
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'.",
            )
        if params.get("response_type") != "code":
            return redirect_with(
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
            return redirect_with(
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
            return redirect_with(
                redirect_uri,
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS501491: Invalid size of Code_Challenge parameter.",
                    "state": state,
                },
            )
        request_id = secrets.token_urlsafe(16)
        self.state.pending[request_id] = {**params, "scopes": scopes, "tenant": tenant, "created_at": _now()}
        self.state.changed()
        hint = params.get("login_hint", "").lower()
        users = self.state.users
        hinted = next((u for u in users if u.email.lower() == hint), None)
        # A browser can also pick the account with an "emulator_user" cookie (user id).
        hinted = hinted or self.state.user_by_id(cookie_user_id)
        prompt = params.get("prompt", "")
        if prompt == "none":
            user = hinted or (users[0] if len(users) == 1 else None)
            if user is None or not set(scopes) <= user.consents.get(client_id, set()):
                self.state.pending.pop(request_id, None)
                return redirect_with(
                    redirect_uri,
                    {
                        "error": "interaction_required",
                        "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
                        "state": state,
                    },
                )
            return self._approve(request_id, user)
        if self.state.options.auto_consent and prompt not in ("select_account", "login"):
            user = hinted or (users[0] if users else None)
            if user is not None:
                return self._approve(request_id, user)
        if not users:
            return ErrorPage(
                "AADSTS50020", "There are no accounts in the emulator: add a user first.", hint="Add a user first."
            )
        return ConsentPage(request_id, scopes, users, hinted, self.state.pending[request_id])

    def consent(self, form: dict) -> Redirect | ErrorPage:
        request_id = form.get("request", "")
        pending = self.state.pending.get(request_id)
        if pending is None:
            return ErrorPage("AADSTS90015", "The sign-in request has expired. Start again.")
        if "answered" in pending:
            # The browser went back to the consent page and sent it again: the request was used.
            answered = datetime.fromtimestamp(pending["answered_at"], UTC).strftime("%H:%M:%S UTC")
            verb = "accepted" if pending["answered"] == "accept" else "declined"
            return ErrorPage(
                "",
                f"This sign-in request was already answered: you {verb} it at {answered}, and the app was "
                "sent its answer then. A sign-in request can be answered only once.",
                hint="To sign in again, go back to the app and start from there.",
            )
        if form.get("action") != "accept":
            self._answered(pending, "deny")
            return redirect_with(
                pending["redirect_uri"],
                {
                    "error": "access_denied",
                    "error_description": "The user has denied access to the scope requested by the client application.",
                    "state": pending.get("state"),
                },
            )
        user = self.state.user_by_id(form.get("user", ""))
        if user is None:
            return ErrorPage("AADSTS50034", "The selected account does not exist.")
        return self._approve(request_id, user)

    def _answered(self, pending: dict, answer: str) -> None:
        """Keep an answered request for a while, so that sending the page again is told so."""
        pending["answered"] = answer
        pending["answered_at"] = _now()
        horizon = _now() - ANSWERED_KEPT_SECONDS
        for key in [k for k, p in self.state.pending.items() if p.get("answered_at", p.get("created_at", 0)) < horizon]:
            del self.state.pending[key]
        self.state.changed()

    def _approve(self, request_id: str, user: User) -> Redirect:
        pending = self.state.pending[request_id]
        self._answered(pending, "accept")
        scopes = pending["scopes"]
        user.consents.setdefault(pending["client_id"], set()).update(scopes)
        code = "M." + secrets.token_urlsafe(48)
        self.state.codes[code] = AuthCode(
            client_id=pending["client_id"],
            redirect_uri=pending["redirect_uri"],
            user_id=user.id,
            scopes=scopes,
            code_challenge=pending.get("code_challenge"),
            code_challenge_method=pending.get("code_challenge_method") or "plain",
            expires_at=_now() + self.state.options.auth_code_lifetime,
            nonce=pending.get("nonce"),
        )
        return redirect_with(pending["redirect_uri"], {"code": code, "state": pending.get("state")})

    # ----- the token endpoint ------------------------------------------------------------------

    def token(self, form: dict, authorization: str = "") -> dict:
        """A token response body, or ``TokenError``."""
        self._authenticate_client(form, authorization)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        raise TokenError("unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'.")

    def _authenticate_client(self, form: dict, authorization: str) -> None:
        """Client authentication: secret in the body or HTTP Basic (microsoft.md §1)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                basic_id, _, basic_secret = decoded.partition(":")
                client_id, secret = unquote(basic_id), unquote(basic_secret)
            except ValueError:
                raise TokenError("invalid_client", 7000216, "The client credentials are malformed.", 401) from None
        if not client_id:
            raise TokenError(
                "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        if client_id != self.state.client_id:
            raise TokenError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory 'Microsoft Accounts'.",
            )
        if not secret:
            raise TokenError(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                401,
            )
        if not hmac.compare_digest(secret.encode(), self.state.client_secret.encode()):
            raise TokenError(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                401,
            )

    def _redeem_code(self, form: dict) -> dict:
        code_value = form.get("code", "")
        if not code_value:
            raise TokenError("invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
        code = self.state.codes.get(code_value)
        if code is None or code.client_id != self.state.client_id:
            raise TokenError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        if code.used:
            raise TokenError(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use "
                "an existing refresh token.",
            )
        if _now() >= code.expires_at:
            raise TokenError(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new "
                "interactive authorization request for this user and resource.",
            )
        if form.get("redirect_uri") != code.redirect_uri:
            raise TokenError(
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
                raise TokenError(
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                )
        code.used = True
        self.state.changed()
        user = self.state.user_by_id(code.user_id)
        if user is None:
            raise TokenError("invalid_grant", 50034, "The user account does not exist.")
        return self.issue(user, code.client_id, code.scopes, code.nonce, form.get("client_info") == "1")

    def _refresh(self, form: dict) -> dict:
        grant = self.state.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None:
            raise TokenError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        user = self.state.user_by_id(grant.user_id)
        if user is None or grant.consent_epoch != user.consent_epoch:
            raise TokenError(
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid. The user or administrator "
                "has revoked the consent or the grant.",
            )
        if grant.refresh_epoch != user.refresh_epoch or _now() >= grant.expires_at:
            raise TokenError(
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                f"{datetime.now(UTC).isoformat()} and was inactive for 90.00:00:00.",
            )
        scopes = grant.scopes
        if form.get("scope"):
            requested, unknown = normalise_scopes(form["scope"])
            if unknown or not set(requested) <= set(grant.scopes):
                raise TokenError(
                    "invalid_grant",
                    65001,
                    "The user or administrator has not consented to use the application with ID "
                    f"'{grant.client_id}'. Send an interactive authorization request for this user and resource.",
                )
            scopes = requested + [s for s in grant.scopes if s == "offline_access" and s not in requested]
        # Rotation: a new refresh token every time; the old one is not revoked at once.
        grant.expires_at = _now() + self.state.options.refresh_token_lifetime
        return self.issue(user, grant.client_id, scopes, None, form.get("client_info") == "1")

    # ----- discovery ---------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict:
        base = self.state.base_url
        issuer_tenant = PERSONAL_TENANT_ID if tenant == "consumers" else "{tenantid}"
        return {
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
            "userinfo_endpoint": f"{self.state.graph_base_url.rsplit('/', 1)[0]}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "name", "tid", "ver", "email"],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": urlsplit(self.state.graph_base_url).netloc,
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(self, authorization_endpoint: str) -> dict:
        tenant = urlsplit(authorization_endpoint).path.strip("/").split("/")[0] or "common"
        return {
            "tenant_discovery_endpoint": f"{self.state.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [],
        }
