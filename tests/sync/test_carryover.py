"""Folder rows carried from one sync to the next in the same worker (sync/carryover.py): a change
pass then reads the rows of what changed, not its ancestors again; and rows another worker may
have changed since, or that delta says changed, are never taken from the carry."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

from devtools.calls import CallCounter
from functions import storage
from functions.microsoft.transport import Deadline
from functions.sync import carryover, engine, itemrows
from functions.sync import state as syncstate
from tests.fixtures.mirror import assert_mirror_equals_drive
from tests.sync.conftest import sync_in_budgets

ROOT = Path(__file__).resolve().parents[2]
DEEP = "top/middle/inner"  # three folders above every changed file's own folder


def seed_deep(drive, folders: int = 6) -> list[str]:
    paths = [f"{DEEP}/leaf-{index}/file.txt" for index in range(folders)]
    for path in paths:
        drive.write_file(path, b"version 1")
    return paths


def point_reads(calls: CallCounter) -> list[str]:
    """The id map's point reads among the calls: `DriveItems(PartitionKey='…',RowKey='…')`."""
    return [key for service, method, path in calls.calls if service == "table" and method == "GET"
            and (key := unquote(path).rsplit("/", 1)[-1]).startswith(f"{storage.Tables.DRIVE_ITEMS}(")]


def id_map_reads(connection_id: str) -> tuple[int, bool]:
    """A sync's point reads of the id map, and whether it finished."""
    with CallCounter.for_environment() as calls:
        outcome = engine.run(connection_id, deadline=Deadline()).outcome
    reads = len(point_reads(calls))
    return reads, outcome == "done"


def test_a_change_pass_after_the_workers_own_sync_reads_only_the_changed_rows(connected_drive, drive, sync_until_done):
    paths = seed_deep(drive)
    assert sync_until_done().outcome == "done"
    # A fresh worker (nothing carried): each changed file's row, then its folder, and up the tree.
    carryover.clear()
    for path in paths:
        drive.write_file(path, b"version 2")
    cold, done = id_map_reads(connected_drive.connection_id)
    assert done
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # The same worker's next pass: the folders are carried from the one before.
    for path in paths:
        drive.write_file(path, b"version 3")
    warm, done = id_map_reads(connected_drive.connection_id)
    assert done
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert warm <= len(paths), (cold, warm)  # the changed files' own rows at most
    assert cold >= warm + len(paths) + 3, (cold, warm)  # six leaf folders, three above, the root


def test_a_folder_delta_reports_renamed_is_not_taken_from_the_carry(connected_drive, drive, sync_until_done):
    seed_deep(drive, folders=2)
    assert sync_until_done().outcome == "done"  # carries "middle" as it was
    drive.rename("top/middle", "renamed")
    drive.write_file("top/renamed/inner/leaf-0/file.txt", b"version 2")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def row_versions(connection_id: str) -> dict[str, str]:
    """Each id-map row's version (its table ETag, new with every write), by item id."""
    rows = storage.Table(storage.Tables.DRIVE_ITEMS).query("PartitionKey eq @p", {"p": connection_id})
    return {row["item_id"]: row.etag for row in rows}


def test_a_change_pass_writes_no_row_of_the_unchanged_folders_delta_repeats(connected_drive, drive, sync_until_done):
    """Delta repeats every ancestor of a change (its eTag, cTag and size new; the emulator's
    `delta_repeat_ancestors`, on by default as in the real service): a pass writes the
    rows of what changed, not of the folders above it, so its writes do not grow with the depth
    of the tree; a folder that did change is written, and its subtree follows it."""
    paths = seed_deep(drive)
    assert sync_until_done().outcome == "done"  # carries every folder
    before = row_versions(connected_drive.connection_id)
    for path in paths[:3]:
        drive.write_file(path, b"version 2")
    drive.rename(f"{DEEP}/leaf-5", "renamed")
    changed = {drive.item_id(path) for path in paths[:3]} | {drive.item_id(f"{DEEP}/renamed")}
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    written = {item_id for item_id, version in row_versions(connected_drive.connection_id).items()
               if before.get(item_id) != version}
    moved_along = drive.item_id(paths[5].replace("leaf-5", "renamed"))  # its blob relocated: its row may be
    assert written - {moved_along} == changed, (written, changed)


def run_in_another_worker(connection_id: str) -> None:
    worker = subprocess.run([sys.executable, "-m", "tests.sync.worker_process", connection_id, "60"], cwd=ROOT,
                            env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert worker.stdout.strip() == "done", worker.stderr[-2000:]


def test_rows_another_worker_may_have_written_are_not_carried(connected_drive, drive, sync_until_done):
    """This worker syncs; another worker process syncs a folder rename (and writes the folder's
    row: where the mirror has it now); then the files below it change, and this worker syncs
    again. Its carried rows are from before the other worker's pass: it reads them all again."""
    paths = seed_deep(drive)
    assert sync_until_done().outcome == "done"  # carries every folder
    drive.rename("top/middle", "renamed")
    run_in_another_worker(connected_drive.connection_id)
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    for path in paths:
        drive.write_file(path.replace("top/middle/", "top/renamed/"), b"version 2")
    reads, done = id_map_reads(connected_drive.connection_id)
    assert done
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert reads >= 2 * len(paths) + 3, reads  # the files, their folders, the three above, the root


def test_a_sync_that_runs_out_of_time_carries_its_rows_to_its_continuation(connected_drive, drive, sync_until_done):
    paths = seed_deep(drive)
    assert sync_until_done().outcome == "done"  # carries its folders
    for path in paths:
        drive.write_file(path, b"version 2")
    # Out of time at once: the run checkpoints and stops, and keeps the rows it took.
    assert engine.run(connected_drive.connection_id, deadline=Deadline(1.0)).outcome == "continued"
    reads, done = id_map_reads(connected_drive.connection_id)
    assert done
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert reads <= len(paths), reads  # the changed files' own rows at most


def test_a_sync_that_spans_messages_reads_each_folder_once(connected_drive, emulator, drive, sync_until_done,
                                                             monkeypatch):
    """A cold worker applies 48 changed files in short budgets (downloads are slow): whichever
    message first reads a folder's row, the continuations after it start from that row."""
    paths = [f"{DEEP}/leaf-{index % 6}/file-{index}.txt" for index in range(48)]
    for path in paths:
        drive.write_file(path, b"version 1")
    assert sync_until_done().outcome == "done"
    carryover.clear()
    for path in paths:
        drive.write_file(path, b"version 2")
    monkeypatch.setattr(engine, "BUDGET_MARGIN_SECONDS", 0.0)
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.3)
    with CallCounter.for_environment() as calls:
        outcomes = sync_in_budgets(connected_drive.connection_id, 1.0, emulator)
    # 48 copies at 8 at once: 1.8 s at least, more than one budget (how many more, the machine decides)
    assert outcomes[-1] == "done" and len(outcomes) >= 2, outcomes
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    folders = {f"RowKey='{itemrows.row_key(item.id)}'" for item in drive.walk() if item.is_folder_like}
    reads = sum(1 for read in point_reads(calls) if any(key in read for key in folders))
    assert len(folders) - 1 <= reads <= len(folders), (reads, outcomes)  # the root's row may not be read


def test_a_sync_that_fails_carries_nothing(connected_drive, emulator, drive, sync_until_done):
    seed_deep(drive, folders=2)
    assert sync_until_done().outcome == "done"  # carries its folders
    drive.write_file(f"{DEEP}/leaf-0/file.txt", b"version 2")
    emulator.faults.inject(method="GET", path=r"/delta", status=429, retry_after="3600", times=1)
    assert engine.run(connected_drive.connection_id, deadline=Deadline()).outcome == "throttled"
    state = syncstate.read(connected_drive.connection_id)
    assert state is not None and state.rows_by
    assert carryover.take(connected_drive.connection_id, state.rows_by) == {}


def test_a_recorded_row_is_what_reading_it_again_gives(storage):
    """`itemrows.recorded` (how carried rows follow delta) against Azurite's own answer, over
    rows in every state (mirrored, skipped, tombstones, kinds that changed) and every item."""
    from functions.microsoft.driveitem import DriveItem, Kind

    rng = random.Random(5)
    connection_id = "conn-recorded"

    def item(index: int, *, tombstones: bool = True) -> DriveItem:
        kind = rng.choice(list(Kind))
        deleted = tombstones and rng.random() < 0.3
        return DriveItem(id=f"ID!{index}", kind=kind, deleted=deleted, etag=f"e{rng.random()}", ctag=rng.choice(["", "c1"]),
                         name=None if deleted else rng.choice(["a", "b.txt", ""]),
                         parent_id=None if deleted else rng.choice([None, "ID!0", "ID!1"]),
                         size=rng.choice([None, 0, 7, 2**40]), quickxorhash=rng.choice([None, "", "q=="]),
                         malware=rng.random() < 0.1)

    for index in range(60):
        itemrows.record_delta_page(connection_id, [item(index)], epoch=None)
        if rng.random() < 0.6:
            itemrows.write_mirrored(connection_id, [itemrows.mirrored_entity(
                connection_id, f"ID!{index}", name=rng.choice([None, "m"]), parent_id=rng.choice([None, "ID!0"]),
                content=rng.choice(["", "h:q==:7"]), skipped=rng.choice(["", "tooLong"]))])
        before = itemrows.RowCache(connection_id)
        before.load([f"ID!{index}"])
        state = before[f"ID!{index}"]
        for _ in range(3):  # a delta page repeats an item: each record merges over the last
            update = item(index, tombstones=False)
            assert itemrows.recorded(state, replace(update, deleted=True)) is None  # a tombstone: read again
            itemrows.record_delta_page(connection_id, [update], epoch="epoch")
            state = itemrows.recorded(state, update)
            assert state is not None
        after = itemrows.RowCache(connection_id)
        after.load([f"ID!{index}"])
        assert state == after[f"ID!{index}"], index
