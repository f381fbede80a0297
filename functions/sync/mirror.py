"""Does what the delta engine planned, to blobs `{FILES_CONTAINER}/{connection_id}/{path}`.

Every blob carries its item's id in its metadata, and every destructive step checks it: a delete
or a move only touches a blob that still holds the item it is meant for (paths get reused).
Copies stream into staged blocks of a fixed size while computing the quickXorHash, and commit
(a file of one block: upload, in one call) only when size and hash match the listing: the mirror
never shows a half-written or unverified file, and a 10 GB file costs the memory of a few blocks
(IN_FLIGHT staging while the next one downloads). A copy longer than the time budget checkpoints
its staged blocks and its hash state, and the next invocation downloads only the rest.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import heapq
import json
import logging
import string
import time
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, unquote

import httpx
import quickxorhash

from functions import storage
from functions.errors import Conflict, Failure, Forbidden, ItemNotFound, LinkExpired, NotFound, Throttled, Unavailable
from functions.microsoft.driveitem import ZERO_HASH
from functions.microsoft.transport import backoff_delay
from functions.sync.plan import Copy, blob_name

if TYPE_CHECKING:
    from functions.microsoft.graph import GraphClient

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 * 1024 * 1024  # staged block size
IN_FLIGHT = 4  # blocks staging at once: a copy holds at most IN_FLIGHT + 1 blocks in memory
MAX_BLOCKS = 50_000  # Azure: committed blocks per blob (a 250 GB file needs blocks over 4 MiB)
CHECKPOINT_BLOCKS = 64  # a long copy checkpoints its staged blocks this often, not only at the budget
READ_CHUNK = 256 * 1024
# A file of many blocks is downloaded in ranges of about SEGMENT_SECONDS each (whole blocks, sized
# from the rate of the one before; the first is one block): the budget is checked between ranges,
# where no byte is in transit, so a pause discards nothing it downloaded.
SEGMENT_SECONDS = 2.0
MAX_SEGMENT_BLOCKS = 64
STREAM_ATTEMPTS = 5  # broken streams resumed (with Range) before the copy counts as failed
VERIFY_ATTEMPTS = 2  # whole downloads whose bytes don't match the listing before we give up
COPY_POLL_SECONDS = 120.0

# The mirror's listing (`Mirror.paths`) holds 8 bytes a path: a digest, sorted. A path whose
# digest collides with a listed one is only probed for nothing; a million paths cost 8 MB, not 130.
_LISTING_PAGE = 5000


def _digest(path: str) -> int:
    return hash(path) & 0xFFFF_FFFF_FFFF_FFFF  # the process's own str hash: listing and lookups share it


@dataclass(frozen=True)
class Listing:
    """Blob paths of the mirror at some moment: `path in listing` is True for each of them (and,
    once in 2**64, for another: a probe for nothing)."""

    digests: array[int]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        digest = _digest(path)
        at = bisect.bisect_left(self.digests, digest)
        return at < len(self.digests) and self.digests[at] == digest

    def __len__(self) -> int:
        return len(self.digests)


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
    outcome: str  # "copied" | "unchanged" | "gone" | "malware" | "failed" | "unavailable" | "paused"
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

    def paths(self, limit: int) -> Listing | None:
        """Every blob path in the mirror now (names only: 5,000 a call), or None past `limit`."""
        pages: list[array[int]] = []
        page: list[int] = []
        for count, name in enumerate(self.container.names(self.prefix)):
            if count >= limit:
                return None
            page.append(_digest(name[len(self.prefix):]))
            if len(page) == _LISTING_PAGE:
                pages.append(array("Q", sorted(page)))
                page = []
        pages.append(array("Q", sorted(page)))
        return Listing(array("Q", heapq.merge(*pages)))

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
             listed: Listing | None = None, *, out_of_time: Callable[[], bool] = lambda: False,
             checkpoints: Checkpoints | None = None) -> CopyResult:
        """Download the item into `plan.path`, verified. Typed errors other than "gone" and
        "malware" propagate (Throttled, ReauthRequired, storage errors).

        `listed`: the mirror's paths at some earlier moment (`paths`). A path not in it is not
        probed: if the blob appeared since, the copy merely overwrites it with the same bytes.
        A file of many blocks that outlasts the budget (`out_of_time`) is "paused": its staged
        blocks are saved in `checkpoints`, and the next copy of the same bytes continues there."""
        if plan.empty:
            # Zero bytes: nothing to download; `hashes: {}` on the wire still means the empty hash.
            self.write_empty(plan.path, {**blob_metadata, "quickxorhash": meta(ZERO_HASH)})
            return CopyResult("copied", 0)
        existing = None if listed is not None and plan.path not in listed else self.probe(plan.path)
        if (existing is not None and plan.quickxorhash and existing.item_id == plan.item_id
                and existing.quickxorhash == plan.quickxorhash and existing.size == plan.size):
            return CopyResult("unchanged", 0)  # e.g. written before a crash, or a reconnect
        error = ""
        for attempt in range(VERIFY_ATTEMPTS):
            try:
                # A second attempt (the bytes did not match) trusts no block staged before.
                size = self._stream(graph, plan, blob_metadata, out_of_time=out_of_time, checkpoints=checkpoints,
                                    resume=attempt == 0)
                return CopyResult("copied", size)
            except Paused as paused:
                return CopyResult("paused", paused.args[0])
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

    def _stream(self, graph: GraphClient, plan: Copy, blob_metadata: dict[str, str], *, out_of_time: Callable[[], bool],
                checkpoints: Checkpoints | None, resume: bool) -> int:
        """Download into staged blocks (IN_FLIGHT staging at once, hashed in order), verify, commit.
        Raises Paused once `out_of_time()` says so, after checkpointing the blocks staged so far."""
        name = self._name(plan.path)
        block_size = block_size_for(plan.size)
        content = _content_key(plan)
        staged = self._staged(name, plan.item_id, content, block_size, checkpoints) if resume and plan.size > block_size else None
        # The bytes of earlier invocations' blocks are known only by their hash state: the state of
        # the whole file combines it with the hasher of what this invocation downloads.
        nonce = staged.nonce if staged else uuid.uuid4().hex[:12]  # block ids of this attempt only
        prefix_state, prefix_length = (staged.state, staged.offset) if staged else (0, 0)
        blocks = staged.blocks if staged else 0
        hasher = quickxorhash.quickxorhash()
        offset = prefix_length
        buffer = bytearray()
        failures = 0
        single: bytes | None = None
        stager: ThreadPoolExecutor | None = None
        in_flight: deque[Future[None]] = deque()

        def settle(keep: int = 0) -> None:
            # Oldest first: every block before the last `keep` is staged (a failed one raises here).
            while len(in_flight) > keep:
                in_flight.popleft().result()

        def hash_state() -> int:
            return _combine(prefix_state, prefix_length, _state_of(hasher.digest(), offset - prefix_length))

        def checkpoint() -> None:
            if checkpoints is not None:
                settle()
                checkpoints.save(plan.item_id, Staged(content, nonce, blocks, block_size, hash_state()).to_text())

        late_since = 0.0

        def stage(data: bytes) -> None:
            nonlocal offset, stager, blocks, late_since
            settle(keep=IN_FLIGHT - 1)
            if stager is None:
                stager = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="stage-block")
            in_flight.append(stager.submit(self.container.stage_block, name, _block_id(nonce, blocks), data))
            # Counted once handed over: a resumed download continues after it, and a block that
            # fails to stage raises (in settle) before anything is committed.
            hasher.update(data)
            blocks += 1
            offset += len(data)
            if len(data) == block_size and offset < plan.size:
                # Out of time mid-range: the range ends within SEGMENT_SECONDS, and the pause
                # between ranges discards nothing. A range much slower than that pauses here
                # (what was in transit is downloaded again).
                if out_of_time():
                    late_since = late_since or time.monotonic()
                    if time.monotonic() - late_since > 2 * SEGMENT_SECONDS:
                        raise Paused(offset)  # the download is closed first, then checkpointed
                if blocks % CHECKPOINT_BLOCKS == 0:
                    checkpoint()  # a worker killed past here resumes here

        segment = block_size  # bytes asked for in one range (many-block files only)
        try:
            while True:
                buffer.clear()
                try:
                    while True:  # one range after the other (a file of one block: one request)
                        start = offset + len(buffer)
                        ranged = plan.size > block_size and start + segment < plan.size
                        if start and start < plan.size and not buffer and out_of_time():
                            raise Paused(offset)  # between two ranges: nothing in transit
                        asked_at = time.monotonic()
                        with graph.download(plan.item_id, start=start, end=start + segment - 1 if ranged else None,
                                            more=ranged) as response:
                            if start and not _resumes_at(response, start):
                                # Range ignored (200) or answered from elsewhere: start over from byte 0.
                                settle()
                                blocks, offset, prefix_state, prefix_length = 0, 0, 0, 0
                                hasher = quickxorhash.quickxorhash()
                                buffer.clear()
                            for chunk in response.iter_bytes(READ_CHUNK):
                                buffer += chunk
                                if offset + len(buffer) > plan.size:
                                    raise Mismatch(f"more bytes than the listed {plan.size}")
                                while len(buffer) >= block_size:
                                    stage(bytes(memoryview(buffer)[:block_size]))
                                    del buffer[:block_size]
                            got = offset + len(buffer) - start
                        if offset + len(buffer) >= plan.size or not got:
                            break  # the whole file (or a server that sends nothing more: checked below)
                        # The next range: as many whole blocks as SEGMENT_SECONDS at this one's rate.
                        rate = got / max(time.monotonic() - asked_at, 1e-3)
                        segment = block_size * max(1, min(MAX_SEGMENT_BLOCKS, int(rate * SEGMENT_SECONDS) // block_size))
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
        except (Paused, Throttled):
            # Out of budget either way (a wait that would not fit is raised as Throttled): keep
            # what is staged for the next message.
            checkpoint()
            raise
        finally:
            if stager is not None:
                # A copy that stops early (error, pause) lets staging blocks finish: nothing is
                # committed, and the blocks a checkpoint names are staged.
                stager.shutdown(wait=True)
        if offset != plan.size:
            raise Mismatch(f"got {offset} bytes, listed {plan.size}")
        digest = base64.b64encode(_digest_of(hash_state(), offset)).decode()
        if plan.quickxorhash and digest != plan.quickxorhash:
            raise Mismatch("quickXorHash of the bytes differs from the listing")
        if not plan.quickxorhash:
            blob_metadata = {**blob_metadata, "quickxorhash": meta(digest)}
        if single is not None:
            self.container.upload(name, single, blob_metadata)
        else:
            self.container.commit_blocks(name, [_block_id(nonce, index) for index in range(blocks)], blob_metadata)
        return offset

    def _staged(self, name: str, item_id: str, content: str, block_size: int,
                checkpoints: Checkpoints | None) -> Staged | None:
        """The checkpoint of an earlier invocation's copy of these bytes, if its blocks are all
        still staged (a commit or a write of the blob discards them; Azure drops them after 7 days)."""
        text = checkpoints.load(item_id) if checkpoints is not None else None
        staged = Staged.from_text(text) if text else None
        if staged is None or staged.content != content or staged.block_size != block_size or not staged.blocks:
            return None
        sizes = self.container.uncommitted_blocks(name)
        if any(sizes.get(_block_id(staged.nonce, index)) != block_size for index in range(staged.blocks)):
            return None
        log.info("copy resumes at byte %d with the blocks staged before", staged.offset,
                 extra={"connection_id": self.connection_id, "item_id": item_id})
        return staged


class Paused(Failure):
    """The time budget ended mid-copy: the staged blocks are checkpointed for the next invocation."""


class Checkpoints(Protocol):
    """Where a copy keeps its checkpoint between invocations (the item's pending row)."""

    def load(self, item_id: str) -> str | None: ...

    def save(self, item_id: str, value: str) -> None: ...


@dataclass(frozen=True)
class Staged:
    """A copy in progress: `blocks` blocks of this nonce staged, and the quickXorHash state
    (the 160-bit sum before the length is folded in) of their bytes."""

    content: str  # which bytes: a file changed since starts over
    nonce: str
    blocks: int
    block_size: int
    state: int

    @property
    def offset(self) -> int:
        return self.blocks * self.block_size

    def to_text(self) -> str:
        return json.dumps([self.content, self.nonce, self.blocks, self.block_size, f"{self.state:x}"])

    @classmethod
    def from_text(cls, text: str) -> Staged | None:
        try:
            content, nonce, blocks, size, state = json.loads(text)
            return cls(str(content), str(nonce), int(blocks), int(size), int(state, 16))
        except (ValueError, TypeError):
            return None  # unreadable: start over


def block_size_for(size: int) -> int:
    """BLOCK_SIZE, or larger for a file that would need more than Azure's 50,000 blocks (whole MiB)."""
    needed = -(-size // MAX_BLOCKS)
    return max(BLOCK_SIZE, -(-needed // (1 << 20)) << 20)


def _block_id(nonce: str, index: int) -> str:
    return base64.b64encode(f"{nonce}-{index:08d}".encode()).decode()


def _content_key(plan: Copy) -> str:
    return f"{plan.quickxorhash or ''}:{plan.size}"


# quickXorHash (microsoft.md §4): byte i is XORed in at bit (11 * i) mod 160 of a 160-bit state,
# and the length is XORed into bytes 12..19 at the end. So the state of a + b is the state of a
# XOR the state of b rotated left by 11 * len(a) bits: a copy resumed in another invocation
# needs only the state of what it staged before, not those bytes.
_MASK = (1 << 160) - 1


def _fold_length(value: bytes, length: int) -> bytes:
    folded = bytearray(value)
    for index, byte in enumerate(length.to_bytes(8, "little")):
        folded[12 + index] ^= byte
    return bytes(folded)


def _state_of(digest: bytes, length: int) -> int:
    return int.from_bytes(_fold_length(digest, length), "little")


def _digest_of(state: int, length: int) -> bytes:
    return _fold_length(state.to_bytes(20, "little"), length)


def _combine(first: int, first_length: int, second: int) -> int:
    shift = (11 * first_length) % 160
    rotated = ((second << shift) | (second >> (160 - shift))) & _MASK if shift else second
    return first ^ rotated


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
