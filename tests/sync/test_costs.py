"""What a sync costs in calls, counted (not timed): the figures that regress silently."""

from __future__ import annotations

from devtools.calls import CallCounter
from functions.sync import engine
from tests.fixtures.mirror import assert_mirror_equals_drive

FILES = 400


def counted_sync(connected_drive, emulator):
    with CallCounter.for_environment(graph=emulator.graph_base_url, download=emulator.download_base_url) as calls:
        assert engine.run(connected_drive.connection_id).outcome == "done"
    return calls.snapshot()


def test_an_initial_sync_costs_a_download_a_blob_write_and_an_event_per_file(connected_drive, emulator, drive):
    drive.seed(n_files=FILES, n_folders=4, seed=3, max_size=4096)
    empty = sum(1 for size, _ in drive.snapshot().values() if size == 0)
    calls = counted_sync(connected_drive, emulator)
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # Per file: one request for the bytes (through the URL delta listed: no `/content` and its
    # redirect), one verified upload, one change event. The rest is per page, chunk or run.
    assert calls["download"] == FILES - empty
    assert calls["graph"] <= FILES / 200 + 3  # delta pages of 200 items, and a token refresh at most
    assert calls["blob"] <= FILES + 5  # nothing probed in a first sync: the mirror is listed once
    assert calls["queue"] <= FILES + 5
    # Rows are read by range and written and removed in batches of 100 (4 per 100 files), plus
    # the run's own rows (lease, status, retry list): no table call per file.
    assert calls["table"] <= 45 + FILES * 4 / 100, calls
    assert calls["other"] == 0
