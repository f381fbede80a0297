"""A selection per connection, through the real API and the emulator: only the selected part of
the drive is enumerated and mirrored, and the mirror equals that part after every step."""

from __future__ import annotations

import json

import pytest

from functions import storage
from functions.settings import reload_settings
from tests.fixtures.connected import connect_drive
from tests.fixtures.mirror import mirror_contents


def events(connection_id: str) -> list[dict]:
    queue = storage.queue(storage.Queues.EVENTS)
    found = []
    while batch := list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300)):
        found += [json.loads(m.content) for m in batch]
        for message in batch:
            queue.delete_message(message)
    return [e for e in found if e["connectionId"] == connection_id]


def selected_part(drive, prefixes=(), files=(), *, strip: str = "") -> dict[str, tuple[int, str]]:
    """What the mirror must hold: the drive's files under the selected folders, and the selected files."""
    wanted = {}
    for path, value in drive.snapshot().items():
        if path in files or any(path.startswith(prefix.rstrip("/") + "/") for prefix in prefixes):
            wanted[path[len(strip):] if strip else path] = value
    return wanted


def assert_mirror_is(connection_id: str, expected: dict[str, tuple[int, str]]) -> None:
    found = mirror_contents(connection_id)
    actual = {path: (size, digest) for path, (size, digest, _) in found.items()}
    assert actual == expected, (
        f"mirror differs from the selection: missing={sorted(set(expected) - set(actual))[:10]} "
        f"extra={sorted(set(actual) - set(expected))[:10]}")


@pytest.fixture
def api(app_server):
    with app_server.client(timeout=30) as client:
        yield client


@pytest.fixture
def select(api, connected_drive):
    def put(body: dict, *, status: int = 200) -> dict:
        response = api.put(f"/api/connections/{connected_drive.connection_id}/selection", json=body)
        assert response.status_code == status, response.text
        return response.json()

    return put


class Calls:
    """Graph calls the emulator saw since `mark()`."""

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        self.start = 0

    def mark(self) -> None:
        self.start = len(self.emulator.requests)

    def since(self) -> list[dict]:
        return [r for r in self.emulator.requests[self.start:] if r["host"] == "api"]

    def downloads(self) -> list[dict]:
        return [r for r in self.since() if r["path"].endswith("/content")]

    def root_deltas(self) -> list[dict]:
        return [r for r in self.since() if "/root/delta" in r["path"]]


@pytest.fixture
def calls(emulator) -> Calls:
    return Calls(emulator)


def seed_two_folders(drive) -> None:
    for index in range(3):
        drive.write_file(f"Work/Project/doc{index}.txt", f"doc {index}".encode())
    drive.write_file("Work/Project/Deep/notes.md", b"notes")
    drive.write_file("Work/other.txt", b"not selected")
    drive.write_file("Photos/a.jpg", size=20_000, seed=1)
    drive.write_file("Photos/b.jpg", size=30_000, seed=2)
    drive.write_file("top.txt", b"top")


def test_selected_folder_only_its_files_are_mirrored_and_the_drive_is_not_enumerated(
        connected_drive, drive, calls, select, api, sync_until_done):
    seed_two_folders(drive)
    answer = select({"items": [{"id": drive.item_id("Work/Project")}]})
    assert answer["mode"] == "items" and answer["items"][0]["path"] == "Work/Project" and answer["applied"] is False
    calls.mark()
    assert sync_until_done().outcome == "done"
    assert_mirror_is(connected_drive.connection_id, selected_part(drive, ["Work/Project"]))
    assert calls.root_deltas() == [], "the whole drive was enumerated"
    created = sorted(e["path"] for e in events(connected_drive.connection_id) if e["type"] == "created")
    assert created == ["Work/Project/Deep/notes.md", "Work/Project/doc0.txt", "Work/Project/doc1.txt", "Work/Project/doc2.txt"]
    shown = api.get(f"/api/connections/{connected_drive.connection_id}/selection").json()
    assert shown["applied"] is True and shown["items"][0]["id"] == drive.item_id("Work/Project")

    # A change outside the selection costs no enumeration and changes nothing.
    drive.write_file("Photos/c.jpg", b"new photo")
    calls.mark()
    assert sync_until_done().outcome == "done"
    assert calls.downloads() == [] and calls.root_deltas() == []
    assert len(calls.since()) == 2  # the selected folder read, and its delta
    assert_mirror_is(connected_drive.connection_id, selected_part(drive, ["Work/Project"]))


def test_moves_into_and_out_of_the_selected_folder(connected_drive, drive, select, sync_until_done):
    seed_two_folders(drive)
    drive.write_file("Inbox/Batch/one.txt", b"one")
    drive.write_file("Inbox/Batch/Sub/two.txt", b"two")
    select({"items": [{"id": drive.item_id("Work/Project")}]})
    sync_until_done()
    cid = connected_drive.connection_id
    events(cid)

    drive.move("Photos/a.jpg", "Work/Project/a.jpg")  # a file moves in
    drive.move("Inbox/Batch", "Work/Project/Batch")  # a folder with a subtree moves in
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Work/Project"]))
    assert "Work/Project/Batch/Sub/two.txt" in mirror_contents(cid)

    drive.move("Work/Project/doc0.txt", "Work/doc0.txt")  # out, into a folder above the selection
    drive.move("Work/Project/Batch", "Inbox/Batch")  # a folder moves out
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Work/Project"]))
    deleted = sorted(e["path"] for e in events(cid) if e["type"] == "deleted")
    assert "Work/Project/doc0.txt" in deleted and "Work/Project/Batch/Sub/two.txt" in deleted


def test_rename_of_the_selected_folder_and_of_a_folder_above_it_moves_blobs_without_downloads(
        connected_drive, drive, calls, select, sync_until_done):
    seed_two_folders(drive)
    select({"items": [{"id": drive.item_id("Work/Project")}]})
    sync_until_done()
    cid = connected_drive.connection_id
    drive.rename("Work/Project", "Renamed")
    calls.mark()
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Work/Renamed"]))
    assert calls.downloads() == []
    drive.rename("Work", "Job")  # outside the selection, but its path is part of the mirror's
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Job/Renamed"]))
    assert calls.downloads() == []


def test_deselecting_removes_and_keep_leaves_the_files(connected_drive, drive, emulator, select, sync_until_done):
    seed_two_folders(drive)
    cid = connected_drive.connection_id
    select({"items": [{"id": drive.item_id("Work/Project")}, {"path": "/Photos"}]})
    sync_until_done()
    assert_mirror_is(cid, selected_part(drive, ["Work/Project", "Photos"]))
    events(cid)

    select({"items": [{"id": drive.item_id("Photos")}]})
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Photos"]))
    deleted = sorted((e["path"], e.get("reason")) for e in events(cid) if e["type"] == "deleted")
    assert deleted == [(path, "unselected") for path in
                       ["Work/Project/Deep/notes.md", "Work/Project/doc0.txt", "Work/Project/doc1.txt", "Work/Project/doc2.txt"]]

    before = selected_part(drive, ["Photos"])
    select({"items": [{"id": drive.item_id("Work/Project")}], "deselected": "keep"})
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, {**before, **selected_part(drive, ["Work/Project"])})
    drive.write_file("Photos/late.jpg", b"after deselection")  # no longer followed
    sync_until_done()
    assert "Photos/late.jpg" not in mirror_contents(cid)

    # Kept means kept: a full enumeration's sweep (here after a dead delta link) leaves them too.
    emulator.expire_delta_tokens(connected_drive.user)
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, {**before, **selected_part(drive, ["Work/Project"])})


def test_a_file_selected_inside_an_unselected_folder(connected_drive, drive, select, sync_until_done):
    seed_two_folders(drive)
    cid = connected_drive.connection_id
    select({"items": [{"id": drive.item_id("Work/other.txt")}]})
    sync_until_done()
    assert_mirror_is(cid, selected_part(drive, files=["Work/other.txt"]))
    drive.write_file("Work/other.txt", b"new bytes")
    drive.write_file("Work/sibling.txt", b"not selected")
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, files=["Work/other.txt"]))
    assert [e["type"] for e in events(cid)] == ["created", "updated"]
    drive.rename("Work", "Job")
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, files=["Job/other.txt"]))
    drive.delete("Job/other.txt")
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, {})


def test_back_to_the_whole_drive_and_to_a_folder_again(connected_drive, drive, select, api, sync_until_done):
    seed_two_folders(drive)
    cid = connected_drive.connection_id
    sync_until_done()
    assert_mirror_is(cid, drive.snapshot())
    select({"items": [{"id": drive.item_id("Photos")}]})
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, selected_part(drive, ["Photos"]))
    select({"mode": "drive"})
    assert sync_until_done().outcome == "done"
    assert_mirror_is(cid, drive.snapshot())
    assert select({"mode": "drive"})["applied"] is False  # the same again: taken up by the next sync
    sync_until_done()
    assert api.get(f"/api/connections/{cid}/selection").json()["applied"] is True


def test_the_file_pickers_result_is_accepted_as_it_is(connected_drive, drive, select, sync_until_done):
    seed_two_folders(drive)
    picked = {  # the shape OneDrive File Picker v8 posts back for "pick"
        "command": "pick",
        "items": [{"id": drive.item_id("Photos"), "name": "Photos", "parentReference": {"driveId": drive.id.upper()},
                   "@sharePoint.endpoint": "https://api.onedrive.com/v1.0", "folder": {"childCount": 2}}],
    }
    assert select(picked)["items"][0]["kind"] == "folder"
    sync_until_done()
    assert_mirror_is(connected_drive.connection_id, selected_part(drive, ["Photos"]))


@pytest.mark.parametrize("body, code", [
    ({"items": [{"id": "NOPE!999"}]}, "item_not_found"),
    ({"items": [{"id": "X!1", "parentReference": {"driveId": "ffffffffffffffff"}}]}, "item_on_another_drive"),
    ({"items": []}, "invalid_items"),
    ({"items": [{"path": "/Work/../Photos"}]}, "invalid_items"),
    ({"mode": "appFolder"}, "invalid_mode"),
    ({"mode": "drive", "deselected": "sometimes"}, "invalid_deselected"),
    ([1, 2], "invalid_body"),
])
def test_bad_selections_are_refused_and_change_nothing(connected_drive, drive, select, api, body, code):
    seed_two_folders(drive)
    select({"items": [{"id": drive.item_id("Photos")}]})
    response = api.put(f"/api/connections/{connected_drive.connection_id}/selection", json=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text
    shown = api.get(f"/api/connections/{connected_drive.connection_id}/selection").json()
    assert [i["path"] for i in shown["items"]] == ["Photos"]


def test_not_json_is_refused(connected_drive, api):
    response = api.put(f"/api/connections/{connected_drive.connection_id}/selection", content=b"{nope")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


@pytest.fixture
def app_folder_scopes(monkeypatch, app_settings):
    monkeypatch.setenv("ONEDRIVE_SCOPES", "Files.ReadWrite.AppFolder offline_access User.Read")
    reload_settings()
    yield
    reload_settings()


def test_app_folder_mode_mirrors_the_app_folder_and_nothing_else(app_folder_scopes, app_server, emulator,
                                                                 emulator_user, api):
    from devtools.emulator.addressing import APP_FOLDER_NAME
    from functions.sync import engine
    from functions.tokens import vault

    vault.forget_cached_tokens()
    drive = emulator_user.drive
    seed_two_folders(drive)
    drive.write_file(f"Apps/{APP_FOLDER_NAME}/state.json", b"{}")
    drive.write_file(f"Apps/{APP_FOLDER_NAME}/exports/2026.csv", b"a,b\n1,2\n")
    drive.write_file("Apps/Another app/secret.txt", b"not ours")
    connected = connect_drive(app_server, emulator, emulator_user)
    cid = connected.connection_id
    assert engine.run(cid).outcome == "done"
    base = f"Apps/{APP_FOLDER_NAME}/"
    assert_mirror_is(cid, selected_part(drive, [base], strip=base))
    shown = api.get(f"/api/connections/{cid}/selection").json()
    assert shown["mode"] == "appFolder" and shown["fixed"] is True
    assert api.put(f"/api/connections/{cid}/selection", json={"mode": "drive"}).status_code == 409

    drive.write_file(f"Apps/{APP_FOLDER_NAME}/exports/2027.csv", b"c")
    drive.move(f"Apps/{APP_FOLDER_NAME}/state.json", "Work/state.json")  # out of the app's sight
    drive.write_file("top.txt", b"changed outside")
    assert engine.run(cid).outcome == "done"
    assert_mirror_is(cid, selected_part(drive, [base], strip=base))

    # The connection's token really sees nothing else: Graph (the emulator) refuses it.
    from functions.errors import Forbidden
    from functions.microsoft.graph import GraphClient

    graph = GraphClient(cid, vault.token_source(cid))
    for address in ("/me/drive/root/delta", "/me/drive/root:/Work:", f"/me/drive/items/{drive.item_id('top.txt')}"):
        with pytest.raises(Forbidden):
            graph.item(address)
    assert graph.item("/me/drive/special/approot").item.name == APP_FOLDER_NAME


def test_app_folder_connection_is_polled_not_subscribed(app_folder_scopes, app_server, emulator, emulator_user):
    """Graph refuses a subscription to a Files.ReadWrite.AppFolder token (personal drives need
    Files.ReadWrite): none is tried, none is missed, and maintenance polls the connection instead."""
    from datetime import timedelta

    from functions import connections
    from functions.tokens import vault
    from functions.upkeep import maintenance

    vault.forget_cached_tokens()
    connected = connect_drive(app_server, emulator, emulator_user)
    cid = connected.connection_id
    connection = connections.require(cid)
    assert not connection.subscription_id and not connection.subscription_error
    assert [s for s in emulator.notifier.subscriptions.values() if s.creator_id == emulator_user.id] == []

    now = connections.utcnow()
    assert maintenance.needs(maintenance.RENEW, connection, now, timedelta(days=1)) is None
    synced = connections.require(cid)
    assert maintenance.needs(maintenance.SAFETY_SYNC, synced, now, timedelta(days=1)) is None  # just connected
    later = now + maintenance.APP_FOLDER_POLL_AGE + timedelta(minutes=1)
    assert maintenance.needs(maintenance.SAFETY_SYNC, synced, later, timedelta(days=1)) is not None


def test_a_dead_delta_link_re_enumerates_the_selection_only_and_sweeps(connected_drive, drive, emulator, calls, select,
                                                                       sync_until_done):
    seed_two_folders(drive)
    cid = connected_drive.connection_id
    select({"items": [{"id": drive.item_id("Work/Project")}, {"id": drive.item_id("top.txt")}]})
    sync_until_done()
    storage.files_container().upload_blob(f"{cid}/Work/Project/stray.txt", b"not from the drive")
    drive.write_file("Work/Project/new.txt", b"new")
    emulator.expire_delta_tokens(connected_drive.user)
    calls.mark()
    assert sync_until_done().outcome == "done"
    assert calls.root_deltas() == []
    assert_mirror_is(cid, selected_part(drive, ["Work/Project"], files=["top.txt"]))
