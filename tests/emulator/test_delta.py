"""Delta against microsoft.md §3 and sync-scenarios.md 1-9, 14, 21."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from devtools.emulator.content import ZERO_HASH

from .helpers import all_delta_pages, graph_client


@pytest.fixture
def graph(emulator, emulator_user):
    with graph_client(emulator) as client:
        yield client


def latest_state(pages: list[list[dict]]) -> dict[str, dict]:
    state: dict[str, dict] = {}
    for page in pages:
        for item in page:
            state[item["id"]] = item
    return state


def test_full_enumeration_pages_to_a_delta_link_and_lists_every_item(emulator, emulator_user, graph):
    drive = emulator_user.drive
    for index in range(7):
        drive.write_file(f"Docs/Sub/f{index}.txt", f"file {index}".encode())
    emulator.delta_page_size = 3
    pages, delta_link = all_delta_pages(graph)
    assert len(pages) >= 3
    state = latest_state(pages)
    assert {item.get("name") for item in state.values()} >= {"root", "Docs", "Sub"} | {f"f{i}.txt" for i in range(7)}
    for item in state.values():
        assert "path" not in item["parentReference"]  # never in delta
        assert item["parentReference"]["driveType"] == "personal"
        if "folder" in item:
            assert item["folder"]["childCount"] == 0
    assert "!" in drive.item_id("Docs/Sub/f0.txt")
    assert delta_link.startswith(f"{emulator.graph_base_url}/me/drive/root/delta?token=")


def test_a_next_link_asked_for_again_serves_the_same_page(emulator, emulator_user, graph):
    for index in range(6):
        emulator_user.drive.write_file(f"f{index}.txt", b"x")
    emulator.delta_page_size = 2
    emulator.options.delta_empty_pages = False
    first = graph.get("/me/drive/root/delta").json()
    link = first["@odata.nextLink"]
    once = graph.get(link).json()
    again = graph.get(link).json()
    assert [i["id"] for i in again["value"]] == [i["id"] for i in once["value"]]
    assert again["@odata.nextLink"] == once["@odata.nextLink"]


def test_ancestors_are_repeated_on_every_page(emulator, emulator_user, graph):
    for index in range(6):
        emulator_user.drive.write_file(f"A/B/f{index}.txt", b"x")
    emulator.delta_page_size = 2
    pages, _ = all_delta_pages(graph)
    folder_b = emulator_user.drive.item_id("A/B")
    pages_with_b = [p for p in pages if any(i["id"] == folder_b for i in p)]
    assert len(pages_with_b) >= 3


def test_token_latest_returns_no_items_then_only_changes(emulator, emulator_user, graph):
    drive = emulator_user.drive
    drive.write_file("old.txt", b"old")
    body = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()
    assert body["value"] == [] and "@odata.nextLink" not in body
    drive.write_file("Docs/new.txt", b"new")
    pages, _ = all_delta_pages(graph, body["@odata.deltaLink"])
    names = {i.get("name") for i in latest_state(pages).values()}
    assert "new.txt" in names and "Docs" in names and "old.txt" not in names


def test_shuffled_order_can_put_children_before_parents(emulator, emulator_user, graph):
    for index in range(30):
        emulator_user.drive.write_file(f"F{index % 5}/G/file{index}.txt", b"x")
    emulator.delta_order = "shuffled"
    emulator.delta_seed = 3
    emulator.delta_repeat_ancestors = False
    pages, _ = all_delta_pages(graph)
    order = [item["id"] for page in pages for item in page]
    position = {item_id: index for index, item_id in enumerate(order)}
    items = latest_state(pages)
    early_children = [
        i for i in items.values() if "parentReference" in i and i["parentReference"].get("id") in position
        and position[i["id"]] < position[i["parentReference"]["id"]]
    ]
    assert early_children, "no child came before its parent"
    assert len(items) == 1 + 5 + 5 + 30


def test_children_first_order(emulator, emulator_user, graph):
    emulator_user.drive.write_file("P/Q/leaf.txt", b"x")
    emulator.delta_order = "children_first"
    pages, _ = all_delta_pages(graph)
    names = [item["name"] for item in pages[0]]
    assert names.index("leaf.txt") < names.index("Q") < names.index("P") < names.index("root")


def test_empty_page_mid_enumeration(emulator, emulator_user, graph):
    for index in range(5):
        emulator_user.drive.write_file(f"f{index}.txt", b"x")
    emulator.delta_page_size = 2
    emulator.delta_empty_pages = True
    pages, _ = all_delta_pages(graph)
    assert [] in pages[1:-1], "no empty page before the last one"
    assert len(latest_state(pages)) == 6


def test_item_changed_mid_enumeration_comes_again_and_last_state_wins(emulator, emulator_user, graph):
    drive = emulator_user.drive
    for index in range(6):
        drive.write_file(f"f{index}.txt", b"first")
    emulator.delta_page_size = 2
    emulator.delta_repeat_ancestors = False
    first = graph.get("/me/drive/root/delta").json()
    sent = {i["id"] for i in first["value"]}
    changed = next(i for i in first["value"] if i.get("name", "").startswith("f"))
    drive.write_file(changed["name"], b"second version")
    pages, delta_link = all_delta_pages(graph, first["@odata.nextLink"])
    later = [i for page in pages for i in page if i["id"] == changed["id"]]
    assert later and later[-1]["size"] == len(b"second version")
    assert changed["id"] in sent
    # The deltaLink starts at the enumeration's start: the change comes once more; nothing is lost.
    again, _ = all_delta_pages(graph, delta_link)
    assert changed["id"] in latest_state(again)


def test_tombstones_have_no_name_size_or_ctag_a_zero_hash_and_a_root_parent(emulator, emulator_user, graph):
    drive = emulator_user.drive
    file_id = drive.write_file("Deep/Er/gone.txt", b"bye")
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    drive.delete("Deep/Er/gone.txt")
    pages, _ = all_delta_pages(graph, link)
    tombstone = latest_state(pages)[file_id]
    assert tombstone["deleted"] == {"state": "deleted"}
    assert not {"name", "size", "cTag"} & set(tombstone)
    assert tombstone["file"]["hashes"]["quickXorHash"] == ZERO_HASH
    assert tombstone["parentReference"]["id"] == drive.root_id


@pytest.mark.parametrize("mode", ["all", "partial", "folder_only"])
def test_folder_delete_tombstones_children_first_and_maybe_only_some(emulator, emulator_user, graph, mode):
    drive = emulator_user.drive
    ids = [drive.write_file(f"Gone/f{index}.txt", b"x") for index in range(20)]
    folder_id = drive.item_id("Gone")
    emulator.tombstones = mode
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    drive.delete("Gone")
    pages, _ = all_delta_pages(graph, link)
    order = [i["id"] for page in pages for i in page if "deleted" in i]
    children = [i for i in order if i in ids]
    assert order[-1] == folder_id  # children first, then the folder
    expected = {"all": (20, 20), "partial": (1, 19), "folder_only": (0, 0)}[mode]
    assert expected[0] <= len(children) <= expected[1]


def test_folder_move_reports_the_folder_alone(emulator, emulator_user, graph):
    drive = emulator_user.drive
    child_ids = {drive.write_file(f"Old/f{index}.txt", b"x") for index in range(3)}
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    folder_id = drive.move("Old", "Archive/New")
    pages, _ = all_delta_pages(graph, link)
    state = latest_state(pages)
    assert state[folder_id]["name"] == "New"
    assert state[folder_id]["parentReference"]["id"] == drive.item_id("Archive")
    assert not child_ids & set(state)


def test_recreated_folder_has_a_new_id(emulator, emulator_user):
    drive = emulator_user.drive
    first = drive.create_folder("Same")
    drive.delete("Same")
    assert drive.create_folder("Same") != first


def test_expired_delta_token_is_410_with_location(emulator, emulator_user, graph):
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    emulator.expire_delta_tokens(emulator_user)
    response = graph.get(link)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "resyncRequired"
    assert response.headers["location"] == f"{emulator.graph_base_url}/me/drive/root/delta"
    assert graph.get(response.headers["location"]).status_code == 200


def test_expired_next_link_is_410(emulator, emulator_user, graph):
    for index in range(3):
        emulator_user.drive.write_file(f"f{index}", b"x")
    emulator.delta_page_size = 1
    next_link = graph.get("/me/drive/root/delta").json()["@odata.nextLink"]
    emulator.expire_delta_tokens(emulator_user)
    assert graph.get(next_link).status_code == 410


@pytest.mark.parametrize("token", ["not-a-token!!", "eyJrIjoieiJ9", quote("{}")])
def test_malformed_delta_token_is_400(emulator, emulator_user, graph, token):
    response = graph.get("/me/drive/root/delta", params={"token": token})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalidRequest"


def test_select_is_baked_into_links_and_top_sets_the_page_size(emulator, emulator_user, graph):
    for index in range(5):
        emulator_user.drive.write_file(f"f{index}.txt", b"x")
    emulator.delta_repeat_ancestors = False
    first = graph.get("/me/drive/root/delta", params={"$select": "id,name,deleted", "$top": "2"}).json()
    assert all(set(i) <= {"id", "name", "deleted"} for i in first["value"])
    pages, _ = all_delta_pages(graph, first["@odata.nextLink"])
    assert all(set(i) <= {"id", "name", "deleted"} for page in pages for i in page)
    assert len(first["value"]) == 2 and all(len(page) <= 2 for page in pages)


def test_function_style_links_work(emulator, emulator_user, graph):
    emulator.delta_link_style = "function"
    emulator.delta_page_size = 1
    emulator_user.drive.write_file("a.txt", b"x")
    body = graph.get("/me/drive/root/delta").json()
    assert "/delta(token='" in body["@odata.nextLink"]
    pages, delta_link = all_delta_pages(graph, body["@odata.nextLink"])
    assert "/delta(token='" in delta_link


def test_drives_path_and_drive_id_quirks(emulator, emulator_user, graph):
    drive = emulator_user.drive
    assert drive.id.startswith("0")
    drive.write_file("a.txt", b"x")
    emulator.drive_id_quirk = "drop_leading_zero"
    short = drive.id[1:].upper()
    pages, delta_link = all_delta_pages(graph, f"/drives/{short}/root/delta")
    assert all(i["parentReference"]["driveId"] == drive.id[1:] for page in pages for i in page)
    assert f"/drives/{short}/root/delta" in delta_link
    emulator.drive_id_quirk = "upper"
    item = graph.get(f"/me/drive/items/{quote(drive.item_id('a.txt'))}").json()
    assert item["parentReference"]["driveId"] == drive.id.upper()


def test_special_items_in_delta(emulator, emulator_user, graph):
    drive = emulator_user.drive
    ids = {
        "empty": drive.write_file("empty.txt", b""),
        "nohash": drive.write_file("old.doc", b"office", has_hash=False),
        "onenote": drive.add_onenote("Notebook"),
        "remote": drive.add_remote_item("Shared"),
        "malware": drive.mark_malware("x.exe"),
    }
    state = latest_state(all_delta_pages(graph)[0])
    assert state[ids["empty"]]["file"]["hashes"] == {}
    assert state[ids["nohash"]]["file"]["hashes"] == {}
    assert state[ids["onenote"]]["package"] == {"type": "oneNote"} and "file" not in state[ids["onenote"]]
    assert "remoteItem" in state[ids["remote"]]
    assert "malware" in state[ids["malware"]]
    assert set(drive.snapshot()) == {"empty.txt", "old.doc"}


def test_folder_delta_only_covers_that_folder(emulator, emulator_user, graph):
    drive = emulator_user.drive
    drive.write_file("In/a.txt", b"x")
    drive.write_file("Out/b.txt", b"x")
    folder = quote(drive.item_id("In"))
    pages, _ = all_delta_pages(graph, f"/me/drive/items/{folder}/delta")
    names = {i.get("name") for i in latest_state(pages).values()}
    assert "a.txt" in names and "b.txt" not in names


def test_hundred_thousand_items_enumerate(emulator, emulator_user, graph):
    emulator_user.drive.seed(n_files=100_000, n_folders=0, folder="Big")  # one folder, 100,000 children
    emulator.delta_repeat_ancestors = False
    ids: set[str] = set()
    url = "/me/drive/root/delta?$top=1000&$select=id,name"
    while True:
        body = graph.get(url).json()
        ids.update(i["id"] for i in body["value"])
        if "@odata.deltaLink" in body:
            break
        url = body["@odata.nextLink"]
    assert len(ids) == 100_000 + 2


# ----- the real service's rules (issue 19, "Emulator: the real behaviour by default") ---------------


def test_id_only_tombstones_switch(emulator, emulator_user, graph):
    drive = emulator_user.drive
    file_id = drive.write_file("Docs/gone.txt", b"bye")
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    emulator.id_only_tombstones = True
    drive.delete("Docs/gone.txt")
    pages, _ = all_delta_pages(graph, link)
    assert latest_state(pages)[file_id] == {"id": file_id, "deleted": {}}


def test_a_dropped_tombstone_never_reaches_delta(emulator, emulator_user, graph):
    drive = emulator_user.drive
    lost = drive.write_file("Docs/lost.txt", b"1")
    kept = drive.write_file("Docs/kept.txt", b"2")
    link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
    fault = emulator.faults.inject(kind="drop_tombstone", path=r"lost\.txt$", times=1)
    drive.delete("Docs/lost.txt")
    drive.delete("Docs/kept.txt")
    pages, link = all_delta_pages(graph, link)
    state = latest_state(pages)
    assert lost not in state and state[kept]["deleted"] == {"state": "deleted"}
    assert fault.fired == 1 and emulator.faults.rules == []
    assert drive.find("Docs/lost.txt") is None  # gone from the drive all the same
    full = latest_state(all_delta_pages(graph)[0])
    assert lost not in full  # only a full enumeration's absence tells
    assert graph.get("/me").status_code == 200  # not an HTTP fault


ITEM_ID = re.compile(r"^(?P<drive>[0-9A-F]{16})!s[0-9a-f]{32}$")


def test_item_ids_have_the_2025_form_and_the_drive_id_case_differs_from_parent_references(emulator, emulator_user, graph):
    drive = emulator_user.drive
    file_id = drive.write_file("Docs/a.txt", b"x")
    for item_id in (drive.root_id, drive.item_id("Docs"), file_id):
        match = ITEM_ID.match(item_id)
        assert match and match.group("drive") == drive.id.upper()
    item = graph.get(f"/me/drive/items/{quote(file_id)}").json()
    reference = item["parentReference"]
    assert reference["driveId"] == drive.id and reference["driveId"] != item["id"].split("!")[0]
    assert reference["driveId"] == item["id"].split("!")[0].lower()
    emulator.parent_id_drive_case = "lower"
    reference = graph.get(f"/me/drive/items/{quote(file_id)}").json()["parentReference"]
    assert reference["id"] != drive.item_id("Docs") and reference["id"].lower() == drive.item_id("Docs").lower()
    emulator.item_id_style = "legacy"
    assert re.fullmatch(r"[0-9A-F]{16}!\d+", drive.write_file("old-style.txt", b"x"))
