"""Blobs of one container: list, probe, read, write (whole or in staged blocks), copy, delete,
and read-only signed URLs. Failures are the project's (`NotFound`, `Conflict`, `StorageUnavailable`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from functions.errors import Conflict, NotFound
from functions.storage import clients
from functions.storage.faults import translated
from functions.storage.names import files_container_name

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient, ContainerClient, UserDelegationKey

    from functions.storage.tables import Pages

BATCH_DELETE = 256  # a blob batch: at most 256 deletes


@dataclass(frozen=True)
class BlobEntry:
    """A blob as listed or probed. `metadata` as stored (values percent-encoded by the writer)."""

    name: str
    size: int
    etag: str
    last_modified: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


def _entry(name: str, properties: BlobProperties) -> BlobEntry:
    return BlobEntry(name, int(properties.size or 0), str(properties.etag or ""), properties.last_modified,
                     dict(properties.metadata or {}))


def _if_unchanged(etag: str | None) -> dict[str, Any]:
    from azure.core import MatchConditions

    return {} if etag is None else {"etag": etag, "match_condition": MatchConditions.IfNotModified}


class Container:
    """One container. Cheap to make: the client behind it is built once and shared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _client(self) -> ContainerClient:
        return clients.container(self.name)

    def _blob(self, name: str) -> BlobClient:
        return self._client().get_blob_client(name)

    # ----- reading ------------------------------------------------------------------------------

    def entries(self, prefix: str, *, metadata: bool = True) -> Iterator[BlobEntry]:
        with translated(f"listing of {self.name}"):
            for blob in self._client().list_blobs(name_starts_with=prefix, include=["metadata"] if metadata else None):
                yield _entry(blob.name, blob)

    def names(self, prefix: str) -> Iterator[str]:
        """Just the names under `prefix` (5,000 a call)."""
        with translated(f"listing of {self.name}"):
            yield from self._client().list_blob_names(name_starts_with=prefix)

    def page(self, prefix: str, *, page_size: int, marker: str | None) -> tuple[list[BlobEntry], str | None]:
        """One page of the listing under `prefix`, continuing at `marker`; the next marker or None.
        A marker the service does not accept raises `StorageError` with status 400."""
        with translated(f"listing of {self.name}"):
            pages = cast("Pages[BlobProperties]", self._client().list_blobs(
                name_starts_with=prefix, include=["metadata"], results_per_page=page_size).by_page(continuation_token=marker))
            blobs = [_entry(blob.name, blob) for blob in next(pages, [])]
            return blobs, pages.continuation_token

    def walk(self, prefix: str) -> Iterator[BlobEntry | str]:
        """One level under `prefix`: blobs, and sub-folders as their names ending in `/`."""
        from azure.storage.blob import BlobPrefix

        with translated(f"listing of {self.name}"):
            for entry in self._client().walk_blobs(name_starts_with=prefix, delimiter="/", include=["metadata"]):
                if isinstance(entry, BlobPrefix):
                    yield entry.name
                else:
                    yield _entry(entry.name, entry)

    def probe(self, name: str) -> BlobEntry | None:
        try:
            with translated(f"read of {self.name}"):
                return _entry(name, self._blob(name).get_blob_properties())
        except NotFound:
            return None

    def read(self, name: str, *, offset: int, length: int, etag: str) -> bytes:
        """Bytes of the blob if it is still version `etag` (`Conflict` if it changed, `NotFound`)."""
        with translated(f"download from {self.name}"):
            data = self._blob(name).download_blob(offset=offset, length=length, **_if_unchanged(etag)).readall()
        assert isinstance(data, bytes)  # no `encoding` asked: the SDK answers bytes
        return data

    # ----- writing ------------------------------------------------------------------------------

    def upload(self, name: str, data: bytes, metadata: Mapping[str, str]) -> None:
        with translated(f"upload to {self.name}"):
            self._blob(name).upload_blob(data, overwrite=True, metadata=dict(metadata))

    def set_metadata(self, name: str, metadata: Mapping[str, str], *, etag: str | None = None) -> None:
        """Replace the blob's metadata (all of it), if it is still version `etag` when given."""
        with translated(f"metadata write to {self.name}"):
            self._blob(name).set_blob_metadata(dict(metadata), **_if_unchanged(etag))

    def stage_block(self, name: str, block_id: str, data: bytes) -> None:
        with translated(f"upload to {self.name}"):
            self._blob(name).stage_block(block_id, data)

    def uncommitted_blocks(self, name: str) -> dict[str, int]:
        """The blocks staged for the blob and not committed yet: size by block id (none: {})."""
        try:
            with translated(f"read of {self.name}"):
                _, uncommitted = self._blob(name).get_block_list("uncommitted")
        except NotFound:
            return {}
        return {block.id: block.size for block in uncommitted}

    def commit_blocks(self, name: str, block_ids: list[str], metadata: Mapping[str, str]) -> None:
        from azure.storage.blob import BlobBlock

        with translated(f"upload to {self.name}"):
            self._blob(name).commit_block_list([BlobBlock(block_id) for block_id in block_ids], metadata=dict(metadata))

    def copy(self, source: str, target: str, metadata: Mapping[str, str] | None, *, timeout: float,
             only_onto_free_name: bool = False) -> str:
        """Server-side copy within the container; waits up to `timeout` seconds for it to finish.
        Returns the copy's final status ("success", "failed", "aborted", or "pending" on timeout).
        `only_onto_free_name`: raise `Conflict` instead if `target` exists (checked by the service)."""
        from azure.core import MatchConditions

        with translated(f"copy in {self.name}"):
            target_client = self._blob(target)
            copy = target_client.start_copy_from_url(self._blob(source).url, metadata=dict(metadata) if metadata else None,
                                                     requires_sync=None,
                                                     match_condition=MatchConditions.IfMissing if only_onto_free_name else None)
            status = str(copy.get("copy_status"))
            deadline = time.monotonic() + timeout
            while status == "pending":
                if time.monotonic() > deadline:
                    return status
                time.sleep(0.2)
                status = str(target_client.get_blob_properties().copy.status)
            return status

    def delete(self, name: str, *, etag: str | None = None) -> bool:
        """Delete the blob (with `etag`: only that version). False if it was gone or had changed."""
        try:
            with translated(f"delete from {self.name}"):
                self._blob(name).delete_blob(**_if_unchanged(etag))
        except (NotFound, Conflict):
            return False
        return True

    def delete_all(self, names: list[str]) -> None:
        """Delete many blobs (and their snapshots), 256 per batch call."""
        with translated(f"batch delete in {self.name}"):
            for start in range(0, len(names), BATCH_DELETE):
                self._client().delete_blobs(*names[start:start + BATCH_DELETE], delete_snapshots="include")

    # ----- signed URLs --------------------------------------------------------------------------

    def read_url(self, name: str, *, lifetime: timedelta, clock_skew: timedelta, content_type: str,
                 content_disposition: str) -> str:
        """A URL that reads the blob for `lifetime`, answering with these headers. A secret: never log it.

        In Azure the account allows no shared keys: the URL is signed with a user delegation key
        obtained through the app's identity; with a connection string (Azurite) the account key signs."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        service = clients.blob_service()
        blob = service.get_blob_client(self.name, name)
        now = datetime.now(UTC)
        signing: dict[str, Any] = {}
        account_key = getattr(service.credential, "account_key", None)
        with translated("signing a blob URL"):
            if account_key:
                signing["account_key"] = account_key
            else:
                signing["user_delegation_key"] = _delegation_key(service, now, clock_skew, lifetime)
            token = generate_blob_sas(
                account_name=service.account_name or "",
                container_name=blob.container_name,
                blob_name=blob.blob_name,
                permission=BlobSasPermissions(read=True),
                start=now - clock_skew,
                expiry=now + lifetime,
                protocol="https" if blob.url.startswith("https://") else None,
                content_type=content_type,
                content_disposition=content_disposition,
                **signing,
            )
        return f"{blob.url}?{token}"


def files() -> Container:
    """The container holding every connection's mirror (`FILES_CONTAINER`)."""
    return Container(files_container_name())


# A delegation key may live 7 days; one a day, renewed early, costs one call per instance per day.
_KEY_LIFETIME = timedelta(days=1)
_KEY_RENEW_BEFORE = timedelta(hours=1)
_lock = threading.Lock()


@dataclass
class _Delegation:
    key: UserDelegationKey
    expires: datetime
    service: BlobServiceClient  # the client it was obtained from


_delegation: list[_Delegation] = []


def _delegation_key(service: BlobServiceClient, now: datetime, clock_skew: timedelta, lifetime: timedelta) -> UserDelegationKey:
    with _lock:
        cached = _delegation[0] if _delegation else None
        if cached is None or cached.service is not service or cached.expires - now < _KEY_RENEW_BEFORE + lifetime:
            expires = now + _KEY_LIFETIME
            cached = _Delegation(service.get_user_delegation_key(now - clock_skew, expires), expires, service)
            _delegation[:] = [cached]
        return cached.key
