"""Graph change-notification subscriptions: one per connection, on the drive root, never lapsing.

Each subscription gets its own random clientState. We keep only its SHA-256 (a 384-bit random
secret needs no slow hash) in `Tables.SUBSCRIPTIONS`, keyed by subscription id, so the webhook
can verify a notification with one point read and a constant-time compare. The connection row
mirrors `subscription_id` and `subscription_expires_at` for the timer and the status page.

Graph allows one subscription per resource and changeType per app and user (a second POST is a
409), so management converges instead of replacing: `ensure` retries remote deletions that failed
before, renews what is known, creates only when nothing is, and on a 409 deletes the subscription
Graph names and creates once more. A subscription Graph no longer knows (404 on renew) is
re-created and a sync queued: changes made while it was gone produced no notification. Refusals
(a lower lifetime cap is learnt and obeyed; a subscription limit, a 401 ExtensionError) are
recorded on the connection and retried with a backoff, never into the poison queue.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from functions import connections, messages, storage
from functions.errors import GraphError, ItemNotFound, SubscriptionRefused, Unavailable
from functions.microsoft import wire
from functions.settings import settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from functions.microsoft.graph import GraphClient

T = TypeVar("T")

log = logging.getLogger(__name__)

# Graph documents 42,300 minutes; enforced caps have differed, so the one it states in a refusal wins.
LIFETIME_CAP_MINUTES = 42_300
LIFETIME = timedelta(minutes=LIFETIME_CAP_MINUTES - 60)
_cap_minutes: int | None = None  # learnt from "Subscription expiration can only be N minutes in the future."
_CAP = re.compile(r"can only be (\d+) minutes in the future", re.IGNORECASE)
# 409: "Subscription Id <id> already exists for the requested combination".
_CONFLICT = re.compile(r"Subscription Id ([A-Za-z0-9][A-Za-z0-9._:-]*) already exists", re.IGNORECASE)
# A refused subscription is tried again after 5 minutes, doubling to 6 hours.
REFUSAL_BACKOFF_START = 300
REFUSAL_BACKOFF_MAX = 6 * 3600
RESOURCE = "me/drive/root"
ROW = ""  # one row per subscription: PartitionKey = subscription id
# Graph's ids are GUIDs. Anything else never reaches a table key (`/`, `#`, `?`, `\` are illegal there).
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Graph's caller-side limit is "up to 128 characters"; anything longer is forged.
MAX_CLIENT_STATE = 128
# Bursts of notifications name the same few subscriptions: remember their rows briefly, saving a
# storage read per notification on the webhook's hot path. A subscription row never changes its
# clientState (a new one means a new subscription id), so a short TTL only delays noticing a
# deleted subscription, whose syncs then find the connection disconnected and stop.
VERIFIED_TTL_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000
_verified: dict[str, tuple[str, str, float]] = {}
# Unknown ids too, briefly: a forged flood repeating ids costs one read per id per UNKNOWN_TTL, not
# one per POST. Short, because a notification can beat our own write of a brand-new subscription's
# row (the initial sync, queued after that write, covers what such a drop would miss).
UNKNOWN_TTL_SECONDS = 10.0
_unknown: dict[str, float] = {}


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    connection_id: str
    expires_at: datetime


def valid_id(subscription_id: object) -> bool:
    return isinstance(subscription_id, str) and bool(_VALID_ID.match(subscription_id))


def digest(client_state: str) -> str:
    return hashlib.sha256(client_state.encode("utf-8", "surrogatepass")).hexdigest()


def _table() -> storage.Table:
    return storage.Table(storage.Tables.SUBSCRIPTIONS)


def _graph(connection_id: str) -> GraphClient:
    from functions.microsoft.graph import GraphClient
    from functions.microsoft.transport import Deadline
    from functions.tokens import vault

    return GraphClient(connection_id, vault.token_source(connection_id), deadline=Deadline(120))


def _expiry_of(answer: wire.Subscription, requested: datetime) -> datetime:
    """What Graph granted (it may shorten the lifetime); our request if the answer lacks it."""
    return answer.expires_at or requested


def verify(subscription_id: str, client_state: str, *, may_read: bool = True) -> str | None:
    """The connection a notification belongs to, or None if the subscription or clientState is wrong.
    `may_read=False`: answer from what is remembered only (None if nothing is).

    Storage errors propagate: the webhook must answer 5xx then, so Graph delivers again.
    """
    if not valid_id(subscription_id) or not isinstance(client_state, str) or not 0 < len(client_state) <= MAX_CLIENT_STATE:
        return None
    known = _verified.get(subscription_id)
    if known is None or time.monotonic() - known[2] > VERIFIED_TTL_SECONDS:
        missed = _unknown.get(subscription_id)
        if not may_read or (missed is not None and time.monotonic() - missed < UNKNOWN_TTL_SECONDS):
            return None
        # One quick retry, then fail so Graph retries (it must hear < 3 s).
        row = _table().get(subscription_id, ROW, quick=True)
        if row is None:
            _verified.pop(subscription_id, None)
            if len(_unknown) >= VERIFIED_CACHE_SIZE:
                _unknown.clear()
            _unknown[subscription_id] = time.monotonic()
            return None
        _unknown.pop(subscription_id, None)
        known = (str(row.get("client_state_sha256", "")), str(row.get("connection_id") or ""), time.monotonic())
        if len(_verified) >= VERIFIED_CACHE_SIZE:
            _verified.clear()
        _verified[subscription_id] = known
    expected, connection_id, _ = known
    if not hmac.compare_digest(digest(client_state).encode(), expected.encode()):
        return None
    return connection_id or None


def lookup(subscription_id: str) -> str | None:
    """The connection of a subscription, without checking a clientState (for our own bookkeeping)."""
    if not valid_id(subscription_id):
        return None
    row = _table().get(subscription_id, ROW)
    return None if row is None else str(row.get("connection_id") or "") or None


def ensure(connection_id: str) -> Subscription | None:
    """Converge on exactly one live subscription for the connection, whatever the starting state.

    Retries the remote deletions that failed before, renews the known subscription (a 404 means
    Graph lost it: create), and creates one only when none is known. Graph refuses a second
    subscription on the same resource with 409 naming the one it has (an orphan of a POST whose
    answer was lost, or of a disconnect whose DELETE failed): that one is deleted and the POST
    made once more. Refusals are recorded on the connection with a backoff (SubscriptionRefused).
    """
    if settings().app_folder_only:
        # Graph refuses a subscription to a token holding only Files.ReadWrite.AppFolder (a
        # personal drive's subscription needs Files.ReadWrite): maintenance polls such connections.
        return None
    connection = connections.require(connection_id)
    graph = _graph(connection_id)
    try:
        _retry_stale_deletions(graph, connection)
        subscription = None
        if connection.subscription_id:
            subscription = _renew_known(graph, connection_id, connection.subscription_id)
        if subscription is None:
            subscription = _create(graph, connection_id)
    except (GraphError, Unavailable) as error:
        raise _refused(connection, error) from None
    _delete_others(graph, connection_id, subscription.subscription_id)
    if connection.subscription_error or connection.subscription_failures:
        connections.update(connection_id, connections.Update(subscription_error="", subscription_failures=0))
    return subscription


# The sign-in path: a reconnect renews what is there instead of adding a second one.
create = ensure


def renew(connection_id: str) -> Subscription | None:
    """Push the expiry out to the maximum again; re-create (and sync) if Graph lost the subscription."""
    known = connections.require(connection_id).subscription_id
    subscription = ensure(connection_id)
    if subscription is not None and subscription.subscription_id != known:
        # Changes made while there was none produced no notification.
        messages.enqueue_sync(connection_id, "subscription_recreated" if known else "subscription_missing")
    return subscription


def reauthorize(connection_id: str) -> Subscription | None:
    """Answer a `reauthorizationRequired` lifecycle event: reauthorize, or renew (which also reauthorizes)."""
    current = connections.require(connection_id).subscription_id
    if not current:
        return renew(connection_id)
    try:
        _graph(connection_id).reauthorize_subscription(current)
    except ItemNotFound:
        pass  # renew finds it gone too, and creates one
    except GraphError as error:
        # Graph documents a PATCH as an equally valid answer; use it when reauthorize is refused.
        log.info("reauthorize refused (%s); renewing instead", error.code, extra={"connection_id": connection_id})
    return renew(connection_id)


def recreate(connection_id: str, *, reason: str) -> Subscription | None:
    """After Graph says it removed the subscription: converge again, plus a sync (nothing told us
    about changes meanwhile)."""
    subscription = ensure(connection_id)
    messages.enqueue_sync(connection_id, reason)
    return subscription


def delete(connection_id: str) -> None:
    """Delete the connection's subscriptions in Graph (404 is fine) and stop accepting their notifications.

    A remote deletion that fails (revoked tokens, Graph down) is remembered on the connection
    (`stale_subscription_ids`) and retried by the next `ensure`, e.g. at a reconnect: otherwise the
    orphan would block the new subscription with a 409 for up to 29 days. The first Graph error is
    re-raised after.
    """
    connection = connections.get(connection_id)
    if connection is None:
        return
    known = _stale_ids(connection) | ({connection.subscription_id} if connection.subscription_id else set())
    known |= _rows_of(connection_id)
    failure: Exception | None = None
    left: set[str] = set()
    if known:
        try:
            graph = _graph(connection_id)
        except Exception as error:  # noqa: BLE001 - local state must change whatever Graph says
            graph, failure = None, error
        for subscription_id in sorted(known):
            if graph is not None and _try_delete(graph, subscription_id, connection_id):
                continue
            left.add(subscription_id)
    for subscription_id in known:
        _stop_accepting(subscription_id) if subscription_id in left else _forget(subscription_id)
    # A MERGE can't remove a property: the expiry becomes "ended now".
    connections.update(connection_id, connections.Update(subscription_id="", subscription_expires_at=datetime.now(UTC),
                                                         stale_subscription_ids=_join(left)))
    if failure is not None:
        raise failure


# ----- converging --------------------------------------------------------------------------------


def _renew_known(graph: GraphClient, connection_id: str, subscription_id: str) -> Subscription | None:
    """The known subscription renewed, or None when Graph no longer has it."""
    try:
        answer, expires_at = _with_lifetime(lambda expiry: graph.renew_subscription(subscription_id, expiry))
    except ItemNotFound:
        log.warning("subscription vanished; re-creating", extra={"connection_id": connection_id, "subscription_id": subscription_id})
        _forget(subscription_id)
        connections.update(connection_id, connections.Update(subscription_id=""))
        return None
    return _extended(connection_id, subscription_id, _expiry_of(answer, expires_at))


def _create(graph: GraphClient, connection_id: str) -> Subscription:
    for attempt in (1, 2):
        client_state = secrets.token_urlsafe(48)

        def post(expiry: datetime, state: str = client_state) -> wire.Subscription:
            return graph.create_subscription(resource=RESOURCE, notification_url=settings().notification_url,
                                             lifecycle_url=settings().lifecycle_url, expires_at=expiry,
                                             client_state=state)

        try:
            answer, requested = _with_lifetime(post)
        except GraphError as error:
            if error.status != 409 or attempt == 2:
                raise
            _delete_conflicting(graph, connection_id, error)
            continue
        return _created(connection_id, answer, requested, client_state)
    raise AssertionError("unreachable")


def _created(connection_id: str, answer: wire.Subscription, requested: datetime, client_state: str) -> Subscription:
    subscription_id = answer.id
    if not valid_id(subscription_id):
        raise GraphError(201, "invalidSubscriptionId", "Graph answered a subscription without a usable id")
    subscription = Subscription(subscription_id, connection_id, _expiry_of(answer, requested))
    _table().upsert(
        {
            "PartitionKey": subscription.subscription_id,
            "RowKey": ROW,
            "connection_id": connection_id,
            "client_state_sha256": digest(client_state),
            "expires_at": subscription.expires_at,
        }
    )
    connections.update(connection_id, connections.Update(subscription_id=subscription.subscription_id,
                                                         subscription_expires_at=subscription.expires_at))
    _unknown.pop(subscription.subscription_id, None)
    log.info("subscription created", extra={"connection_id": connection_id, "subscription_id": subscription.subscription_id})
    return subscription


def _delete_conflicting(graph: GraphClient, connection_id: str, conflict: GraphError) -> None:
    """Graph has a subscription on our resource that we don't know (or no longer accept): delete it."""
    match = _CONFLICT.search(conflict.message)
    found = [match.group(1)] if match and valid_id(match.group(1)) else _listed_on_our_resource(graph)
    if not found:
        raise conflict
    for subscription_id in found:
        log.warning("deleting a subscription Graph holds on our resource (409)",
                    extra={"connection_id": connection_id, "subscription_id": subscription_id})
        _delete_remote(graph, subscription_id)
        _forget(subscription_id)


def _delete_others(graph: GraphClient, connection_id: str, keep: str) -> None:
    """Best effort: any other subscription Graph lists on our resource (duplicates an older, more
    lenient Graph or our own earlier code left) goes; a failed deletion is remembered for next time."""
    try:
        others = [s for s in _listed_on_our_resource(graph) if s != keep]
    except (GraphError, Unavailable) as error:
        log.info("could not list subscriptions (%s)", type(error).__name__, extra={"connection_id": connection_id})
        return
    if not others:
        return
    left: set[str] = set()
    for subscription_id in others:
        log.warning("deleting a duplicate subscription", extra={"connection_id": connection_id, "subscription_id": subscription_id})
        if _try_delete(graph, subscription_id, connection_id):
            _forget(subscription_id)
        else:
            left.add(subscription_id)
    if left:
        connection = connections.require(connection_id)
        connections.update(connection_id, connections.Update(stale_subscription_ids=_join(_stale_ids(connection) | left)))


def _listed_on_our_resource(graph: GraphClient) -> list[str]:
    """When the 409's text names no id: Graph lists the app's subscriptions for the signed-in user."""
    ours = _resource_key(RESOURCE)
    return [s.id for s in graph.list_subscriptions() if valid_id(s.id) and _resource_key(s.resource) == ours]


def _resource_key(resource: str) -> str:
    # `me/drive/root` and `drives/{id}/root` name the same resource (microsoft.md §6).
    value = resource.strip("/").lower()
    return "root" if value == "me/drive/root" or re.fullmatch(r"drives/[^/]+/root", value) else value


def _with_lifetime(call: Callable[[datetime], T]) -> tuple[T, datetime]:
    """`call(expiry)` with the longest lifetime Graph allows; when its cap is lower than we thought
    ("Subscription expiration can only be N minutes in the future."), learn N and call again."""
    global _cap_minutes
    for attempt in (1, 2):
        expiry = datetime.now(UTC) + _lifetime()
        try:
            return call(expiry), expiry
        except GraphError as error:
            match = _CAP.search(error.message) if error.status == 400 else None
            if match is None or attempt == 2:
                raise
            _cap_minutes = int(match.group(1))
            log.warning("Graph caps subscriptions at %d minutes; asking for less", _cap_minutes)
    raise AssertionError("unreachable")


def _lifetime() -> timedelta:
    cap = _cap_minutes or LIFETIME_CAP_MINUTES
    # Margin for clock skew between us and Graph: an hour, or a tenth of a short cap.
    return timedelta(minutes=max(1, cap - min(60, cap // 10)))


def _refused(connection: connections.Connection, error: Exception) -> SubscriptionRefused:
    """Record why, and when to try again (doubling up to a cap): the timer's next attempt waits for it."""
    failures = connection.subscription_failures + 1
    retry_after = min(REFUSAL_BACKOFF_START * 2 ** (failures - 1), REFUSAL_BACKOFF_MAX)
    reason = _describe_refusal(error)
    now = datetime.now(UTC)
    connections.update(connection.connection_id, connections.Update(
        subscription_error=reason, subscription_error_at=now, subscription_failures=failures,
        subscription_retry_at=now + timedelta(seconds=retry_after)))
    log.warning("subscription refused: %s; retry in %d s", reason, retry_after,
                extra={"connection_id": connection.connection_id})
    return SubscriptionRefused(reason, retry_after)


def _describe_refusal(error: Exception) -> str:
    if isinstance(error, Unavailable):
        return "Microsoft Graph stayed unavailable"
    assert isinstance(error, GraphError)
    if error.status == 403 and "maximum number of subscriptions" in error.message.lower():
        return "Graph's maximum number of subscriptions has been reached (HTTP 403)"
    if error.status == 401:
        return f"Graph refused the subscription's authentication (HTTP 401 {error.code})"
    # Code and status only: the message may quote our notification URL.
    return f"Graph refused the subscription (HTTP {error.status} {error.code})"


def _retry_stale_deletions(graph: GraphClient, connection: connections.Connection) -> None:
    stale = _stale_ids(connection) - {connection.subscription_id}
    if not stale:
        return
    left = {s for s in sorted(stale) if not _try_delete(graph, s, connection.connection_id)}
    for subscription_id in stale - left:
        _forget(subscription_id)
    connections.update(connection.connection_id, connections.Update(stale_subscription_ids=_join(left)))


def _stale_ids(connection: connections.Connection) -> set[str]:
    return {s for s in connection.stale_subscription_ids.split(",") if valid_id(s)}


def _join(ids: set[str]) -> str:
    return ",".join(sorted(ids))


def _extended(connection_id: str, subscription_id: str, expires_at: datetime) -> Subscription:
    _table().upsert({"PartitionKey": subscription_id, "RowKey": ROW, "expires_at": expires_at})
    connections.update(connection_id, connections.Update(subscription_expires_at=expires_at))
    log.info("subscription renewed", extra={"connection_id": connection_id, "subscription_id": subscription_id})
    return Subscription(subscription_id, connection_id, expires_at)


def _try_delete(graph: GraphClient, subscription_id: str, connection_id: str) -> bool:
    try:
        _delete_remote(graph, subscription_id)
        return True
    except Exception as error:  # noqa: BLE001 - remembered and retried by the next ensure
        log.warning("could not delete subscription: %s", type(error).__name__,
                    extra={"connection_id": connection_id, "subscription_id": subscription_id})
        return False


def _delete_remote(graph: GraphClient, subscription_id: str) -> None:
    graph.delete_subscription(subscription_id)  # one already gone (404) is fine


def forget_cached() -> None:
    """Drop every remembered subscription row and the learnt lifetime cap (tests start each case afresh)."""
    global _cap_minutes
    _verified.clear()
    _unknown.clear()
    _cap_minutes = None


def _stop_accepting(subscription_id: str) -> None:
    """Keep the row (its connection, for the retried deletion) but no notification verifies any more."""
    _verified.pop(subscription_id, None)
    _table().upsert({"PartitionKey": subscription_id, "RowKey": ROW, "client_state_sha256": "", "delete_pending": True})


def _forget(subscription_id: str) -> None:
    _verified.pop(subscription_id, None)
    _table().delete(subscription_id, ROW)


def _rows_of(connection_id: str) -> set[str]:
    """Every subscription row of a connection (a scan: only disconnect uses it, to leave no orphan)."""
    rows = _table().query("connection_id eq @id", {"id": connection_id}, select=["PartitionKey"])
    return {row["PartitionKey"] for row in rows}
