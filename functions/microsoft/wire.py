"""What Microsoft sends, parsed once into small typed objects; nothing past `microsoft/` reads its JSON.

  Account, Drive     /me and /me/drive, for sign-in
  DeltaPage          one page of a delta query: its items (`DriveItem`), and where to go next
  ItemRead, Listing  one item read by address (with where it lives), a folder's children page
  Subscription       Graph's answer to creating or renewing a subscription
  TokenResponse      the token endpoint's answer to a code redemption or a refresh
  NotificationBatch  a POST to the webhook: change notifications or lifecycle events

Each `from_…` is tolerant of what a real server (or an attacker, for the webhook) may send: a
missing or mistyped field becomes absent, never a KeyError deep inside the sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from functions.errors import BadInput, GraphError
from functions.microsoft.driveids import normalise_drive_id
from functions.microsoft.driveitem import BadItem, DriveItem

Json = dict[str, object]


def as_object(value: object) -> Json:
    """A JSON object, or an empty one for anything else."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Account:
    id: str
    display_name: str
    email: str

    @classmethod
    def from_graph(cls, d: Json) -> Account:
        # Personal accounts often have no `mail`: the sign-in name is the address then.
        return cls(_text(d.get("id")), _text(d.get("displayName")), _text(d.get("mail")) or _text(d.get("userPrincipalName")))


@dataclass(frozen=True)
class Drive:
    id: str  # normalised (drive ids arrive in varying case)

    @classmethod
    def from_graph(cls, d: Json) -> Drive:
        return cls(normalise_drive_id(_text(d.get("id"))))


@dataclass(frozen=True)
class DeltaPage:
    items: tuple[DriveItem, ...]
    next_link: str | None  # more pages of this round
    delta_link: str | None  # the round is complete: the link for the next one
    without_id: int = 0  # items the feed sent without an id (ignored)

    @classmethod
    def from_graph(cls, d: Json) -> DeltaPage:
        items: list[DriveItem] = []
        without_id = 0
        values = d.get("value")
        for value in values if isinstance(values, list) else []:
            try:
                items.append(DriveItem.from_graph(as_object(value)))
            except BadItem:
                without_id += 1
        next_link = _text(d.get("@odata.nextLink")) or None
        delta_link = _text(d.get("@odata.deltaLink")) or None
        if next_link is None and delta_link is None:
            raise GraphError(200, "noDeltaLink", "a delta page carried neither a nextLink nor a deltaLink")
        return cls(tuple(items), next_link, delta_link, without_id)


@dataclass(frozen=True)
class ItemRead:
    """An item read by address (not delta): here Graph gives the parent's path and folder sizes."""

    item: DriveItem
    parent_path: str  # "/drive/root:/Work/Project" ("" for the root, or when absent)
    size: int  # of a file, or of everything in a folder

    @property
    def path(self) -> str:
        """The item's path in the drive, '/'-separated, without a leading slash ("" for the root)."""
        from functions.microsoft.driveitem import Kind

        if self.item.kind is Kind.ROOT:
            return ""
        base = self.parent_path.split(":", 1)[1].strip("/") if ":" in self.parent_path else ""
        name = self.item.name or ""
        return f"{base}/{name}" if base else name

    @classmethod
    def from_graph(cls, d: Json) -> ItemRead:
        parent = as_object(d.get("parentReference"))
        size = d.get("size")
        return cls(DriveItem.from_graph(d), _text(parent.get("path")),
                   size if isinstance(size, int) and size >= 0 else 0)


@dataclass(frozen=True)
class Listing:
    """One page of a folder's children."""

    children: tuple[ItemRead, ...]
    next_link: str | None

    @classmethod
    def from_graph(cls, d: Json) -> Listing:
        children: list[ItemRead] = []
        values = d.get("value")
        for value in values if isinstance(values, list) else []:
            try:
                children.append(ItemRead.from_graph(as_object(value)))
            except BadItem:
                continue
        return cls(tuple(children), _text(d.get("@odata.nextLink")) or None)


@dataclass(frozen=True)
class Subscription:
    id: str
    expires_at: datetime | None  # what Graph granted (it may shorten the lifetime); None if it didn't say
    resource: str = ""

    @classmethod
    def from_graph(cls, d: Json) -> Subscription:
        return cls(_text(d.get("id")), _datetime(d.get("expirationDateTime")), _text(d.get("resource")))


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MalformedTokenResponse(BadInput):
    """A 200 from the token endpoint without a usable access token."""


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)  # absent when a refresh does not rotate it
    expires_at: datetime
    scope: str = ""

    @classmethod
    def from_json(cls, d: Json, *, now: datetime | None = None) -> TokenResponse:
        access_token = d.get("access_token")
        refresh_token = d.get("refresh_token")
        expires_in = d.get("expires_in", 3599)
        try:
            seconds = float(expires_in) if isinstance(expires_in, (int, float, str)) else None
        except ValueError:
            seconds = None
        if (not isinstance(access_token, str) or not access_token or seconds is None
                or not (refresh_token is None or isinstance(refresh_token, str))):
            raise MalformedTokenResponse("malformed_token_response")
        return cls(
            access_token=access_token,
            refresh_token=refresh_token or None,
            expires_at=(now or datetime.now(UTC)) + timedelta(seconds=seconds),
            scope=_text(d.get("scope")),
        )


class MalformedBatch(BadInput):
    """The body is not a notification batch; the message is safe to show the sender."""


MAX_NOTIFICATIONS = 1000  # per POST; Graph batches far fewer, and each costs a point read


@dataclass(frozen=True)
class Notification:
    subscription_id: str
    client_state: str
    lifecycle_event: str = ""  # set on lifecycle notifications only


@dataclass(frozen=True)
class NotificationBatch:
    notifications: tuple[Notification, ...]

    @classmethod
    def from_body(cls, body: bytes) -> NotificationBatch:
        """`{"value": [{"subscriptionId", "clientState", "lifecycleEvent"?, ...}, ...]}`."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise MalformedBatch("the body is not JSON") from None
        entries = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise MalformedBatch("expected an object with a 'value' array")
        if len(entries) > MAX_NOTIFICATIONS:
            raise MalformedBatch(f"at most {MAX_NOTIFICATIONS} notifications per request")
        batch = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise MalformedBatch(f"value[{position}] is not an object")
            subscription_id = entry.get("subscriptionId")
            client_state = entry.get("clientState")
            event = entry.get("lifecycleEvent")
            if not isinstance(subscription_id, str) or not subscription_id:
                raise MalformedBatch(f"value[{position}].subscriptionId must be a non-empty string")
            if client_state is not None and not isinstance(client_state, str):
                raise MalformedBatch(f"value[{position}].clientState must be a string")
            if event is not None and not isinstance(event, str):
                raise MalformedBatch(f"value[{position}].lifecycleEvent must be a string")
            batch.append(Notification(subscription_id, client_state or "", event or ""))
        return cls(tuple(batch))
