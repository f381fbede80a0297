"""Short-lived, read-only URLs for one mirrored blob, so large downloads bypass the function.

In Azure the storage account allows no shared keys: the URL is signed with a user delegation key
obtained through the app's managed identity (needs a Storage Blob Data role, which includes
`generateUserDelegationKey`). With a connection string (Azurite) the account key signs it.
A signed URL is a secret: never log it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from functions import storage

LIFETIME = timedelta(minutes=10)
CLOCK_SKEW = timedelta(minutes=5)
# A delegation key may live 7 days; one a day, renewed early, costs one call per instance per day.
_KEY_LIFETIME = timedelta(days=1)
_KEY_RENEW_BEFORE = timedelta(hours=1)

_lock = threading.Lock()
_delegation: dict[str, Any] = {}  # "key", "expires", "service" (the client it was obtained from)


def read_url(blob_name: str, *, content_type: str, content_disposition: str) -> str:
    """A URL that reads `blob_name` in the files container for LIFETIME, answering with the given
    Content-Type and Content-Disposition (the SAS overrides them, as the API would send them)."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    service = storage.blob_service()
    blob = service.get_blob_client(storage.files_container_name(), blob_name)
    now = datetime.now(UTC)
    signing: dict[str, Any] = {}
    account_key = getattr(service.credential, "account_key", None)
    if account_key:
        signing["account_key"] = account_key
    else:
        signing["user_delegation_key"] = _delegation_key(service, now)
    token = generate_blob_sas(
        account_name=service.account_name,
        container_name=blob.container_name,
        blob_name=blob.blob_name,
        permission=BlobSasPermissions(read=True),
        start=now - CLOCK_SKEW,
        expiry=now + LIFETIME,
        protocol="https" if blob.url.startswith("https://") else None,
        content_type=content_type,
        content_disposition=content_disposition,
        **signing,
    )
    return f"{blob.url}?{token}"


def _delegation_key(service: Any, now: datetime) -> Any:
    with _lock:
        cached = _delegation.get("key")
        if cached is None or _delegation.get("service") is not service or _delegation["expires"] - now < _KEY_RENEW_BEFORE + LIFETIME:
            expires = now + _KEY_LIFETIME
            _delegation.update(key=service.get_user_delegation_key(now - CLOCK_SKEW, expires), expires=expires, service=service)
        return _delegation["key"]
