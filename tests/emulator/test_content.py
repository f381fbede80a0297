"""Content downloads against microsoft.md §4 and sync-scenarios.md 10, 16, 17, 22."""

from __future__ import annotations

import base64
import tracemalloc
from urllib.parse import quote, urlsplit

import httpx
import pytest
import quickxorhash

from devtools.emulator.content import BLOCK_SIZE, GeneratedContent, quick_xor_hash

from .helpers import graph_client


@pytest.fixture
def graph(emulator, emulator_user):
    with graph_client(emulator) as client:
        yield client


def content_url(graph: httpx.Client, item_id: str) -> str:
    response = graph.get(f"/me/drive/items/{quote(item_id)}/content")
    assert response.status_code == 302, response.text
    return response.headers["location"]


def test_content_redirects_to_another_origin_that_needs_no_auth(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("Docs/a.txt", b"hello world")
    location = content_url(graph, item_id)
    assert urlsplit(location).netloc != urlsplit(emulator.base_url).netloc
    listed = graph.get(f"/me/drive/items/{quote(item_id)}").json()
    assert listed["@microsoft.graph.downloadUrl"].split("/download/")[0] == location.split("/download/")[0]
    response = httpx.get(location)
    assert response.status_code == 200 and response.content == b"hello world"
    assert response.headers["accept-ranges"] == "bytes"
    # A Graph bearer token does not belong on the pre-authenticated origin.
    assert httpx.get(location, headers=graph.headers).status_code == 401
    # Following redirects, httpx drops the header across origins: the download works.
    assert graph.get(f"/me/drive/items/{quote(item_id)}/content", follow_redirects=True).content == b"hello world"


def test_content_by_path(emulator, emulator_user, graph):
    emulator_user.drive.write_file("My Docs/a #1.txt", b"path")
    response = graph.get("/me/drive/root:/My Docs/a #1.txt:/content".replace("#", "%23"))
    assert response.status_code == 302
    assert httpx.get(response.headers["location"]).content == b"path"


@pytest.mark.parametrize(
    "range_header, expected, content_range",
    [
        ("bytes=6-", b"world", "bytes 6-10/11"),
        ("bytes=0-4", b"hello", "bytes 0-4/11"),
        ("bytes=-3", b"rld", "bytes 8-10/11"),
        ("bytes=6-100", b"world", "bytes 6-10/11"),
    ],
)
def test_range_gives_206_with_content_range(emulator, emulator_user, graph, range_header, expected, content_range):
    location = content_url(graph, emulator_user.drive.write_file("a.txt", b"hello world"))
    response = httpx.get(location, headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-range"] == content_range


def test_unsatisfiable_range_is_416(emulator, emulator_user, graph):
    location = content_url(graph, emulator_user.drive.write_file("a.txt", b"hello"))
    response = httpx.get(location, headers={"Range": "bytes=5-"})
    assert response.status_code == 416 and response.headers["content-range"] == "bytes */5"


def test_ignore_range_switch_answers_200_with_everything(emulator, emulator_user, graph):
    location = content_url(graph, emulator_user.drive.write_file("a.txt", b"hello world"))
    emulator.ignore_range = True
    response = httpx.get(location, headers={"Range": "bytes=6-"})
    assert response.status_code == 200 and response.content == b"hello world"
    assert "content-range" not in response.headers


def test_download_urls_expire(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("a.txt", b"x")
    location = content_url(graph, item_id)
    emulator.expire_download_urls()
    assert httpx.get(location).status_code == 401
    assert httpx.get(content_url(graph, item_id)).status_code == 200  # a fresh URL works
    emulator.download_url_lifetime = 0
    assert httpx.get(content_url(graph, item_id)).status_code == 401


def test_tampered_download_url_is_refused(emulator, emulator_user, graph):
    location = content_url(graph, emulator_user.drive.write_file("a.txt", b"x"))
    assert httpx.get(location.replace("/download/W", "/download/X")).status_code == 401


def test_deleted_item_is_404_on_graph_and_on_an_old_url(emulator, emulator_user, graph):
    drive = emulator_user.drive
    item_id = drive.write_file("a.txt", b"x")
    location = content_url(graph, item_id)
    drive.delete("a.txt")
    response = graph.get(f"/me/drive/items/{quote(item_id)}/content")
    assert response.status_code == 404 and response.json()["error"]["code"] == "itemNotFound"
    assert httpx.get(location).status_code == 404
    assert graph.get(f"/me/drive/items/{quote(item_id)}").status_code == 404


def test_changed_file_serves_new_bytes_on_an_old_url(emulator, emulator_user, graph):
    drive = emulator_user.drive
    item_id = drive.write_file("a.txt", b"version 1")
    listed = graph.get(f"/me/drive/items/{quote(item_id)}").json()
    drive.write_file("a.txt", b"version 2!")
    body = httpx.get(listed["@microsoft.graph.downloadUrl"]).content
    assert body == b"version 2!"
    assert quick_xor_hash(body) != listed["file"]["hashes"]["quickXorHash"]


def test_malware_is_403_and_onenote_cant_be_downloaded(emulator, emulator_user, graph):
    drive = emulator_user.drive
    malware = graph.get(f"/me/drive/items/{quote(drive.mark_malware('bad.exe'))}/content")
    assert malware.status_code == 403 and malware.json()["error"]["code"] == "malwareDetected"
    notebook = graph.get(f"/me/drive/items/{quote(drive.add_onenote('Notebook'))}/content")
    assert notebook.status_code == 503
    folder = graph.get(f"/me/drive/items/{quote(drive.create_folder('F'))}/content")
    assert folder.status_code == 400


def test_listed_hash_can_disagree_with_the_bytes(emulator, emulator_user, graph):
    drive = emulator_user.drive
    item_id = drive.write_file("live.jpg", b"real bytes", listed_hash=quick_xor_hash(b"other"), listed_size=99)
    listed = graph.get(f"/me/drive/items/{quote(item_id)}").json()
    assert listed["size"] == 99 and listed["file"]["hashes"]["quickXorHash"] == quick_xor_hash(b"other")
    assert drive.snapshot()["live.jpg"] == (10, quick_xor_hash(b"real bytes"))


@pytest.mark.parametrize("size", [0, 1, 8, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17])
def test_generated_content_hash_matches_its_bytes(size):
    content = GeneratedContent(size=size, seed=11)
    assert content.quick_xor_hash() == quick_xor_hash(content.read())


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_one_gib_file_served_with_range_while_memory_stays_flat(emulator, emulator_user, graph):
    size = 1 << 30
    item_id = emulator_user.drive.write_file("big.bin", size=size, seed=7)
    listed = graph.get(f"/me/drive/items/{quote(item_id)}").json()
    assert listed["size"] == size
    location = content_url(graph, item_id)

    rss_before = _rss_kib()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        hasher = quickxorhash.quickxorhash()
        received = 0
        with httpx.stream("GET", location, headers={"Range": "bytes=0-"}, timeout=60) as response:
            assert response.status_code == 206
            assert response.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
            for chunk in response.iter_raw(1 << 20):
                hasher.update(chunk)
                received += len(chunk)
        tail = httpx.get(location, headers={"Range": f"bytes={size - 1000}-"})
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    rss_growth = _rss_kib() - rss_before

    assert received == size
    assert base64.b64encode(hasher.digest()).decode() == listed["file"]["hashes"]["quickXorHash"]
    assert tail.status_code == 206 and len(tail.content) == 1000
    assert tail.content == GeneratedContent(size=size, seed=7).read_range(size - 1000, size)
    print(f"\n1 GiB served: traced peak {peak / 1e6:.1f} MB, RSS growth {rss_growth / 1024:.1f} MiB")
    assert peak < 32 * 1024 * 1024, f"traced memory peak {peak} bytes"
    assert rss_growth < 64 * 1024, f"RSS grew by {rss_growth} KiB"
