"""Typed settings, read from the environment lazily, one value at a time.

Nothing here runs at import time: Azure loads *zero* functions when importing the app raises,
so a missing setting must surface as a clear error at first use instead. Each value is parsed
on first use, so a malformed setting fails only the features that read it (a typo in a download
setting never blocks sign-in); `problems()` checks them all at once, for the local stack's start
and the health endpoint. Storage credentials are not here: `functions/storage` alone reads
`AzureWebJobsStorage`.
"""

from __future__ import annotations

import base64
import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from functions.errors import SettingsError as SettingsError  # raised here; the tree is in errors.py


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    key: bytes  # 32 bytes, AES-256-GCM


# Every setting the code reads, with its default (None = required). The infrastructure
# contract tests and local.settings.example.json are checked against this table.
DEFAULTS: dict[str, str | None] = {
    "MICROSOFT_CLIENT_ID": None,
    "MICROSOFT_CLIENT_SECRET": None,
    "MICROSOFT_AUTHORITY": "https://login.microsoftonline.com/consumers",
    "GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0",
    "PUBLIC_BASE_URL": "http://localhost:7071",
    "ONEDRIVE_SCOPES": "Files.ReadWrite offline_access User.Read",
    "TOKEN_ENCRYPTION_KEYS": None,
    "FILES_CONTAINER": "onedrive-files",
    "ALLOWED_RETURN_URLS": "http://localhost:*",
    "SYNC_TIME_BUDGET_SECONDS": "480",
    "SUBSCRIPTION_RENEWAL_WINDOW_HOURS": "72",
    "SUBSCRIPTION_WRITES_PER_20S": "500",
    # A full enumeration with mark and sweep every so many days per connection: delta sometimes
    # omits a tombstone (OneDrive Personal), and only a full listing finds what it left behind.
    "FULL_RECONCILIATION_DAYS": "7",
    # Redirect downloads to a short-lived read-only SAS URL: "large" (above DOWNLOAD_INLINE_MAX_BYTES),
    # "always", or "never" (then larger files are served in Range chunks only).
    "DOWNLOAD_REDIRECT": "large",
    "DOWNLOAD_INLINE_MAX_BYTES": "16777216",
    # Read by the host from the timer decorator (%MAINTENANCE_SCHEDULE%), listed for the contract.
    "MAINTENANCE_SCHEDULE": "0 */30 * * * *",
}

# Which features read which settings: a problem in one disables only the features listed with it.
FEATURES: dict[str, tuple[str, ...]] = {
    "sign-in": ("MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_SECRET", "MICROSOFT_AUTHORITY", "PUBLIC_BASE_URL",
                "ONEDRIVE_SCOPES", "TOKEN_ENCRYPTION_KEYS", "ALLOWED_RETURN_URLS"),
    "sync": ("MICROSOFT_CLIENT_ID", "MICROSOFT_CLIENT_SECRET", "MICROSOFT_AUTHORITY", "GRAPH_BASE_URL",
             "TOKEN_ENCRYPTION_KEYS", "FILES_CONTAINER", "SYNC_TIME_BUDGET_SECONDS", "FULL_RECONCILIATION_DAYS"),
    "change notifications": ("PUBLIC_BASE_URL", "GRAPH_BASE_URL"),
    "maintenance": ("MAINTENANCE_SCHEDULE", "SUBSCRIPTION_RENEWAL_WINDOW_HOURS", "SUBSCRIPTION_WRITES_PER_20S"),
    "files API": ("FILES_CONTAINER",),
    "downloads": ("FILES_CONTAINER", "DOWNLOAD_REDIRECT", "DOWNLOAD_INLINE_MAX_BYTES"),
}

_EXPECTED = {
    "MICROSOFT_CLIENT_ID": "the Application (client) ID of the app registration",
    "MICROSOFT_CLIENT_SECRET": "a client secret of the app registration",
    "TOKEN_ENCRYPTION_KEYS": (
        "a key ring '<id>:<base64 of 32 random bytes>[,...]', newest first; "
        "make one with `python -m devtools.keys`"
    ),
}

_TIMESPAN = re.compile(r"(\d+\.)?\d{1,2}:\d{2}:\d{2}")
_CRON_FIELD = re.compile(r"(\*|\d+(-\d+)?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/\d+)?(,(\*|\d+(-\d+)?|[A-Za-z]{3}(-[A-Za-z]{3})?)(/\d+)?)*")


class Settings:
    """The app's settings; each property parses its value on first use (then keeps it).

    `Settings(environ)` reads that mapping instead of the process environment (checks, tests)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ

    # ----- readers ----------------------------------------------------------------------------

    def _raw(self, name: str) -> str:
        value = str(self._environ.get(name, "")).strip()
        if value:
            return value
        default = DEFAULTS[name]
        if default is None:
            raise SettingsError(f"Setting {name} is missing: {_EXPECTED[name]}", name)
        return default

    def _url(self, name: str) -> str:
        value = self._raw(name).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"Setting {name} must be an absolute http(s) URL, got {value!r}", name)
        return value

    def _number(self, name: str, minimum: float) -> float:
        raw = self._raw(name)
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"Setting {name} must be a number (e.g. {DEFAULTS[name]}), got {raw!r}", name) from None
        if not value >= minimum:  # also refuses nan
            raise SettingsError(f"Setting {name} must be at least {minimum:g}, got {raw!r}", name)
        return value

    def _choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self._raw(name).lower()
        if value not in allowed:
            raise SettingsError(f"Setting {name} must be one of {', '.join(allowed)}, got {value!r}", name)
        return value

    # ----- values -----------------------------------------------------------------------------

    @cached_property
    def microsoft_client_id(self) -> str:
        return self._raw("MICROSOFT_CLIENT_ID")

    @cached_property
    def microsoft_client_secret(self) -> str:
        return self._raw("MICROSOFT_CLIENT_SECRET")

    @cached_property
    def microsoft_authority(self) -> str:  # e.g. https://login.microsoftonline.com/consumers
        return self._url("MICROSOFT_AUTHORITY")

    @cached_property
    def graph_base_url(self) -> str:  # e.g. https://graph.microsoft.com/v1.0
        return self._url("GRAPH_BASE_URL")

    @cached_property
    def public_base_url(self) -> str:  # the app's public origin, no trailing slash
        return self._url("PUBLIC_BASE_URL")

    @cached_property
    def onedrive_scopes(self) -> tuple[str, ...]:
        return tuple(self._raw("ONEDRIVE_SCOPES").split())

    @cached_property
    def app_folder_only(self) -> bool:
        """ONEDRIVE_SCOPES grants Files.ReadWrite.AppFolder and no other Files scope: every
        connection sees (and mirrors) only its app folder, and can't be subscribed to."""
        files = {s.lower() for s in self.onedrive_scopes if s.lower().startswith("files.")}
        return files == {"files.readwrite.appfolder"}

    @cached_property
    def token_encryption_keys(self) -> tuple[EncryptionKey, ...]:  # newest first
        return parse_encryption_keys(self._raw("TOKEN_ENCRYPTION_KEYS"))

    @cached_property
    def files_container(self) -> str:
        container = self._raw("FILES_CONTAINER")
        if not (3 <= len(container) <= 63 and container.replace("-", "").isalnum() and container.islower()):
            raise SettingsError("Setting FILES_CONTAINER must be a valid container name (3-63 lowercase letters, "
                                f"digits, hyphens), got {container!r}", "FILES_CONTAINER")
        return container

    @cached_property
    def allowed_return_urls(self) -> tuple[str, ...]:  # patterns, see functions/return_urls.py
        from functions import return_urls

        # Set but empty means "none allowed", not the local default: a deployment that clears it
        # must not quietly allow localhost.
        raw = self._environ.get("ALLOWED_RETURN_URLS")
        raw = (DEFAULTS["ALLOWED_RETURN_URLS"] or "") if raw is None else str(raw)
        try:
            return_urls.parse_patterns(raw)
        except return_urls.InvalidPattern as error:
            raise SettingsError(f"Setting ALLOWED_RETURN_URLS: {error}", "ALLOWED_RETURN_URLS") from None
        return tuple(raw.replace(",", " ").split())

    @cached_property
    def sync_time_budget_seconds(self) -> float:
        return self._number("SYNC_TIME_BUDGET_SECONDS", 10)

    @cached_property
    def subscription_renewal_window_hours(self) -> float:
        return self._number("SUBSCRIPTION_RENEWAL_WINDOW_HOURS", 1)

    @cached_property
    def subscription_writes_per_20s(self) -> int:
        return int(self._number("SUBSCRIPTION_WRITES_PER_20S", 1))

    @cached_property
    def full_reconciliation_days(self) -> float:
        """0: never (only the first sync and dead links enumerate everything)."""
        return self._number("FULL_RECONCILIATION_DAYS", 0)

    @cached_property
    def download_redirect(self) -> str:  # "large" | "always" | "never"
        """Downloads: bodies up to DOWNLOAD_INLINE_MAX_BYTES go through the function; larger ones redirect to a SAS."""
        return self._choice("DOWNLOAD_REDIRECT", ("large", "always", "never"))

    @cached_property
    def download_inline_max_bytes(self) -> int:
        return int(self._number("DOWNLOAD_INLINE_MAX_BYTES", 65536))

    @cached_property
    def maintenance_schedule(self) -> str:
        value = self._raw("MAINTENANCE_SCHEDULE")
        if _TIMESPAN.fullmatch(value):
            return value
        fields = value.split()
        if len(fields) != 6 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            raise SettingsError("Setting MAINTENANCE_SCHEDULE must be a six-field NCRONTAB schedule "
                                f"(second minute hour day month weekday, e.g. '0 */30 * * * *'), got {value!r}",
                                "MAINTENANCE_SCHEDULE")
        return value

    # ----- derived ----------------------------------------------------------------------------

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_base_url}/api/oauth/callback"

    @property
    def notification_url(self) -> str:
        return f"{self.public_base_url}/api/notifications"

    @property
    def lifecycle_url(self) -> str:
        return f"{self.public_base_url}/api/lifecycle"

    def return_url_allowed(self, url: str) -> bool:
        from functions import return_urls

        return return_urls.allowed(url, return_urls.parse_patterns(" ".join(self.allowed_return_urls)))


# The property that parses each setting: what `problems()` runs.
_READERS: dict[str, Callable[[Settings], Any]] = {
    name: (lambda attribute: lambda s: getattr(s, attribute))(name.lower()) for name in DEFAULTS
}


def parse_encryption_keys(raw: str) -> tuple[EncryptionKey, ...]:
    """`id1:base64key,id2:base64key`, newest first: encrypt with the first, decrypt with any."""
    keys = []
    for position, entry in enumerate(part.strip() for part in raw.split(",") if part.strip()):
        key_id, sep, encoded = entry.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True) if sep else b""
        except ValueError:
            key = b""
        # Never echo the value: it is a secret.
        if not key_id or not key_id.isalnum() or len(key) != 32:
            raise SettingsError(
                f"Setting TOKEN_ENCRYPTION_KEYS: entry {position + 1} must be "
                "'<alphanumeric id>:<base64 of 32 random bytes>' (make one with `python -m devtools.keys`)",
                "TOKEN_ENCRYPTION_KEYS",
            )
        keys.append(EncryptionKey(key_id, key))
    if not keys:
        raise SettingsError(f"Setting TOKEN_ENCRYPTION_KEYS is empty: {_EXPECTED['TOKEN_ENCRYPTION_KEYS']}",
                            "TOKEN_ENCRYPTION_KEYS")
    if len({k.key_id for k in keys}) != len(keys):
        raise SettingsError("Setting TOKEN_ENCRYPTION_KEYS: key ids must be unique", "TOKEN_ENCRYPTION_KEYS")
    return tuple(keys)


def problems(environ: Mapping[str, str] | None = None, names: tuple[str, ...] | None = None) -> list[SettingsError]:
    """Every setting (or those `names`) that is missing or malformed, one error each, in DEFAULTS order."""
    probe = Settings(environ)
    found = []
    for name in names or tuple(DEFAULTS):
        try:
            _READERS[name](probe)
        except SettingsError as error:
            found.append(error)
    return found


def features_affected(error: SettingsError) -> list[str]:
    return [feature for feature, names in FEATURES.items() if error.setting in names]


@functools.cache
def settings() -> Settings:
    """The process's settings; each value is checked when first read and raises SettingsError naming it."""
    return Settings()


def reload_settings() -> None:
    """Forget the cached settings (tests and the local host change the environment)."""
    settings.cache_clear()
