"""Copies stream in fixed-size blocks: memory does not grow with the file."""

from __future__ import annotations

import tracemalloc

from functions.sync import apply, engine, itemrows, mirror
from tests.fixtures.mirror import assert_mirror_equals_drive


def test_a_large_file_copies_with_flat_memory(connected_drive, drive, sync_until_done):
    size = 64 * 1024 * 1024 + 3
    drive.write_file("video.mp4", size=size, seed=77)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        assert sync_until_done().outcome == "done"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = peak - baseline
    # IN_FLIGHT blocks staging, one filling, one being copied out of the buffer; the emulator
    # serving the bytes runs in this process too and is included in the figure.
    assert growth < (mirror.IN_FLIGHT + 3) * mirror.BLOCK_SIZE, f"peak grew by {growth / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_a_full_enumeration_holds_a_chunk_of_rows_not_the_drive_s(connected_drive, drive, sync_until_done, monkeypatch):
    # 40 folders of 5 files: far more rows than a chunk, and more folders than the rows kept.
    for folder in range(40):
        for index in range(5):
            drive.write_file(f"d{folder:02d}/f{index}.txt", f"{folder}/{index}".encode())
    monkeypatch.setattr(apply, "FILE_CHUNK", 10)
    monkeypatch.setattr(apply, "FOLDER_CHUNK", 10)
    monkeypatch.setattr(apply, "FOLDERS_KEPT", 8)
    monkeypatch.setattr(engine, "SWEEP_PAGE", 10)
    monkeypatch.setattr(itemrows, "SCAN_PAGE", 10)
    held: list[int] = []
    cache_put = itemrows.RowCache.__setitem__

    def counting(self, key, value):
        cache_put(self, key, value)
        held.append(len(self))

    monkeypatch.setattr(itemrows.RowCache, "__setitem__", counting)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # The folders kept, a chunk of 10 and each one's parent, the root: never the drive's 241 rows
    # (nor its 40 folders).
    assert held and max(held) <= 8 + 10 + 10 + 1, max(held)
