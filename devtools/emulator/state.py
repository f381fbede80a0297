"""The emulator's state, at the bottom of the package: plain data and lookups, no behaviour.

Users (each with a drive), sign-in's codes and tokens, subscriptions, delta sessions, the switches
(``Options``) and the addresses the servers listen on. Services (``services/``) take a ``State``
and change it; routes (``routes/``) take the services; ``server.py`` builds all three.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .drive import Drive
from .options import Options
from .times import iso


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


@dataclass
class Subscription:
    id: str
    resource: str
    application_id: str
    client_state: str | None
    notification_url: str
    lifecycle_notification_url: str | None
    expires_at: datetime
    creator_id: str
    drive_id: str
    folder_id: str
    tls_version: str = "v1_2"

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at

    def public(self) -> dict:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": "updated",
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": iso(self.expires_at),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class DeltaSession:
    """One enumeration in progress: the ids still to send, in the order chosen at its start."""

    drive_id: str
    folder_id: str | None
    upto: int
    epoch: int
    select: list[str] | None
    page_size: int
    queue: list[str]
    key: str = ""
    position: int = 0
    pages: int = 0
    served: dict[str, int] = field(default_factory=dict)  # id -> seq of the state sent
    # Folder-scoped delta: items moved out of the folder since the token, sent as tombstones.
    moved_out: set[str] = field(default_factory=set)
    empty_page_done: bool = False
    final_empty_done: bool = False


class State:
    """Everything the emulator knows. One lock guards users, drives and tokens: the servers'
    thread and the test's thread both change them."""

    def __init__(
        self,
        client_id: str = "emulator-client-id",
        client_secret: str = "emulator-client-secret",
        redirect_uris: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.options = Options()
        self.client_id = client_id
        self.client_secret = client_secret
        # Empty: any redirect URI is accepted at authorize (the token request must still repeat
        # it exactly). Register URIs to get the real service's exact matching.
        self.redirect_uris: list[str] = list(redirect_uris or [])
        self.host = host
        self.base_url = ""
        self.download_base_url = ""
        self.signing_key = secrets.token_bytes(32)
        self.lock = threading.RLock()
        self.users: list[User] = []
        self.sharers: list[User] = []  # accounts that share folders with users; they never sign in
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.pending: dict[str, dict] = {}  # consent page request id -> authorize parameters
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[dict] = []
        self.delta_sessions: dict[str, DeltaSession] = {}
        self.download_epoch = 0  # bumped by expire_download_urls(): every URL issued before dies
        self.version = 0  # bumped by changed(): what persistence looks at to know it must save

    def changed(self) -> None:
        """Something worth keeping changed (a drive, a token, a subscription)."""
        self.version += 1

    def reset(self) -> None:
        """Back to no users, no tokens, no subscriptions and the default switches."""
        self.options.update(Options().as_dict())  # in place: drives hold this object
        self.changed()
        for store in (self.users, self.sharers, self.codes, self.access_tokens, self.refresh_tokens, self.pending,
                      self.subscriptions, self.deliveries, self.delta_sessions):
            store.clear()

    # ----- addresses -----------------------------------------------------------------------------

    @property
    def authority(self) -> str:
        return f"{self.base_url}/consumers"

    @property
    def graph_base_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_emulator"

    # ----- lookups -------------------------------------------------------------------------------

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users if u.email.lower() == email.lower()), None)

    def drive_by_id(self, drive_id: str) -> Drive | None:
        user = next((u for u in [*self.users, *self.sharers] if u.drive.id == drive_id), None)
        return user.drive if user else None
