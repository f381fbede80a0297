"""Connections: one per connected Microsoft account, with its profile and its status.

A connection id is derived from the Microsoft account id, so connecting the same account again
lands on the same id (and the same mirror) without a lookup, even from two browsers at once.
Different owners update different fields (sign-in the profile, subscriptions the expiry, the sync
worker its counters), so every update is a MERGE of just the fields it names: an `Update`, whose
fields are typed, and where None means "leave as it is".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from functions import storage
from functions.errors import Conflict, Failure

log = logging.getLogger(__name__)

PARTITION = "connection"
_NAMESPACE = uuid.UUID("6f9b7a52-3c1e-4f0a-9a57-0d1e5b1c2a3d")


class ConnectionState(StrEnum):
    ACTIVE = "active"
    REAUTH_REQUIRED = "reauth_required"  # the refresh token was refused; the user must sign in again
    DISCONNECTED = "disconnected"


class ConnectionNotFound(Failure, LookupError):
    """No connection with this id."""


def connection_id_for(account_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"msa:{account_id.lower()}"))


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Connection:
    connection_id: str
    account_id: str
    drive_id: str
    display_name: str = ""
    email: str = ""
    ref: str = ""
    # Set when a connect session with `relink` moved the connection to another product user.
    previous_ref: str = ""
    ref_changed_at: datetime | None = None
    state: ConnectionState = ConnectionState.ACTIVE
    created_at: datetime | None = None
    connected_at: datetime | None = None
    subscription_id: str = ""
    subscription_expires_at: datetime | None = None
    # Written when Graph refuses the subscription: why, since when, and when to try again.
    subscription_error: str = ""
    subscription_error_at: datetime | None = None
    subscription_retry_at: datetime | None = None
    subscription_failures: int = 0
    # Subscriptions whose remote deletion failed: retried by the next `subscriptions.ensure`.
    stale_subscription_ids: str = ""
    # Written by the sync worker.
    last_sync_started_at: datetime | None = None
    last_sync_finished_at: datetime | None = None
    last_sync_error: str = ""
    items_copied: int = 0
    bytes_copied: int = 0
    items_moved: int = 0
    items_deleted: int = 0
    items_skipped: int = 0
    items_failed: int = 0
    # Written by the token vault and the maintenance timer.
    last_token_refresh_at: datetime | None = None
    # Written by a disconnect: its mirror goes too (a sync that outlives the disconnect checks it).
    mirror_deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Connection:
        known = {f.name for f in fields(cls)} - {"connection_id", "extra"}
        values = {name: entity[name] for name in known if entity.get(name) is not None}
        if "state" in values:
            values["state"] = ConnectionState(values["state"])
        for name, value in values.items():
            if isinstance(value, datetime) and value.tzinfo is None:
                values[name] = value.replace(tzinfo=UTC)
        extra = {k: v for k, v in entity.items() if k not in known and k not in ("PartitionKey", "RowKey")}
        return cls(connection_id=entity["RowKey"], extra=extra, **values)

    def to_public(self) -> dict[str, Any]:
        """What the product API and the status page may show: never a token."""
        return {
            "id": self.connection_id,
            "state": str(self.state),
            "account": {"id": self.account_id, "name": self.display_name, "email": self.email},
            "driveId": self.drive_id,
            "ref": self.ref,
            "previousRef": self.previous_ref or None,
            "refChangedAt": _iso(self.ref_changed_at),
            "createdAt": _iso(self.created_at),
            "connectedAt": _iso(self.connected_at),
            "subscriptionExpiresAt": _iso(self.subscription_expires_at),
            "subscriptionError": {
                "message": self.subscription_error,
                "since": _iso(self.subscription_error_at),
                "retryAt": _iso(self.subscription_retry_at),
            } if self.subscription_error else None,
            "lastSync": {
                "startedAt": _iso(self.last_sync_started_at),
                "finishedAt": _iso(self.last_sync_finished_at),
                "error": self.last_sync_error or None,
                "itemsCopied": self.items_copied,
                "bytesCopied": self.bytes_copied,
                "itemsMoved": self.items_moved,
                "itemsDeleted": self.items_deleted,
                "itemsSkipped": self.items_skipped,
                "itemsFailed": self.items_failed,
            },
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _table() -> storage.Table:
    return storage.Table(storage.Tables.CONNECTIONS)


def get(connection_id: str, *, prompt: bool = False) -> Connection | None:
    """The connection, or None. `prompt`: someone waits (HTTP): one quick retry, not ~15 s."""
    row = _table().get(PARTITION, connection_id, quick=prompt)
    return None if row is None else Connection.from_entity(row)


def require(connection_id: str) -> Connection:
    found = get(connection_id)
    if found is None:
        raise ConnectionNotFound(connection_id)
    return found


class RefConflict(Failure):
    """The connection belongs to another product user (`ref`) and re-linking was not asked for."""


def may_attach(connection: Connection, ref: str, *, relink: bool) -> bool:
    """Whether a sign-in for product user `ref` may take this connection: it is unattached, already
    theirs, or the product said `relink`. An empty `ref` (the operator's status page) never moves it."""
    return not ref or not connection.ref or connection.ref == ref or relink


def save_profile(*, account_id: str, drive_id: str, display_name: str, email: str, ref: str,
                 relink: bool = False) -> Connection:
    """Create the connection, or bring an existing one back to `active` with a fresh profile.

    Raises RefConflict if it belongs to another `ref` and `relink` is not set; a re-link is
    recorded in `previous_ref` and `ref_changed_at`. ETag-guarded: a concurrent sign-in for
    another product user can't slip between the check and the write."""
    connection_id = connection_id_for(account_id)
    for _ in range(10):
        now = utcnow()
        row = _table().get(PARTITION, connection_id)
        existing = Connection.from_entity(row) if row is not None else None
        if existing is not None and not may_attach(existing, ref, relink=relink):
            raise RefConflict(connection_id)
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": connection_id,
            "account_id": account_id,
            "drive_id": drive_id,
            "display_name": display_name,
            "email": email,
            "state": str(ConnectionState.ACTIVE),
            "connected_at": now,
            "last_sync_error": "",
        }
        if ref or existing is None:
            entity["ref"] = ref
        if existing is not None and existing.ref and ref and existing.ref != ref:
            entity["previous_ref"] = existing.ref
            entity["ref_changed_at"] = now
        if existing is None or existing.created_at is None:
            entity["created_at"] = now
        try:
            if row is None:
                _table().insert(entity)
            else:
                _table().merge(entity, etag=row.etag)
        except Conflict:
            continue  # written meanwhile (a sync's counters, another sign-in): decide again
        if "previous_ref" in entity:
            log.warning("connection re-linked to another product user",
                        extra={"connection_id": connection_id, "ref": ref, "previous_ref": entity["previous_ref"]})
        return require(connection_id)
    raise RuntimeError(f"could not save the profile of {connection_id}: too much contention")


@dataclass(frozen=True)
class Update:
    """Fields of a connection that its owners change after sign-in; None leaves a field as it is."""

    # The subscription's owner (notifications/subscriptions.py).
    subscription_id: str | None = None
    subscription_expires_at: datetime | None = None
    subscription_error: str | None = None
    subscription_error_at: datetime | None = None
    subscription_retry_at: datetime | None = None
    subscription_failures: int | None = None
    stale_subscription_ids: str | None = None
    # The sync worker's status and counters.
    last_sync_started_at: datetime | None = None
    last_sync_finished_at: datetime | None = None
    last_sync_error: str | None = None
    items_copied: int | None = None
    bytes_copied: int | None = None
    items_moved: int | None = None
    items_deleted: int | None = None
    items_skipped: int | None = None
    items_failed: int | None = None
    # The token vault.
    last_token_refresh_at: datetime | None = None
    # Sign-in sets it; tests and repairs may move it.
    connected_at: datetime | None = None
    # A disconnect.
    mirror_deleted: bool | None = None
    # The maintenance timer's markers, `<task>_due_at`: a task is on its way until then.
    due: Mapping[str, datetime] = field(default_factory=dict)

    def values(self) -> dict[str, object]:
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "due"}
        found: dict[str, object] = {name: value for name, value in named.items() if value is not None}
        for name, moment in self.due.items():
            if not name.endswith("_due_at"):
                raise ValueError(f"maintenance markers end in _due_at, not {name!r}")
            found[name] = moment
        return found


def update(connection_id: str, change: Update) -> None:
    """Merge the fields `change` names into the connection's row (it must exist: `NotFound` otherwise)."""
    values = change.values()
    if values:
        _table().merge({**values, "PartitionKey": PARTITION, "RowKey": connection_id})


def set_state(connection_id: str, state: ConnectionState, *, error: str = "") -> None:
    values: dict[str, object] = {"state": str(state)}
    if error:
        values["last_sync_error"] = error
    _table().merge({**values, "PartitionKey": PARTITION, "RowKey": connection_id})


def leave_active(connection_id: str, state: ConnectionState, *, error: str = "") -> bool:
    """Move an *active* connection to `state`. True if it is in `state` now; False (nothing
    written) if it was in another one, e.g. disconnected meanwhile: a worker's late verdict must
    not overwrite the user's."""
    def decide(row: storage.Row | None) -> storage.Write[bool] | storage.Keep[bool]:
        if row is None:
            return storage.Keep(False)
        if row.get("state") != str(ConnectionState.ACTIVE):
            return storage.Keep(row.get("state") == str(state))
        return storage.Write({"state": str(state), "last_sync_error": error}, True)

    try:
        # A row written meanwhile (a sync's status) is looked at again.
        return storage.swap(_table(), PARTITION, connection_id, decide, attempts=5).result
    except Conflict:
        return False


def delete(connection_id: str) -> None:
    _table().delete(PARTITION, connection_id)


def iterate(*, ref: str | None = None, states: tuple[ConnectionState, ...] | None = None) -> Iterator[Connection]:
    """Every connection, optionally only those of one product user or in some states."""
    query = f"PartitionKey eq '{PARTITION}'"
    parameters: dict[str, Any] = {}
    if ref is not None:
        query += " and ref eq @ref"
        parameters["ref"] = ref
    for entity in _table().query(query, parameters):
        connection = Connection.from_entity(entity)
        if states is None or connection.state in states:
            yield connection


def page(*, ref: str | None, limit: int, after: str | None) -> tuple[list[Connection], str | None]:
    """One page ordered by id; returns the page and the id to continue after (or None)."""
    query = f"PartitionKey eq '{PARTITION}'"
    parameters: dict[str, Any] = {}
    if ref is not None:
        query += " and ref eq @ref"
        parameters["ref"] = ref
    if after:
        query += " and RowKey gt @after"
        parameters["after"] = after
    found: list[Connection] = []
    # Only the product API pages: someone waits, so one quick retry, then a 503.
    for entity in _table().query(query, parameters, page_size=limit, quick=True):
        found.append(Connection.from_entity(entity))
        if len(found) > limit:
            break
    more = len(found) > limit
    found = found[:limit]
    return found, (found[-1].connection_id if more and found else None)
