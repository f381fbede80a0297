"""Does what the delta engine planned, to blobs `{FILES_CONTAINER}/{connection_id}/{path}`.

Every blob carries its item's id in its metadata, and every destructive step checks it: a delete
or a move only touches a blob that still holds the item it is meant for (paths get reused).
Copies stream into staged blocks of a fixed size while computing the quickXorHash, and commit
(a file of one block: upload, in one call) only when size and hash match the listing: the mirror
never shows a half-written or unverified file, and a 10 GB file costs the memory of two blocks
(one downloading while the one before it stages).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import string
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import httpx
import quickxorhash

from functions import storage
from functions.errors import Conflict, Failure, Forbidden, ItemNotFound, LinkExpired, NotFound, Unavailable
from functions.microsoft.driveitem import ZERO_HASH
from functions.microsoft.transport import backoff_delay
from functions.sync.plan import Copy, blob_name

if TYPE_CHECKING:
    from functions.microsoft.graph import GraphClient

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 * 1024 * 1024  # staged block size: the memory a copy costs
READ_CHUNK = 256 * 1024
STREAM_ATTEMPTS = 5  # broken streams resumed (with Range) before the copy counts as failed
VERIFY_ATTEMPTS = 2  # whole downloads whose bytes don't match the listing before we give up
COPY_POLL_SECONDS = 120.0

_META_SAFE = "".join(ch for ch in string.printable if ch not in "%\t\n\r\x0b\x0c")


def meta(value: str) -> str:
    """Blob metadata values must be ASCII: percent-encode anything else (and `%` itself)."""
    return quote(value, safe=_META_SAFE)


KEPT = "kept"  # metadata of a blob a deselection kept


def metadata(item_id: str, etag: str, quickxorhash_value: str | None, ctag: str = "") -> dict[str, str]:
    values = {"item_id": item_id, "etag": etag, "quickxorhash": quickxorhash_value or "", "ctag": ctag}
    return {name: meta(value) for name, value in values.items() if value}


@dataclass(frozen=True)
class BlobInfo:
    path: str  # relative to the connection's prefix
    item_id: str | None
    quickxorhash: str | None
    size: int
    etag: str  # the blob's own ETag, for conditional deletes
    kept: bool = False  # left in the mirror by a deselection the product asked to keep: no item's, never swept


@dataclass(frozen=True)
class CopyResult:
    outcome: str  # "copied" | "unchanged" | "gone" | "malware" | "failed" | "unavailable"
    size: int = 0
    error: str = ""


class Mismatch(Failure):
    """The bytes downloaded are not the ones the listing described (size or quickXorHash)."""


# Outcomes of Mirror.move.
MOVED = "moved"
MISSING = "missing"
OCCUPIED = "occupied"
STAGING_PREFIX = ".~moving-"  # a name no drive item has in practice; the sweep removes any left over


def staging_path(target: str, item_id: str) -> str:
    """Where a blob waits while another item's blob still holds its target: beside the target
    (same folder, so that the folder's relocation lists it), under a name of fixed length."""
    folder = target.rpartition("/")[0]
    name = STAGING_PREFIX + hashlib.sha256(item_id.encode()).hexdigest()[:16]
    return f"{folder}/{name}" if folder else name


class Mirror:
    """One connection's blobs."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.container = storage.blobs.files()
        self.prefix = storage.mirror_prefix(connection_id)

    def _name(self, path: str) -> str:
        return blob_name(self.connection_id, path)

    # ----- reading ------------------------------------------------------------------------------

    def keep(self, path: str, item_id: str) -> bool:
        """Detach `item_id`'s blob at `path` from the sync: it stays, no longer any item's (the
        sweep leaves it; a copy of a newly selected item may replace it). False if it isn't there."""
        found = self.container.probe(self.prefix + path)
        if found is None or _info(path, found.metadata, found.size, found.etag).item_id != item_id:
            return False
        values = {k: v for k, v in found.metadata.items() if k.lower() not in ("item_id", "etag", "ctag")}
        try:
            self.container.set_metadata(self.prefix + path, {**values, KEPT: meta("unselected")}, etag=found.etag)
        except (NotFound, Conflict):
            return False  # replaced or gone meanwhile: not the blob we meant to keep
        return True

    def list(self, under: str = "") -> Iterator[BlobInfo]:
        """Blobs under a folder path ("" = the whole mirror), with their metadata."""
        prefix = self.prefix + (under + "/" if under else "")
        for blob in self.container.entries(prefix):
            yield _info(blob.name[len(self.prefix):], blob.metadata, blob.size, blob.etag)

    def pages(self, size: int, marker: str | None = None) -> Iterator[tuple[Sequence[BlobInfo], str | None]]:
        """The whole mirror, `size` blobs a page, in name order, from a continuation `marker`:
        each page with the marker of the next one (None after the last)."""
        while True:
            entries, marker = self.container.page(self.prefix, page_size=size, marker=marker or None)
            yield [_info(blob.name[len(self.prefix):], blob.metadata, blob.size, blob.etag) for blob in entries], marker
            if not marker:
                return

    def paths(self, limit: int) -> frozenset[str] | None:
        """Every blob path in the mirror now (names only: 5,000 a call), or None past `limit`."""
        found: set[str] = set()
        for name in self.container.names(self.prefix):
            if len(found) >= limit:
                return None
            found.add(name[len(self.prefix):])
        return frozenset(found)

    def probe(self, path: str) -> BlobInfo | None:
        found = self.container.probe(self._name(path))
        return None if found is None else _info(path, found.metadata, found.size, found.etag)

    # ----- moving and deleting ------------------------------------------------------------------

    def delete(self, path: str, item_id: str) -> bool:
        """Delete the blob at `path` if it still holds `item_id`. True if deleted."""
        found = self.probe(path)
        if found is None or found.item_id != item_id:
            return False
        return self.container.delete(self._name(path), etag=found.etag)

    def delete_raw(self, path: str, etag: str) -> None:
        """Delete a blob found by listing (its name may not pass our path rules: a stray)."""
        self.container.delete(self.prefix + path, etag=etag)

    def move(self, item_id: str, source: str, target: str, new_metadata: dict[str, str] | None = None, *,
             may_overwrite: Callable[[str | None], bool] = lambda occupant: True) -> str:
        """Server-side copy of the blob at `source` (if it holds `item_id`) to `target`, then
        delete the source. Returns MOVED; MISSING if the source no longer holds the item (the
        caller copies it); OCCUPIED if `target` holds a blob of another item that
        `may_overwrite(its item id)` says must stay (a live item not moved yet: a swap or a
        cycle of names), and then nothing was done."""
        found = self.probe(source)
        if found is None or found.item_id != item_id:
            return MISSING
        try:
            # Only onto a free name: the common case costs no extra call.
            status = self.container.copy(self._name(source), self._name(target), new_metadata, timeout=COPY_POLL_SECONDS,
                                         only_onto_free_name=True)
        except Conflict:
            occupant = self.probe(target)
            if occupant is not None and occupant.item_id != item_id and not may_overwrite(occupant.item_id):
                return OCCUPIED
            status = self.container.copy(self._name(source), self._name(target), new_metadata, timeout=COPY_POLL_SECONDS)
        if status == "pending":
            raise Unavailable(f"server-side copy did not finish in {COPY_POLL_SECONDS:.0f} s")
        if status != "success":
            raise Unavailable(f"server-side copy ended {status}")
        self.container.delete(self._name(source), etag=found.etag)
        return MOVED

    # ----- copying from OneDrive ----------------------------------------------------------------

    def write_empty(self, path: str, blob_metadata: dict[str, str]) -> None:
        self.container.upload(self._name(path), b"", blob_metadata)

    def copy(self, graph: GraphClient, plan: Copy, blob_metadata: dict[str, str],
             listed: frozenset[str] | None = None) -> CopyResult:
        """Download the item into `plan.path`, verified. Typed errors other than "gone" and
        "malware" propagate (Throttled, ReauthRequired, storage errors).

        `listed`: the mirror's paths at some earlier moment (`paths`). A path not in it is not
        probed: if the blob appeared since, the copy merely overwrites it with the same bytes."""
        if plan.empty:
            # Zero bytes: nothing to download; `hashes: {}` on the wire still means the empty hash.
            self.write_empty(plan.path, {**blob_metadata, "quickxorhash": meta(ZERO_HASH)})
            return CopyResult("copied", 0)
        existing = None if listed is not None and plan.path not in listed else self.probe(plan.path)
        if (existing is not None and plan.quickxorhash and existing.item_id == plan.item_id
                and existing.quickxorhash == plan.quickxorhash and existing.size == plan.size):
            return CopyResult("unchanged", 0)  # e.g. written before a crash, or a reconnect
        error = ""
        for _ in range(VERIFY_ATTEMPTS):
            try:
                size = self._stream(graph, plan, blob_metadata)
                return CopyResult("copied", size)
            except ItemNotFound:
                return CopyResult("gone")  # deleted since the delta: its tombstone follows
            except Forbidden as forbidden:
                if forbidden.code == "malwareDetected":
                    return CopyResult("malware")
                error = f"download refused ({forbidden.code})"
                break
            except Mismatch as mismatch:
                error = str(mismatch)
            except Unavailable as unavailable:
                return CopyResult("unavailable", error=str(unavailable))
        return CopyResult("failed", error=error)

    def _stream(self, graph: GraphClient, plan: Copy, blob_metadata: dict[str, str]) -> int:
        name = self._name(plan.path)
        nonce = uuid.uuid4().hex[:12]  # block ids of this attempt only; uncommitted ones expire
        blocks: list[str] = []
        hasher = quickxorhash.quickxorhash()
        offset = 0
        buffer = bytearray()
        failures = 0
        single: bytes | None = None
        # Block N stages on another thread while block N+1 downloads: one block in flight at most.
        stager: ThreadPoolExecutor | None = None
        in_flight: Future[None] | None = None

        def settle() -> None:
            nonlocal in_flight
            if in_flight is not None:
                staging, in_flight = in_flight, None
                staging.result()  # a block that failed to stage ends the copy here

        def stage(data: bytes) -> None:
            nonlocal offset, stager, in_flight
            settle()
            block_id = base64.b64encode(f"{nonce}-{len(blocks):08d}".encode()).decode()
            if stager is None:
                stager = ThreadPoolExecutor(1, thread_name_prefix="stage-block")
            in_flight = stager.submit(self.container.stage_block, name, block_id, data)
            # Counted once handed over: a resumed download continues after it, and a block that
            # fails to stage raises (in settle) before anything is committed.
            hasher.update(data)
            blocks.append(block_id)
            offset += len(data)

        try:
            while True:
                buffer.clear()
                try:
                    with graph.download(plan.item_id, start=offset) as response:
                        if offset and not _resumes_at(response, offset):
                            # Range ignored (200) or answered from elsewhere: start over from byte 0.
                            settle()
                            blocks.clear()
                            hasher = quickxorhash.quickxorhash()
                            offset = 0
                        for chunk in response.iter_bytes(READ_CHUNK):
                            buffer += chunk
                            if offset + len(buffer) > plan.size:
                                raise Mismatch(f"more bytes than the listed {plan.size}")
                            while len(buffer) >= BLOCK_SIZE:
                                stage(bytes(memoryview(buffer)[:BLOCK_SIZE]))
                                del buffer[:BLOCK_SIZE]
                        if buffer and (blocks or offset):
                            stage(bytes(buffer))
                            buffer.clear()
                    if buffer:
                        # The whole file fits in one block: hash it now, upload it in one call
                        # below (with its metadata) only once it is verified.
                        single = bytes(buffer)
                        hasher.update(single)
                        offset = len(single)
                    break
                except (httpx.TransportError, Unavailable) as error:
                    reason = type(error).__name__
                except LinkExpired as error:  # /content gives a fresh URL on the next attempt
                    reason = f"HTTP {error.status}"
                failures += 1
                if failures >= STREAM_ATTEMPTS:
                    raise Unavailable(f"download kept failing ({reason}) after {failures} attempts")
                log.info("download interrupted at byte %d (%s), resuming", offset, reason,
                         extra={"connection_id": self.connection_id, "item_id": plan.item_id})
                time.sleep(backoff_delay(failures) / 4)
            settle()
        finally:
            if stager is not None:
                stager.shutdown(wait=True)
        if offset != plan.size:
            raise Mismatch(f"got {offset} bytes, listed {plan.size}")
        digest = base64.b64encode(hasher.digest()).decode()
        if plan.quickxorhash and digest != plan.quickxorhash:
            raise Mismatch("quickXorHash of the bytes differs from the listing")
        if not plan.quickxorhash:
            blob_metadata = {**blob_metadata, "quickxorhash": meta(digest)}
        if single is not None:
            self.container.upload(name, single, blob_metadata)
        else:
            self.container.commit_blocks(name, blocks, blob_metadata)
        return offset


def _resumes_at(response: httpx.Response, offset: int) -> bool:
    if response.status_code != 206:
        return False
    content_range = response.headers.get("Content-Range", "")
    try:
        unit, _, rest = content_range.partition(" ")
        start = int(rest.split("-", 1)[0])
    except ValueError:
        return False
    return unit == "bytes" and start == offset


def _info(path: str, blob_metadata: Mapping[str, str] | None, size: int | None, etag: str) -> BlobInfo:
    values = {k.lower(): unquote(v or "") for k, v in (blob_metadata or {}).items()}
    if values.get(KEPT):
        return BlobInfo(path, None, values.get("quickxorhash") or None, int(size or 0), etag, kept=True)
    return BlobInfo(path, values.get("item_id") or None, values.get("quickxorhash") or None, int(size or 0), etag)
