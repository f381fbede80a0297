"""Signed URLs in Azure: no account key there, so a user delegation key (obtained through the
managed identity) signs them. Azure's key service is the one seam nothing local reaches: a stand-in
service hands out keys; the SAS itself is built by the real SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.blob import BlobClient, UserDelegationKey

from functions import storage
from functions.api import signed_urls


class KeyService:
    """Stands in for BlobServiceClient with a token credential (no account key)."""

    account_name = "mirroracct"
    credential = object()

    def __init__(self) -> None:
        self.issued: list[tuple[datetime, datetime]] = []

    def get_user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        self.issued.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = "oid-1", "tid-1"
        key.signed_start, key.signed_expiry = start.strftime("%Y-%m-%dT%H:%M:%SZ"), expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHMtb25seQ=="
        return key

    def get_blob_client(self, container: str, blob: str) -> BlobClient:
        return BlobClient(f"https://{self.account_name}.blob.core.windows.net", container, blob)


@pytest.fixture
def key_service(monkeypatch) -> KeyService:
    service = KeyService()
    monkeypatch.setattr(storage.clients, "blob_service", lambda: service)
    monkeypatch.setattr(storage.blobs, "files_container_name", lambda: "onedrive-files")
    storage.blobs._delegation.clear()
    yield service
    storage.blobs._delegation.clear()


def test_without_an_account_key_the_url_is_signed_with_a_cached_user_delegation_key(key_service):
    first = signed_urls.read_url("c1/Docs/a b.pdf", content_type="application/pdf", content_disposition="attachment")
    second = signed_urls.read_url("c1/Docs/c.pdf", content_type="application/pdf", content_disposition="attachment")

    assert len(key_service.issued) == 1  # one key serves many URLs
    parts = urlsplit(first)
    assert parts.scheme == "https" and parts.path == "/onedrive-files/c1/Docs/a%20b.pdf"
    query = parse_qs(parts.query)
    assert query["sp"] == ["r"]  # read only
    assert query["spr"] == ["https"]
    assert query["skoid"] == ["oid-1"]  # signed by the delegation key, not an account key
    assert query["rsct"] == ["application/pdf"] and query["rscd"] == ["attachment"]
    expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    assert timedelta(minutes=5) < expiry - datetime.now(UTC) <= signed_urls.LIFETIME
    assert "c2VjcmV0" not in first + second  # the key itself never travels


def test_a_delegation_key_close_to_its_expiry_is_renewed(key_service):
    signed_urls.read_url("c1/a", content_type="text/plain", content_disposition="attachment")
    storage.blobs._delegation[0].expires = datetime.now(UTC) + timedelta(minutes=30)
    signed_urls.read_url("c1/a", content_type="text/plain", content_disposition="attachment")
    assert len(key_service.issued) == 2
