"""The sign-in flow: /connect starts it, /oauth/callback completes it.

Security (DESIGN.md, invariants): `state` is random, single-use (consumed by an ETag-guarded
delete, so of two racing callbacks one loses), expires after 10 minutes, and is bound to the
browser that started the flow by a cookie whose hash is stored with it (login CSRF). Only a hash
of the state is a table key; the PKCE verifier is sealed with the vault's key ring. `return_to`
must match ALLOWED_RETURN_URLS. Nothing here logs a state, code, cookie or token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from functions import storage
from functions.errors import BadInput, Conflict, Failure

log = logging.getLogger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
MAX_PARAMETER_LENGTH = 2048
COOKIE_PREFIX = "onedrive_signin_"
COOKIE_PATH = "/api/oauth"
STATE_ROW = "state"
# The callback's own work (token exchange, /me, /me/drive) must answer the browser well within
# the 230 s HTTP limit; a longer throttling wait is an error page, not a hung browser.
CALLBACK_BUDGET_SECONDS = 60.0


class BadRequest(BadInput):
    """Input the flow refuses: shown to the user as a 400 page. The message is safe to show."""


class AlreadyLinked(Failure):
    """The account's connection belongs to another product user and the session did not say
    `relink`: nothing was changed (the account-linking CSRF of issue 16)."""

    def __init__(self, return_to: str) -> None:
        super().__init__("connection belongs to another ref")
        self.return_to = return_to


class Denied(Failure):
    """Microsoft sent the user back with an error (they declined consent, or sign-in failed)."""

    def __init__(self, error: str, return_to: str) -> None:
        super().__init__(error)
        self.error = error
        self.return_to = return_to


@dataclass(frozen=True)
class Started:
    authorize_url: str
    cookie_name: str
    cookie_value: str

    def set_cookie_header(self) -> str:
        secure = "; Secure" if _secure() else ""
        return (
            f"{self.cookie_name}={self.cookie_value}; Max-Age={int(STATE_LIFETIME.total_seconds())}; "
            f"Path={COOKIE_PATH}; HttpOnly; SameSite=Lax{secure}"
        )


@dataclass(frozen=True)
class Completed:
    connection_id: str
    display_name: str
    redirect_to: str | None  # return_to with ?connection=<id>, or None for the success page
    cookie_name: str  # to expire it
    choose: bool = False  # the session asked for the picker first (the trigger sends the browser there)

    def clear_cookie_header(self) -> str:
        return clear_cookie_header(self.cookie_name)


def clear_cookie_header(cookie_name: str) -> str:
    secure = "; Secure" if _secure() else ""
    return f"{cookie_name}=; Max-Age=0; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax{secure}"


def _secure() -> bool:
    from functions.settings import settings

    return settings().public_base_url.startswith("https://")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _cookie_name(state_hash: str) -> str:
    # One cookie per flow, so two tabs signing in at once don't overwrite each other's binding.
    return COOKIE_PREFIX + state_hash[:16]


def _states() -> storage.Table:
    return storage.Table(storage.Tables.OAUTH_STATES)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_sizes(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        if len(name) > MAX_PARAMETER_LENGTH or len(value) > MAX_PARAMETER_LENGTH:
            raise BadRequest("A parameter of this link is too long.")


# ----- GET /api/connect --------------------------------------------------------------------------

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def public_origin_redirect(request_url: str) -> str | None:
    """The same URL on PUBLIC_BASE_URL's origin when the request came on another name of this
    machine (127.0.0.1 for localhost): the browser-binding cookie is set on the host name the flow
    starts on, and the callback comes back on PUBLIC_BASE_URL's, so the flow must start there.
    None when the request is on the public origin already (or isn't a loopback name at all)."""
    from functions.settings import settings

    public, here = urlsplit(settings().public_base_url), urlsplit(request_url)
    if here.hostname not in _LOOPBACK or public.hostname not in _LOOPBACK:
        return None
    if (here.scheme, here.netloc.lower()) == (public.scheme, public.netloc.lower()):
        return None
    return urlunsplit((public.scheme, public.netloc, here.path, here.query, ""))


def connect_again_url(return_to: str = "") -> str:
    """Where a sign-in error page's "Connect again" leads: back to the product when it said where,
    else to a new sign-in on this service."""
    from functions.settings import settings

    return return_to or f"{settings().public_base_url}/api/connect"



def start(params: Mapping[str, str]) -> Started:
    """Spend the link's connect session, create the state and the PKCE pair, remember them
    server-side, and build the authorize URL. Everything about the flow (who, where back to) comes
    from the session the product's backend created, never from the browser's query."""
    from functions.settings import settings
    from functions.signin import sessions
    from functions.tokens import keyring

    _check_sizes(params)
    token = params.get("session", "")
    if not token:
        # The bare `?ref=` form let anyone mint a link that attaches a OneDrive to their account.
        raise BadRequest("This connect link is incomplete. Go back and choose Connect OneDrive again.")
    s = settings()
    session = sessions.consume(token)

    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters, within PKCE's 43-128
    cookie_value = secrets.token_urlsafe(32)
    state_hash = _hash(state)
    _states().insert(
        {
            "PartitionKey": state_hash,
            "RowKey": STATE_ROW,
            "expires_at": _now() + STATE_LIFETIME,
            "verifier": keyring.seal(verifier.encode(), state_hash),
            "browser_hash": _hash(cookie_value),
            "ref": session.ref,
            "return_to": session.return_to,
            "relink": session.relink,
            "choose": session.choose,
        }
    )
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = {
        "client_id": s.microsoft_client_id,
        "response_type": "code",
        "redirect_uri": s.redirect_uri,
        "response_mode": "query",
        "scope": " ".join(s.onedrive_scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if session.prompt:
        query["prompt"] = session.prompt
    if session.login_hint:
        query["login_hint"] = session.login_hint
    log.info("sign-in started", extra={"ref": session.ref})
    return Started(f"{s.microsoft_authority}/oauth2/v2.0/authorize?{urlencode(query)}", _cookie_name(state_hash), cookie_value)


# ----- GET /api/oauth/callback -------------------------------------------------------------------


@dataclass(frozen=True)
class _Flow:
    verifier: str
    ref: str
    return_to: str
    cookie_name: str
    relink: bool = False
    choose: bool = False


def complete(params: Mapping[str, str], cookies: Mapping[str, str]) -> Completed:
    """Check and consume the state, then turn the code into a connection with stored tokens."""
    _check_sizes(params)
    state = params.get("state", "")
    if not state:
        raise BadRequest("This sign-in link is incomplete (no state). Start connecting again.")
    _check_issuer(params.get("iss"))
    flow = _consume(state, cookies)
    if params.get("error"):
        log.info("sign-in returned an error", extra={"error": params["error"][:64]})
        raise Denied(params["error"], flow.return_to)
    code = params.get("code", "")
    if not code:
        raise BadRequest("Microsoft sent neither a code nor an error. Start connecting again.")
    return _connect(code, flow)


def _check_issuer(issuer: str | None) -> None:
    """Mix-up defence (RFC 9207): an authorization response that names its issuer must name ours.
    Microsoft's names the tenant (`.../{tenant id}/v2.0`), so the host is what is compared."""
    from functions.settings import settings

    if issuer is None:
        return
    ours = urlsplit(settings().microsoft_authority)
    try:
        theirs = urlsplit(issuer)
        same = (theirs.scheme, theirs.netloc.lower()) == (ours.scheme, ours.netloc.lower())
    except ValueError:
        same = False
    if not same:
        log.warning("sign-in callback names another issuer")
        raise BadRequest("This sign-in came back from a different sign-in service. Start connecting again.")


def _consume(state: str, cookies: Mapping[str, str]) -> _Flow:
    from functions.tokens import keyring

    state_hash = _hash(state)
    table = _states()
    used = BadRequest("This sign-in link is unknown or was already used. Start connecting again.")
    entity = table.get(state_hash, STATE_ROW, quick=True)
    if entity is None:
        raise used
    # The browser first: a callback URL carried to another browser must not burn the real one's sign-in.
    cookie_name = _cookie_name(state_hash)
    cookie = cookies.get(cookie_name, "")
    if not cookie or not hmac.compare_digest(_hash(cookie), str(entity.get("browser_hash") or "")):
        log.warning("sign-in callback from a browser that did not start it")
        raise BadRequest("This sign-in was started in another browser. Start connecting again from this one.")
    if entity.get("consumed"):
        raise used
    try:
        # Single use: of two callbacks racing with one state, only one can change this version.
        # (A conditional MERGE, not a conditional delete: Azurite lets two racing deletes succeed.)
        table.merge({"PartitionKey": state_hash, "RowKey": STATE_ROW, "consumed": True}, etag=entity.etag)
    except Conflict:
        raise used from None
    table.delete(state_hash, STATE_ROW)
    expires_at = entity["expires_at"]
    if (expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)) <= _now():
        raise BadRequest("This sign-in link has expired. Start connecting again.")
    verifier = keyring.open_sealed(entity["verifier"], state_hash).decode()
    return _Flow(verifier, entity.get("ref") or "", entity.get("return_to") or "", cookie_name, bool(entity.get("relink")),
                 bool(entity.get("choose")))


def _connect(code: str, flow: _Flow) -> Completed:
    from functions import connections
    from functions.errors import ReauthRequired
    from functions.microsoft import identity
    from functions.microsoft.graph import GraphClient
    from functions.microsoft.transport import Deadline
    from functions.tokens import vault

    deadline = Deadline(CALLBACK_BUDGET_SECONDS)
    from functions.tokens import app_credentials

    try:
        response = identity.redeem_code(code, flow.verifier, deadline=deadline)
    except identity.CredentialsRejected as refused:
        app_credentials.rejected(str(refused))
        raise
    except ReauthRequired:
        # invalid_grant on a code: expired, already redeemed, or not ours.
        raise BadRequest("Microsoft did not accept this sign-in (it may have expired). Start connecting again.") from None
    app_credentials.accepted()
    graph = GraphClient("signing-in", lambda force_refresh: response.access_token, deadline=deadline)
    account = graph.me()
    drive = graph.drive()
    account_id, drive_id = account.id, drive.id
    if not account_id or not drive_id:
        raise BadRequest("Microsoft did not return this account's OneDrive. Is it a personal account with OneDrive?")
    connection_id = connections.connection_id_for(account_id)
    existing = connections.get(connection_id)
    if existing is not None and not connections.may_attach(existing, flow.ref, relink=flow.relink):
        log.warning("sign-in refused: the connection belongs to another product user and relink was not asked for",
                    extra={"connection_id": connection_id, "ref": flow.ref})
        raise AlreadyLinked(flow.return_to)
    # Tokens first: an `active` connection always has tokens behind it.
    vault.store(connection_id, vault.TokenSet.from_response(response))
    try:
        connection = connections.save_profile(
            account_id=account_id,
            drive_id=drive_id,
            display_name=account.display_name,
            email=account.email,
            ref=flow.ref,
            relink=flow.relink,
        )
    except connections.RefConflict:
        raise AlreadyLinked(flow.return_to) from None
    log.info("drive connected", extra={"connection_id": connection_id})
    _after_connect(connection_id)
    return Completed(connection_id, connection.display_name, _with_connection(flow.return_to, connection_id),
                     flow.cookie_name, choose=flow.choose)


def _after_connect(connection_id: str) -> None:
    """Subscribe to changes and ask for the first sync. Neither failure undoes the connection: the
    maintenance timer creates missing subscriptions and runs a safety-net sync."""
    try:
        from functions.notifications import subscriptions

        subscriptions.create(connection_id)
    except Exception as error:  # noqa: BLE001 - a seam owned elsewhere; its failure must not fail sign-in
        log.warning("could not create the change subscription yet: %s", type(error).__name__, extra={"connection_id": connection_id})
    try:
        from functions import messages

        messages.enqueue_sync(connection_id, "initial")
    except Exception as error:  # noqa: BLE001
        log.error("could not enqueue the initial sync: %s", type(error).__name__, extra={"connection_id": connection_id})


def _with_connection(return_to: str, connection_id: str) -> str | None:
    if not return_to:
        return None
    parts = urlsplit(return_to)
    query = (parts.query + "&" if parts.query else "") + urlencode({"connection": connection_id})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def purge_expired_states(now: datetime | None = None) -> int:
    """Delete states of abandoned sign-ins (for the maintenance timer); returns how many."""
    cutoff = now or _now()
    table = _states()
    purged = 0
    for entity in table.query("expires_at lt @cutoff", {"cutoff": cutoff}, select=["PartitionKey", "RowKey"]):
        table.delete(entity["PartitionKey"], entity["RowKey"])
        purged += 1
    return purged


def parse_cookies(header: str | None) -> dict[str, str]:
    """Cookie header → {name: value}, tolerant of malformed pairs (browsers send all sorts)."""
    cookies: dict[str, str] = {}
    for pair in (header or "").split(";"):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies

