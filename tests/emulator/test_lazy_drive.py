"""A lazily seeded drive (`Drive.seed_lazily`): the same protocol as a drive of real items, with
no item held in memory, frozen."""

from __future__ import annotations

import base64

import httpx
import pytest
import quickxorhash

from devtools.emulator import DriveError
from devtools.emulator.lazy import FANOUT
from devtools.emulator.services.render import item_json

from .helpers import all_delta_pages, graph_client

FILES = 2_345
FOLDERS = 37


@pytest.fixture
def graph(emulator, emulator_user):
    emulator_user.drive.seed_lazily(n_files=FILES, n_folders=FOLDERS, seed=5, max_size=300)
    with graph_client(emulator) as client:
        yield client


def test_a_full_enumeration_pages_through_every_item_once_parents_first(emulator, emulator_user, graph):
    emulator.delta_page_size = 200
    emulator.options.delta_repeat_ancestors = False
    pages, delta_link = all_delta_pages(graph)
    items = [item for page in pages for item in page]
    assert len(pages) >= FILES // 200
    assert len(items) == len({item["id"] for item in items}) == 1 + FOLDERS + FILES
    seen: set[str] = set()
    for item in items:
        if "root" not in item:
            assert item["parentReference"]["id"] in seen, "a parent comes before its children"
        seen.add(item["id"])
    assert sum("file" in item for item in items) == FILES
    assert delta_link.startswith(f"{emulator.graph_base_url}/me/drive/root/delta?token=")
    assert graph.get(delta_link).json()["value"] == []  # nothing changes in a frozen drive
    assert len(emulator_user.drive.items.kept) == 1  # the root: every other item is made when asked for


def test_its_items_look_like_a_written_drive_s_and_download_their_listed_bytes(emulator, emulator_user, graph):
    pages, _ = all_delta_pages(graph)
    listed = [item for page in pages for item in page]
    files = [item for item in listed if "file" in item]
    folder = next(item for item in listed if "folder" in item and "root" not in item)
    other = emulator.add_user(email="bob@example.com", display_name="Bob")
    written = other.drive.get(other.drive.write_file("Docs/plain.bin", b"x" * 10))
    assert set(files[0]) == set(item_json(emulator.state, other.drive, written, in_delta=True))
    assert set(folder) == set(item_json(emulator.state, other.drive, other.drive.find("Docs"), in_delta=True))
    sample = [item for item in files[:: len(files) // 20] if item["size"]]  # zero bytes: listed without a hash
    for item in sample:
        response = httpx.get(item["@microsoft.graph.downloadUrl"], follow_redirects=False)
        assert response.status_code == 200
        assert len(response.content) == item["size"]
        digest = quickxorhash.quickxorhash()
        digest.update(response.content)
        assert base64.b64encode(digest.digest()).decode() == item["file"]["hashes"]["quickXorHash"]
    top = graph.get("/me/drive/root/children").json()["value"]
    assert len(top) == min(FANOUT, FOLDERS)
    path = f"{top[0]['name']}"
    assert graph.get(f"/me/drive/root:/{path}").json()["id"] == top[0]["id"]


def test_the_same_seed_makes_the_same_drive_and_it_cannot_change(emulator, emulator_user, graph):
    again = emulator.add_user(email="eve@example.com", display_name="Eve")
    again.drive.seed_lazily(n_files=FILES, n_folders=FOLDERS, seed=5, max_size=300)
    assert emulator_user.drive.snapshot() == again.drive.snapshot()
    assert len(emulator_user.drive.snapshot()) == FILES
    for change in (lambda d: d.write_file("new.txt", b"x"), lambda d: d.create_folder("New"),
                   lambda d: d.delete(next(iter(d.snapshot()))), lambda d: d.seed(n_files=1)):
        with pytest.raises(DriveError):
            change(emulator_user.drive)
