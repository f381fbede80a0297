"""A file whose copy outlasts the time budget: the staged blocks are checkpointed and the next
message downloads only the rest (OneDrive allows 250 GB files; a budget is minutes)."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError

from functions import storage
from functions.microsoft.transport import Deadline
from functions.sync import engine, mirror
from tests.fixtures.mirror import assert_mirror_equals_drive
from tests.sync.conftest import content_requests, sync_in_budgets


def test_the_resumed_large_copy_downloads_each_byte_once(connected_drive, emulator, drive, monkeypatch):
    """A copy longer than the budget: each message asks for the bytes after the blocks staged
    before it, in ranges, and pauses between two ranges: what the download host sent adds up to
    the file exactly, each byte once."""
    monkeypatch.setattr(engine, "BUDGET_MARGIN_SECONDS", 0.0)
    # Blocks the size of a read, one block to a range: every pause falls between two ranges.
    monkeypatch.setattr(mirror, "BLOCK_SIZE", mirror.READ_CHUNK)
    monkeypatch.setattr(mirror, "MAX_SEGMENT_BLOCKS", 1)
    size = 12 * mirror.READ_CHUNK + 1234
    drive.write_file("video.mp4", size=size, seed=41)
    emulator.download_rate = 2**20  # ~3 s of download against a 0.8 s budget
    outcomes = sync_in_budgets(connected_drive.connection_id, 0.8, emulator)
    assert outcomes[-1] == "done" and outcomes.count("continued") >= 2, outcomes
    assert_mirror_equals_drive(connected_drive.connection_id, drive)

    downloads = content_requests(emulator)
    starts = [int(r["range"].removeprefix("bytes=").split("-")[0]) if r["range"] else 0 for r in downloads]
    sent = [r["bytes"] for r in downloads]
    # One range after the other, each starting where the one before ended, across messages...
    assert starts[0] == 0 and all(later == earlier + count for earlier, count, later
                                  in zip(starts, sent, starts[1:], strict=False)), list(zip(starts, sent, strict=True))
    # ...and nothing downloaded twice.
    assert sum(sent) == size, (sum(sent), size)


def test_a_checkpoint_whose_blocks_are_gone_starts_the_copy_over(connected_drive, emulator, drive, monkeypatch):
    """The staged blocks of a checkpoint can vanish (a write of the blob discards them; Azure drops
    them after 7 days): the copy must notice and download from byte 0, not commit a hole."""
    monkeypatch.setattr(engine, "BUDGET_MARGIN_SECONDS", 0.0)
    monkeypatch.setattr(mirror, "BLOCK_SIZE", mirror.READ_CHUNK)
    monkeypatch.setattr(mirror, "MAX_SEGMENT_BLOCKS", 1)  # a range per block: a pause between any two
    size = 10 * mirror.READ_CHUNK + 7
    drive.write_file("big.bin", size=size, seed=42)
    emulator.download_rate = 1.5 * 2**20
    blob = storage.files_container().get_blob_client(f"{connected_drive.connection_id}/big.bin")

    def staged_blocks() -> list:
        try:
            return blob.get_block_list("uncommitted")[1]
        except ResourceNotFoundError:  # nothing staged yet
            return []

    for _ in range(20):  # a loaded machine may spend a whole message before the copy starts
        assert engine.run(connected_drive.connection_id, deadline=Deadline(0.8)).outcome == "continued"
        if staged_blocks():
            break
    assert staged_blocks(), "a message staged blocks and kept them uncommitted"
    blob.upload_blob(b"someone else's bytes", overwrite=True)
    blob.delete_blob()  # with the blob go its uncommitted blocks (Azure drops them on the write already)
    assert not blob.exists()
    emulator.download_rate = 0
    before = len(content_requests(emulator))
    assert engine.run(connected_drive.connection_id).outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    again = content_requests(emulator)[before:]
    assert again[0]["range"] is None or again[0]["range"].startswith("bytes=0-")  # from byte 0 again
    assert sum(r["bytes"] for r in again) == size


def test_quickxorhash_state_of_two_parts_combines_into_the_hash_of_the_whole():
    import base64
    import random

    import quickxorhash

    def digest(data: bytes) -> bytes:
        hasher = quickxorhash.quickxorhash()
        hasher.update(data)
        return hasher.digest()

    rng = random.Random(5)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(1, 3000))
        cut = rng.randrange(0, len(data) + 1)
        first = mirror._state_of(digest(data[:cut]), cut)
        second = mirror._state_of(digest(data[cut:]), len(data) - cut)
        whole = mirror._digest_of(mirror._combine(first, cut, second), len(data))
        assert base64.b64encode(whole) == base64.b64encode(digest(data)), (len(data), cut)
