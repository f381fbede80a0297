"""Typed settings, read from the environment once and lazily.

Nothing here runs at import time: Azure loads *zero* functions when importing the app raises,
so a missing setting must surface as a clear error at first use instead.
Storage credentials are not here: `functions/storage` alone reads `AzureWebJobsStorage`.
"""

from __future__ import annotations

import base64
import functools
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from functions.errors import SettingsError as SettingsError  # raised here; the tree is in errors.py


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    key: bytes  # 32 bytes, AES-256-GCM


@dataclass(frozen=True)
class Settings:
    microsoft_client_id: str
    microsoft_client_secret: str
    microsoft_authority: str  # e.g. https://login.microsoftonline.com/consumers
    graph_base_url: str  # e.g. https://graph.microsoft.com/v1.0
    public_base_url: str  # the app's public origin, no trailing slash
    onedrive_scopes: tuple[str, ...]
    token_encryption_keys: tuple[EncryptionKey, ...]  # newest first
    files_container: str
    allowed_return_urls: tuple[str, ...]  # patterns, see functions/return_urls.py
    sync_time_budget_seconds: float
    subscription_renewal_window_hours: float
    subscription_writes_per_20s: int
    # Downloads: bodies up to this size go through the function; larger ones redirect to a SAS.
    download_redirect: str = "large"  # "large" | "always" | "never"
    download_inline_max_bytes: int = 16 * 1024 * 1024

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
    # Redirect downloads to a short-lived read-only SAS URL: "large" (above DOWNLOAD_INLINE_MAX_BYTES),
    # "always", or "never" (then larger files are served in Range chunks only).
    "DOWNLOAD_REDIRECT": "large",
    "DOWNLOAD_INLINE_MAX_BYTES": "16777216",
    # Read by the host from the timer decorator (%MAINTENANCE_SCHEDULE%), listed for the contract.
    "MAINTENANCE_SCHEDULE": "0 */30 * * * *",
}


def _raw(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    default = DEFAULTS[name]
    if default is None:
        raise SettingsError(f"Setting {name} is missing: {_EXPECTED[name]}")
    return default


def _return_url_patterns() -> tuple[str, ...]:
    from functions import return_urls

    # Set but empty means "none allowed", not the local default: a deployment that clears it
    # must not quietly allow localhost.
    raw = os.environ.get("ALLOWED_RETURN_URLS")
    raw = DEFAULTS["ALLOWED_RETURN_URLS"] or "" if raw is None else raw
    try:
        return_urls.parse_patterns(raw)
    except return_urls.InvalidPattern as error:
        raise SettingsError(f"Setting ALLOWED_RETURN_URLS: {error}") from None
    return tuple(raw.replace(",", " ").split())


def _url(name: str) -> str:
    value = _raw(name).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"Setting {name} must be an absolute http(s) URL, got {value!r}")
    return value


def _number(name: str, minimum: float) -> float:
    raw = _raw(name)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"Setting {name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"Setting {name} must be at least {minimum}, got {raw!r}")
    return value


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = _raw(name).lower()
    if value not in allowed:
        raise SettingsError(f"Setting {name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


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
                "'<alphanumeric id>:<base64 of 32 random bytes>'"
            )
        keys.append(EncryptionKey(key_id, key))
    if not keys:
        raise SettingsError(f"Setting TOKEN_ENCRYPTION_KEYS is empty: {_EXPECTED['TOKEN_ENCRYPTION_KEYS']}")
    if len({k.key_id for k in keys}) != len(keys):
        raise SettingsError("Setting TOKEN_ENCRYPTION_KEYS: key ids must be unique")
    return tuple(keys)


_EXPECTED = {
    "MICROSOFT_CLIENT_ID": "the Application (client) ID of the app registration",
    "MICROSOFT_CLIENT_SECRET": "a client secret of the app registration",
    "TOKEN_ENCRYPTION_KEYS": (
        "a key ring '<id>:<base64 of 32 random bytes>[,...]', newest first; "
        "make one with `python -m devtools.keys`"
    ),
}


@functools.cache
def settings() -> Settings:
    """Read and validate every setting once; raises SettingsError naming the culprit."""
    container = _raw("FILES_CONTAINER")
    if not (3 <= len(container) <= 63 and container.replace("-", "").isalnum() and container.islower()):
        raise SettingsError(f"Setting FILES_CONTAINER must be a valid container name (3-63 lowercase letters, digits, hyphens), got {container!r}")
    return Settings(
        microsoft_client_id=_raw("MICROSOFT_CLIENT_ID"),
        microsoft_client_secret=_raw("MICROSOFT_CLIENT_SECRET"),
        microsoft_authority=_url("MICROSOFT_AUTHORITY"),
        graph_base_url=_url("GRAPH_BASE_URL"),
        public_base_url=_url("PUBLIC_BASE_URL"),
        onedrive_scopes=tuple(_raw("ONEDRIVE_SCOPES").split()),
        token_encryption_keys=parse_encryption_keys(_raw("TOKEN_ENCRYPTION_KEYS")),
        files_container=container,
        allowed_return_urls=_return_url_patterns(),
        sync_time_budget_seconds=_number("SYNC_TIME_BUDGET_SECONDS", 10),
        subscription_renewal_window_hours=_number("SUBSCRIPTION_RENEWAL_WINDOW_HOURS", 1),
        subscription_writes_per_20s=int(_number("SUBSCRIPTION_WRITES_PER_20S", 1)),
        download_redirect=_choice("DOWNLOAD_REDIRECT", ("large", "always", "never")),
        download_inline_max_bytes=int(_number("DOWNLOAD_INLINE_MAX_BYTES", 65536)),
    )


def reload_settings() -> None:
    """Forget the cached settings (tests and the local host change the environment)."""
    settings.cache_clear()
