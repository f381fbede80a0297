"""What a sync costs in calls, counted (not timed): the figures that regress silently."""

from __future__ import annotations

import random
import time

from devtools.calls import CallCounter
from devtools.emulator.changes import change_files
from functions import storage
from functions.microsoft.transport import Deadline
from functions.sync import engine
from functions.sync import state as syncstate
from functions.tokens import app_credentials
from tests.fixtures.mirror import assert_mirror_equals_drive

FILES = 400


def counted_sync(connected_drive, emulator):
    return counted_run(connected_drive, emulator)[0]


def counted_run(connected_drive, emulator):
    """A sync's calls by service, and the tables its queries read whole (see `table_scans`)."""
    # Calls the pass does not make, counted only when they fall inside it: the webhook's for the
    # changes just made (its sync request and the state row's mark: the emulator delivers when it
    # likes), and the app credentials' status, read again once its 30-s copy is old.
    emulator.flush_notifications()
    app_credentials.forget_cached()
    started = time.monotonic()
    with CallCounter.for_environment(graph=emulator.graph_base_url, download=emulator.download_base_url) as calls:
        # No time budget: on a busy machine a budget would split the sync, and each message has
        # its own fixed calls.
        assert engine.run(connected_drive.connection_id, deadline=Deadline()).outcome == "done"
    counts = calls.snapshot()
    # The lease's heartbeat writes the state row every HEARTBEAT_SECONDS: calls of time, not of items.
    counts["table"] -= min(counts["table"], int((time.monotonic() - started) / syncstate.HEARTBEAT_SECONDS))
    return counts, calls.table_scans()


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


def apply_changes(drive, rng: random.Random, count: int, among: str, tag: str) -> None:
    """`count` changes to files: modified, created, renamed, moved and deleted, in fixed shares,
    to files and into folders whose names start with `among` (the same part of the drive); then a
    folder created, one renamed and one moved, of the small folders `small_folders` made."""
    def within(path: str, folder: str) -> bool:
        return path == folder or path.startswith(folder + "/")

    named = sorted(path for item in drive.walk() if item.kind == "folder"
                   and (path := drive.path_of(item)).rsplit("/", 1)[-1].startswith(among))
    small = [path for path in named if path.rsplit("/", 1)[-1].startswith(f"{among}small-")]
    # Nothing lands in a small folder: each folder change moves the same two files at both sizes.
    folders = [path for path in named if not any(within(path, folder) for folder in small)]
    files = sorted(path for path in drive.snapshot() if path.rsplit("/", 1)[-1].startswith(among))
    change_files(drive, rng, count, files, folders)
    # Each kind of folder change makes the apply look again at the skipped items (a moved folder
    # may fit them now).
    renamed, moved = rng.sample(small, 2)
    drive.write_file(f"{rng.choice(folders)}/{among}folder-{tag}/inside.txt", b"in a new folder")
    drive.rename(renamed, f"{among}small-renamed-{tag}")
    drive.move(moved, f"{rng.choice(folders)}/{among}small-moved-{tag}")


def small_folders(drive, among: str) -> None:
    """Folders of two files each (the folder changes move these: the same work at any drive
    size), and items skipped for their place: a folder whose name ends with a dot, and its file."""
    for index in range(6):
        for name in ("a.txt", "b.txt"):
            drive.write_file(f"{among}small-{index}/{name}", name.encode())
    drive.write_file("skipped./inside.txt", b"not mirrored")


# Tables whose partition holds only what a pass changes (the work list), parked items or skipped
# ones: a pass may read these whole. The id map holds the whole drive: never.
READ_WHOLE = {storage.Tables.PENDING_ITEMS, storage.Tables.FAILED_ITEMS, storage.Tables.SKIPPED_ITEMS}


def test_the_storage_calls_of_a_change_pass_do_not_grow_with_the_drive(connected_drive, emulator, drive, sync_until_done):
    """20 changes to files and 3 to folders, in a drive of 200 files and in one of 2,000, cost the
    same calls: no step of an incremental pass reads, lists or writes the whole drive, or more of
    it as it grows. Azurite answers a query of a whole partition in one call, as it answers one
    of a single row: the queries that Azure Storage answers by reading the whole partition are
    counted by what they ask."""
    rng = random.Random(7)
    passes = []
    for seed, files in ((1, 200), (2, 1800)):  # the drive grows from 200 to 2,000 files
        drive.seed(n_files=files, n_folders=files // 100, seed=seed, max_size=64)
        if seed == 1:
            small_folders(drive, among="seed-1-")
        sync_until_done()
        # The same kind of work both times: changes among the first 200 files and their folders.
        apply_changes(drive, rng, 20, among="seed-1-", tag=str(seed))
        counts, scans = counted_run(connected_drive, emulator)
        passes.append(counts)
        assert_mirror_equals_drive(connected_drive.connection_id, drive, except_paths=["skipped./inside.txt"])
        assert {table for table, _ in scans} <= READ_WHOLE, scans
    small, large = passes
    for service in ("blob", "table", "queue", "download"):
        # A few calls of slack: which folders the random changes touch decides some point reads.
        assert large[service] <= small[service] + 4, (service, dict(small), dict(large))
