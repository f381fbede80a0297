"""Tombstones as OneDrive Personal really sends them: some descendants of a deleted folder get none,
and a tombstone may carry the id and nothing else (no name, no parentReference, no facet:
microsoft.md, "Id-only tombstones"). Each case with the documented tombstones and id-only ones."""

from __future__ import annotations

import pytest

from functions.microsoft.driveitem import DriveItem, Kind
from functions.sync import itemrows
from functions.sync.mirror import Mirror
from tests.fixtures.mirror import (
    assert_mirror_equals_drive,
    bring_reconciliation_forward,
    mirror_contents,
    untold_vanishings,
)

TOMBSTONES = pytest.mark.parametrize("id_only", [False, True], ids=["documented", "id-only"])


@TOMBSTONES
def test_a_deleted_file_leaves_the_mirror(connected_drive, emulator, drive, sync_until_done, id_only):
    drive.write_file("Docs/gone.txt", b"bye")
    drive.write_file("Docs/stays.txt", b"stays")
    assert sync_until_done().outcome == "done"
    emulator.id_only_tombstones = id_only
    drive.delete("Docs/gone.txt")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


@TOMBSTONES
def test_a_folder_deleted_without_its_childrens_tombstones_takes_them_along(connected_drive, emulator, drive,
                                                                             sync_until_done, id_only):
    drive.write_file("F/a.txt", b"a")
    drive.write_file("F/sub/b.txt", b"b")
    drive.write_file("other.txt", b"other")
    assert sync_until_done().outcome == "done"
    emulator.tombstones = "folder_only"  # only F's own tombstone: its children vanish
    emulator.id_only_tombstones = id_only  # ...and F's may not even say it was a folder
    drive.delete("F")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


@TOMBSTONES
def test_a_folder_deleted_and_created_again_under_its_name_in_one_delta(connected_drive, emulator, drive,
                                                                        sync_until_done, id_only):
    drive.write_file("F/same.txt", b"old bytes")
    drive.write_file("F/old only.txt", b"old only")
    assert sync_until_done().outcome == "done"
    emulator.id_only_tombstones = id_only
    drive.delete("F")
    drive.write_file("F/same.txt", b"new bytes, another item")
    drive.write_file("F/new only.txt", b"new only")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


@TOMBSTONES
def test_a_file_replaced_by_a_folder_of_its_name_and_back(connected_drive, emulator, drive, sync_until_done, id_only):
    drive.write_file("x/flip", b"a file first")
    assert sync_until_done().outcome == "done"
    emulator.id_only_tombstones = id_only
    drive.delete("x/flip")
    drive.write_file("x/flip/inside.txt", b"now a folder")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    drive.delete("x/flip")
    drive.write_file("x/flip", b"a file again")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


@TOMBSTONES
def test_a_file_moved_into_a_folder_deleted_before_the_sync_waits_for_the_reconciliation(connected_drive, emulator, drive,
                                                                                        sync_until_done, id_only):
    """Reliability seed 37's case. The delta holds F's tombstone and nothing about f (its move was
    its last change, and the delete dropped its tombstone): the mirror can't know f left X, so
    the blob stays until the periodic full reconciliation, which removes it."""
    cid = connected_drive.connection_id
    drive.write_file("X/f.txt", b"moved, then deleted with its new folder")
    drive.write_file("F/known.txt", b"known in F")
    assert sync_until_done().outcome == "done"
    emulator.tombstones = "folder_only"
    emulator.id_only_tombstones = id_only
    drive.move("X/f.txt", "F/f.txt")
    drive.delete("F")
    assert sync_until_done().outcome == "done"
    blobs = mirror_contents(cid)
    assert sorted(blobs) == ["X/f.txt"]  # F/known.txt went with F's tombstone
    assert untold_vanishings(cid, drive, ["X/f.txt"], blobs) == ["X/f.txt"]
    bring_reconciliation_forward(cid)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(cid, drive)


def test_the_oracle_does_not_excuse_a_blob_left_under_a_folder_whose_tombstone_came(connected_drive, emulator, drive,
                                                                                    sync_until_done):
    """`untold_vanishings` (the reliability suite's one excuse for an extra blob) must not cover a
    blob the incremental sync had every reason to delete: under a deleted folder it knew."""
    cid = connected_drive.connection_id
    drive.write_file("F/a.txt", b"a")
    assert sync_until_done().outcome == "done"
    folder_id, file_id = drive.item_id("F"), drive.item_id("F/a.txt")
    emulator.tombstones = "folder_only"
    drive.delete("F")
    assert sync_until_done().outcome == "done"
    assert Mirror(cid).probe("F/a.txt") is None
    # What a defect would leave: the blob, and its row still placing it under F.
    storage_blob = f"{cid}/F/a.txt"
    from functions import storage

    storage.files_container().upload_blob(storage_blob, b"a", overwrite=True, metadata={"item_id": file_id})
    assert untold_vanishings(cid, drive, ["F/a.txt"], mirror_contents(cid)) == []  # no row: the mirror forgot it
    itemrows.record_delta_page(cid, [DriveItem(file_id, Kind.FILE, name="a.txt", parent_id=folder_id, size=1)], epoch=None)
    assert untold_vanishings(cid, drive, ["F/a.txt"], mirror_contents(cid)) == []  # its folder's tombstone came
