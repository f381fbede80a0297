"""Every scenario of sync-scenarios.md the emulator can produce, each ending with the mirror
compared to the drive (same paths, same bytes, nothing extra). Emulator over real HTTP, Azurite."""

from __future__ import annotations

import threading

import pytest

from functions import connections, storage
from functions.sync import itemrows
from functions.sync import state as syncstate
from tests.fixtures.mirror import assert_mirror_equals_drive, mirror_contents
from tests.fixtures.waiting import eventually
from tests.sync.conftest import content_requests


def events(connection_id: str) -> list[dict]:
    import json

    queue = storage.queue(storage.Queues.EVENTS)
    found = []
    while batch := list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300)):
        found += [json.loads(m.content) for m in batch]
    return [e for e in found if e["connectionId"] == connection_id]


def test_first_sync_copies_every_file_with_metadata_and_events(connected_drive, drive, sync_until_done):
    drive.write_file("a.txt", b"hello")
    drive.write_file("Docs/b.bin", size=300_000, seed=3)
    drive.write_file("Docs/Deeper/c.bin", size=5 * 1024 * 1024 + 17, seed=4)  # more than one block
    result = sync_until_done()
    assert result.outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    created = sorted(e["path"] for e in events(connected_drive.connection_id) if e["type"] == "created")
    assert created == ["Docs/Deeper/c.bin", "Docs/b.bin", "a.txt"]
    status = connections.require(connected_drive.connection_id)
    assert status.items_copied == 3 and status.bytes_copied == 5 + 300_000 + 5 * 1024 * 1024 + 17
    assert status.last_sync_finished_at is not None and status.last_sync_error == ""


@pytest.mark.parametrize("order", ["children_first", "shuffled"])
def test_children_before_parents_repeats_and_empty_pages_lose_nothing(connected_drive, emulator, drive, sync_until_done, order):
    emulator.delta_order = order
    emulator.delta_page_size = 3
    emulator.delta_empty_pages = True
    drive.seed(n_files=40, n_folders=8, seed=5)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    drive.write_file("seed-late/new.txt", b"new")
    drive.seed(n_files=10, n_folders=3, seed=6)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_folder_rename_moves_descendants_without_downloads(connected_drive, emulator, drive, sync_until_done):
    for index in range(6):
        drive.write_file(f"Photos/2020/img{index}.jpg", size=10_000 + index, seed=index)
    drive.write_file("Photos/readme.txt", b"photos")
    sync_until_done()
    downloads_before = len(content_requests(emulator))
    drive.move("Photos", "Archive/Old Photos")
    drive.rename("Archive/Old Photos/2020", "Year 2020")
    assert sync_until_done().outcome == "done"
    assert len(content_requests(emulator)) == downloads_before, "a move must not download anything"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    moved = [e for e in events(connected_drive.connection_id) if e["type"] == "moved"]
    assert {e["path"] for e in moved} >= {f"Archive/Old Photos/Year 2020/img{i}.jpg" for i in range(6)}


def test_file_rename_and_swap_converge(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("a.txt", b"A" * 100)
    drive.write_file("b.txt", b"B" * 200)
    drive.write_file("c.txt", b"C" * 300)
    sync_until_done()
    drive.move("a.txt", "tmp.txt")
    drive.move("b.txt", "a.txt")
    drive.move("tmp.txt", "b.txt")
    drive.rename("c.txt", "c2.txt")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_folder_deleted_and_recreated_with_the_same_name(connected_drive, emulator, drive, sync_until_done):
    emulator.tombstones = "partial"
    drive.write_file("Work/one.txt", b"old one")
    drive.write_file("Work/sub/two.txt", b"old two")
    drive.write_file("Work/sub/three.txt", b"old three")
    sync_until_done()
    drive.delete("Work")
    drive.write_file("Work/one.txt", b"new one, different bytes")
    drive.write_file("Work/four.txt", b"four")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


@pytest.mark.parametrize("tombstones", ["all", "partial", "folder_only"])
def test_folder_delete_removes_every_descendant_whatever_tombstones_come(connected_drive, emulator, drive, sync_until_done, tombstones):
    emulator.tombstones = tombstones
    drive.write_file("keep.txt", b"keep")
    drive.seed(n_files=30, n_folders=5, seed=9, folder="Doomed")
    sync_until_done()
    drive.delete("Doomed")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert itemrows.pending_ids(connected_drive.connection_id, folders=False, limit=10) == []


def test_file_deleted_and_recreated_at_the_same_path_in_one_delta(connected_drive, drive, sync_until_done):
    drive.write_file("report.docx", b"version one")
    sync_until_done()
    old_id = drive.item_id("report.docx")
    drive.delete("report.docx")
    drive.write_file("report.docx", b"a brand new file")
    assert drive.item_id("report.docx") != old_id
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_uncopyable_items_are_skipped_and_recorded(connected_drive, drive, sync_until_done):
    drive.write_file("fine.txt", b"fine")
    drive.add_onenote("Notes/My Notebook")
    drive.add_remote_item("Shared with me")
    drive.mark_malware("bad.exe")
    result = sync_until_done()
    assert result.outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert connections.require(connected_drive.connection_id).items_skipped >= 3


def test_file_flagged_as_malware_later_leaves_the_mirror(connected_drive, drive, sync_until_done):
    drive.write_file("later-bad.bin", b"innocent so far")
    sync_until_done()
    drive.mark_malware("later-bad.bin")
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_zero_byte_files_are_written_without_a_download(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("empty.txt", b"")
    drive.write_file("Folder/also-empty", b"")
    sync_until_done()
    assert content_requests(emulator) == []
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # Moved server-side, they keep the empty hash in their metadata (the listing carries none).
    drive.rename("empty.txt", "renamed.txt")
    drive.rename("Folder", "Moved")
    sync_until_done()
    assert content_requests(emulator) == []
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_files_without_any_hash_are_copied_and_not_downloaded_again(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("legacy.doc", b"office edited" * 1000, has_hash=False)
    sync_until_done()
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    before = len(content_requests(emulator))
    drive.rename("legacy.doc", "renamed.doc")
    sync_until_done()
    assert len(content_requests(emulator)) == before
    drive.write_file("renamed.doc", b"new content", has_hash=False)
    sync_until_done()
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_unusual_names_are_mirrored_verbatim(connected_drive, drive, sync_until_done):
    names = ["with space.txt", "hash#tag.txt", "100%.txt", "a+b=c.txt", "emoji 😀.txt", "日本語/ファイル.txt",
             "Ελληνικά.md", "x" * 200 + "/" + "y" * 200 + ".txt"]
    for index, name in enumerate(names):
        drive.write_file(name, f"content {index}".encode())
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_hostile_names_never_escape_the_connection_prefix(connected_drive, drive, sync_until_done):
    drive.write_file("ok.txt", b"ok")
    hostile = ["../escape.txt", "dir/../../escape2.txt", "back\\slash.txt", "ctrl\x01.txt", "dot.", "./here.txt"]
    for name in hostile:
        drive.write_file(name, b"hostile")
    assert sync_until_done().outcome == "done"
    blobs = mirror_contents(connected_drive.connection_id)
    assert "ok.txt" in blobs
    container = storage.files_container()
    every_blob = [b.name for b in container.list_blobs()]
    assert all(name.startswith(connected_drive.connection_id + "/") for name in every_blob)
    for name in blobs:
        assert ".." not in name.split("/") and "\\" not in name and "\x01" not in name and not name.endswith(".")
    assert_mirror_equals_drive(connected_drive.connection_id, drive,
                               except_paths=[p for p in drive.snapshot() if p != "ok.txt"])


@pytest.mark.parametrize("quirk", ["drop_leading_zero", "upper"])
def test_drive_id_quirks_change_nothing(connected_drive, emulator, drive, sync_until_done, quirk):
    emulator.drive_id_quirk = quirk
    drive.write_file("A/b.txt", b"b")
    sync_until_done()
    drive.move("A/b.txt", "c.txt")
    sync_until_done()
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_a_file_changed_between_delta_and_download_ends_with_the_newest_bytes(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("racy.txt", b"first version")
    drive.write_file("calm.txt", b"calm")
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.5, times=1)

    def change_during_download():
        eventually(lambda: content_requests(emulator), timeout=20)
        drive.write_file("racy.txt", b"second version, longer")

    racer = threading.Thread(target=change_during_download)
    racer.start()
    sync_until_done()
    racer.join()
    sync_until_done()  # the notification's sync: the next delta brings the new version
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert itemrows.failed(connected_drive.connection_id) == []


def test_a_file_deleted_between_delta_and_download_is_not_an_error(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("short-lived.txt", b"gone soon")
    drive.write_file("stays.txt", b"stays")
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.5, times=1)

    def delete_during_download():
        eventually(lambda: content_requests(emulator), timeout=20)
        drive.delete("short-lived.txt")

    racer = threading.Thread(target=delete_during_download)
    racer.start()
    assert sync_until_done().outcome == "done"
    racer.join()
    assert connections.require(connected_drive.connection_id).items_failed == 0
    sync_until_done()
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_listing_that_disagrees_with_the_bytes_is_parked_not_accepted(connected_drive, drive, sync_until_done):
    drive.write_file("good.txt", b"good")
    drive.write_file("live-photo.heic", b"real bytes", listed_size=999)
    drive.write_file("bad-hash.jpg", b"jpeg bytes", listed_hash="AAAAAAAAAAAAAAAAAAAAAAAAAAB=")
    result = sync_until_done()
    assert result.outcome == "done"
    parked = {e["item_id"]: e for e in itemrows.failed(connected_drive.connection_id)}
    assert set(parked) == {drive.item_id("live-photo.heic"), drive.item_id("bad-hash.jpg")}
    assert all(e["attempts"] == 1 and e["error"] for e in parked.values())
    assert connections.require(connected_drive.connection_id).items_failed == 2
    assert_mirror_equals_drive(connected_drive.connection_id, drive, except_paths=["live-photo.heic", "bad-hash.jpg"])
    state = syncstate.read(connected_drive.connection_id)
    assert state.phase == syncstate.Phase.IDLE and state.delta_link  # parked items don't hold the drive back
