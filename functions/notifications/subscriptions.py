"""Graph change-notification subscriptions: one per connection, on the drive root, never lapsing.

Each subscription gets its own random clientState. We keep only its SHA-256 (a 384-bit random
secret needs no slow hash) in `Tables.SUBSCRIPTIONS`, keyed by subscription id, so the webhook
can verify a notification with one point read and a constant-time compare. The connection row
mirrors `subscription_id` and `subscription_expires_at` for the timer and the status page.

A subscription that Graph no longer knows (404 on renew) is re-created, and a sync is queued:
changes made while it was gone produced no notification.
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
from typing import TYPE_CHECKING

from functions import connections, messages, storage
from functions.errors import GraphError, ItemNotFound
from functions.microsoft import wire
from functions.settings import settings

if TYPE_CHECKING:
    from functions.microsoft.graph import GraphClient

log = logging.getLogger(__name__)

# Graph refuses more than 42,300 minutes; keep an hour of margin for clock skew between us and it.
LIFETIME = timedelta(minutes=42_300 - 60)
RESOURCE = "me/drive/root"
APP_FOLDER_RESOURCE = "me/drive/special/approot"  # a Files.ReadWrite.AppFolder token sees nothing else
ROW = ""  # one row per subscription: PartitionKey = subscription id
# Graph's ids are GUIDs. Anything else never reaches a table key (`/`, `#`, `?`, `\` are illegal there).
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Graph's caller-side limit is "up to 128 characters"; anything longer is forged.
MAX_CLIENT_STATE = 255
# Bursts of notifications name the same few subscriptions: remember their rows briefly, saving a
# storage read per notification on the webhook's hot path. A subscription row never changes its
# clientState (a new one means a new subscription id), so a short TTL only delays noticing a
# deleted subscription, whose syncs then find the connection disconnected and stop.
VERIFIED_TTL_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000
_verified: dict[str, tuple[str, str, float]] = {}


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    connection_id: str
    expires_at: datetime


def _resource() -> str:
    from functions.sync import selection

    return APP_FOLDER_RESOURCE if selection.app_folder_only() else RESOURCE


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


def verify(subscription_id: str, client_state: str) -> str | None:
    """The connection a notification belongs to, or None if the subscription or clientState is wrong.

    Storage errors propagate: the webhook must answer 5xx then, so Graph delivers again.
    """
    if not valid_id(subscription_id) or not isinstance(client_state, str) or not 0 < len(client_state) <= MAX_CLIENT_STATE:
        return None
    known = _verified.get(subscription_id)
    if known is None or time.monotonic() - known[2] > VERIFIED_TTL_SECONDS:
        # One quick retry, then fail so Graph retries (it must hear < 3 s).
        row = _table().get(subscription_id, ROW, quick=True)
        if row is None:
            _verified.pop(subscription_id, None)
            return None
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


def create(connection_id: str) -> Subscription:
    """Subscribe to changes of the connection's drive; replaces (and deletes) any previous subscription.

    Graph validates our notification and lifecycle URLs during this call (the webhook answers that
    without touching storage).
    """
    previous = connections.require(connection_id).subscription_id
    graph = _graph(connection_id)
    client_state = secrets.token_urlsafe(48)
    requested = datetime.now(UTC) + LIFETIME
    answer = graph.create_subscription(resource=_resource(), notification_url=settings().notification_url,
                                       lifecycle_url=settings().lifecycle_url, expires_at=requested,
                                       client_state=client_state)
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
    log.info("subscription created", extra={"connection_id": connection_id, "subscription_id": subscription.subscription_id})
    if previous and previous != subscription.subscription_id:
        _delete_one(graph, previous, connection_id)
    return subscription


def renew(connection_id: str) -> Subscription:
    """Push the expiry out to the maximum again; re-create (and sync) if Graph lost the subscription."""
    current = connections.require(connection_id).subscription_id
    if not current:
        return recreate(connection_id, reason="subscription_missing")
    graph = _graph(connection_id)
    requested = datetime.now(UTC) + LIFETIME
    try:
        answer = graph.renew_subscription(current, requested)
    except ItemNotFound:
        log.warning("subscription vanished; re-creating", extra={"connection_id": connection_id, "subscription_id": current})
        _forget(current)
        return recreate(connection_id, reason="subscription_recreated")
    return _extended(connection_id, current, _expiry_of(answer, requested))


def reauthorize(connection_id: str) -> Subscription:
    """Answer a `reauthorizationRequired` lifecycle event: reauthorize, or renew (which also reauthorizes)."""
    current = connections.require(connection_id).subscription_id
    if not current:
        return recreate(connection_id, reason="subscription_missing")
    try:
        _graph(connection_id).reauthorize_subscription(current)
    except ItemNotFound:
        _forget(current)
        return recreate(connection_id, reason="subscription_recreated")
    except GraphError as error:
        # Graph documents a PATCH as an equally valid answer; use it when reauthorize is refused.
        log.info("reauthorize refused (%s); renewing instead", error.code, extra={"connection_id": connection_id})
    return renew(connection_id)


def recreate(connection_id: str, *, reason: str) -> Subscription:
    """A new subscription plus a sync: nothing told us about changes while there was none."""
    subscription = create(connection_id)
    messages.enqueue_sync(connection_id, reason)
    return subscription


def delete(connection_id: str) -> None:
    """Delete the connection's subscriptions in Graph (404 is fine) and locally.

    Local rows go even when Graph can't be reached (revoked tokens): notifications for them are then
    dropped as unknown, and Graph lets the subscription lapse. The Graph error is re-raised after.
    """
    connection = connections.get(connection_id)
    known = {connection.subscription_id} if connection and connection.subscription_id else set()
    known |= _rows_of(connection_id)
    failure: Exception | None = None
    if known:
        try:
            graph = _graph(connection_id)
            for subscription_id in sorted(known):
                _delete_remote(graph, subscription_id)
        except Exception as error:  # noqa: BLE001 - local state must go whatever Graph says
            failure = error
    for subscription_id in known:
        _forget(subscription_id)
    if connection is not None:
        # A MERGE can't remove a property: the expiry becomes "ended now".
        connections.update(connection_id, connections.Update(subscription_id="", subscription_expires_at=datetime.now(UTC)))
    if failure is not None:
        raise failure


def _extended(connection_id: str, subscription_id: str, expires_at: datetime) -> Subscription:
    _table().upsert({"PartitionKey": subscription_id, "RowKey": ROW, "expires_at": expires_at})
    connections.update(connection_id, connections.Update(subscription_expires_at=expires_at))
    log.info("subscription renewed", extra={"connection_id": connection_id, "subscription_id": subscription_id})
    return Subscription(subscription_id, connection_id, expires_at)


def _delete_one(graph: GraphClient, subscription_id: str, connection_id: str) -> None:
    try:
        _delete_remote(graph, subscription_id)
    except Exception as error:  # noqa: BLE001 - the old one lapses by itself; its notifications are dropped
        log.warning("could not delete replaced subscription: %s", type(error).__name__,
                    extra={"connection_id": connection_id, "subscription_id": subscription_id})
    _forget(subscription_id)


def _delete_remote(graph: GraphClient, subscription_id: str) -> None:
    graph.delete_subscription(subscription_id)


def forget_cached() -> None:
    """Drop every remembered subscription row (tests start each case with empty storage)."""
    _verified.clear()


def _forget(subscription_id: str) -> None:
    _verified.pop(subscription_id, None)
    _table().delete(subscription_id, ROW)


def _rows_of(connection_id: str) -> set[str]:
    """Every subscription row of a connection (a scan: only disconnect uses it, to leave no orphan)."""
    rows = _table().query("connection_id eq @id", {"id": connection_id}, select=["PartitionKey"])
    return {row["PartitionKey"] for row in rows}
