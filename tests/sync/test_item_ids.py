"""Item ids are opaque, but the service spells the drive-id part of `<DRIVEID>!...` ids in varying
case, also inside parentReference.id (microsoft.md §6, OneDrive/onedrive-api-docs#1902). A parent
spelt in another case is the same parent: its subtree must be mirrored, never deleted as orphaned."""

from __future__ import annotations

import logging

import pytest

from functions.microsoft.driveitem import Kind
from functions.sync.plan import ItemState, Resolver
from tests.fixtures.mirror import assert_mirror_equals_drive


def test_case_variants_cover_the_drive_id_part_and_the_whole_id():
    from functions.sync.plan import case_variants

    assert case_variants("ABC123!s0f9e") == ["abc123!s0f9e", "ABC123!S0F9E"]
    assert "ABC123!s0f9e" in case_variants("abc123!s0f9e")


def test_the_planner_resolves_a_parent_spelt_in_another_case():
    rows = {
        "D!root": ItemState(id="D!root", kind=Kind.ROOT, name="root"),
        "D!s1": ItemState(id="D!s1", kind=Kind.FOLDER, name="Docs", parent_id="d!root"),
        "D!s2": ItemState(id="D!s2", kind=Kind.FILE, name="a.txt", parent_id="d!s1"),
    }
    assert Resolver(rows).desired("D!s2").path == "Docs/a.txt"
    assert Resolver({k: v for k, v in rows.items() if k != "D!s1"}).desired("D!s2").reason == "orphan"


def test_parent_ids_in_another_case_are_the_same_parent_not_orphans(connected_drive, emulator, drive, sync_until_done, caplog):
    folder_id = drive.create_folder("Docs")
    if folder_id.split("!")[0] == folder_id.split("!")[0].lower():
        pytest.skip("this drive id has no letters: no case to vary")
    drive.write_file("Docs/Sub/a.txt", b"a")
    drive.write_file("b.txt", b"b")
    emulator.parent_id_drive_case = "lower"
    with caplog.at_level(logging.INFO):
        assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert any("another case" in r.getMessage() or "ignoring case" in r.getMessage() for r in caplog.records)
    # Incremental changes under the differently spelt parents: a new file, a folder rename.
    drive.write_file("Docs/Sub/c.txt", b"c")
    drive.rename("Docs", "Papers")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
