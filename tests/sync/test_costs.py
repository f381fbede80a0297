"""What a sync costs in calls, counted (not timed): the figures that regress silently."""

from __future__ import annotations

import random
import time

from devtools.calls import CallCounter
from functions.microsoft.transport import Deadline
from functions.sync import engine
from functions.sync import state as syncstate
from tests.fixtures.mirror import assert_mirror_equals_drive

FILES = 400


def counted_sync(connected_drive, emulator):
    started = time.monotonic()
    with CallCounter.for_environment(graph=emulator.graph_base_url, download=emulator.download_base_url) as calls:
        # No time budget: on a busy machine a budget would split the sync, and each message has
        # its own fixed calls.
        assert engine.run(connected_drive.connection_id, deadline=Deadline()).outcome == "done"
    counts = calls.snapshot()
    # The lease's heartbeat writes the state row every HEARTBEAT_SECONDS: calls of time, not of items.
    counts["table"] -= min(counts["table"], int((time.monotonic() - started) / syncstate.HEARTBEAT_SECONDS))
    return counts


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
    # the run's own rows (lease, status, retry list, subscription) and the sweep's pages (the
    # rows of a page of blobs, by range while the drive is this small): no table call per file.
    assert calls["table"] <= 55 + FILES * 4 / 100, calls
    assert calls["other"] == 0


def apply_changes(drive, rng: random.Random, count: int, among: str) -> None:
    """`count` changes to files: modified, created, renamed, moved and deleted, in fixed shares,
    to files and into folders whose names start with `among` (the same part of the drive)."""
    files = sorted(path for path in drive.snapshot() if path.rsplit("/", 1)[-1].startswith(among))
    folders = sorted(path for item in drive.walk() if item.kind == "folder"
                     and (path := drive.path_of(item)).rsplit("/", 1)[-1].startswith(among))
    kinds = ["modified"] * 8 + ["created"] * 4 + ["renamed"] * 3 + ["moved"] * 3 + ["deleted"] * 2
    for index in range(count):
        kind, path = kinds[index % len(kinds)], files.pop(rng.randrange(len(files)))
        name = path.rsplit("/", 1)[-1]
        if kind == "modified":
            drive.write_file(path, rng.randbytes(rng.randrange(1, 64)))
        elif kind == "created":
            drive.write_file(f"{rng.choice(folders)}/new-{index}-{rng.random():.6f}.txt", rng.randbytes(32))
        elif kind == "renamed":
            drive.rename(path, f"renamed-{index}-{name}")
        elif kind == "moved":
            drive.move(path, f"{rng.choice(folders)}/moved-{index}-{name}")
        else:
            drive.delete(path)


def test_the_storage_calls_of_a_change_pass_do_not_grow_with_the_drive(connected_drive, emulator, drive, sync_until_done):
    """20 changes in a drive of 200 files and in one of 2,000 cost the same calls: no step of an
    incremental pass reads, lists or writes the whole drive, or more of it as it grows."""
    rng = random.Random(7)
    passes = []
    for seed, files in ((1, 200), (2, 1800)):  # the drive grows from 200 to 2,000 files
        drive.seed(n_files=files, n_folders=files // 100, seed=seed, max_size=64)
        sync_until_done()
        # The same kind of work both times: changes among the first 200 files and their folders.
        apply_changes(drive, rng, 20, among="seed-1-")
        passes.append(counted_sync(connected_drive, emulator))
        assert_mirror_equals_drive(connected_drive.connection_id, drive)
    small, large = passes
    for service in ("blob", "table", "queue", "download"):
        # A few calls of slack: which folders the random changes touch decides some point reads.
        assert large[service] <= small[service] + 4, (service, dict(small), dict(large))
