"""Copies stream in fixed-size blocks: memory does not grow with the file."""

from __future__ import annotations

import tracemalloc

from functions.sync import mirror
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
