"""Graph addressing and reads beyond delta: /me/drives, shared folders, item-relative paths, /beta,
and the switches for /content without a redirect and per-request latency."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pytest

from .helpers import graph_client


@pytest.fixture
def graph(emulator, emulator_user):
    with graph_client(emulator) as client:
        yield client


def test_me_drives_lists_the_one_personal_drive(emulator, emulator_user, graph):
    body = graph.get("/me/drives").json()
    assert [d["id"] for d in body["value"]] == [emulator_user.drive_id]
    assert body["value"][0]["driveType"] == "personal" and body["@odata.context"].endswith("#drives")
    assert graph.get("/drives").json()["value"][0]["id"] == emulator_user.drive_id


def test_a_shared_folder_resolves_in_the_drive_that_shares_it(emulator, emulator_user, graph):
    shortcut_id = emulator_user.drive.add_remote_item("Shared with me")
    listed = graph.get("/me/drive/root/children").json()["value"]
    remote = next(i for i in listed if i["id"] == shortcut_id)["remoteItem"]
    owner_drive, folder_id = remote["parentReference"]["driveId"], remote["id"]
    assert owner_drive != emulator_user.drive_id and remote["folder"]["childCount"] == 1
    assert remote["shared"]["owner"]["user"]["displayName"]

    children = graph.get(f"/drives/{owner_drive}/items/{quote(folder_id)}/children")
    assert children.status_code == 200, children.text
    (notes,) = children.json()["value"]
    assert notes["name"] == "Shared notes.txt" and notes["parentReference"]["driveId"] == owner_drive
    content = graph.get(f"/drives/{owner_drive}/items/{quote(notes['id'])}/content", follow_redirects=True)
    assert content.status_code == 200 and content.content.startswith(b"Shared by")
    # Only what is shared: the sharer's root, and their drive itself, stay closed.
    assert graph.get(f"/drives/{owner_drive}/root/children").status_code == 403
    assert graph.get(f"/drives/{owner_drive}").status_code == 403


def test_item_relative_paths(emulator, emulator_user, graph):
    drive = emulator_user.drive
    drive.write_file("Docs/Sub/a b.txt", b"relative")
    docs = quote(drive.item_id("Docs"))
    base = f"/drives/{drive.id}/items/{docs}:"
    item = graph.get(f"{base}/Sub/a b.txt:")
    assert item.status_code == 200 and item.json()["id"] == drive.item_id("Docs/Sub/a b.txt")
    assert [c["name"] for c in graph.get(f"{base}/Sub:/children").json()["value"]] == ["a b.txt"]
    content = graph.get(f"/me/drive/items/{docs}:/Sub/a%20b.txt:/content")
    assert content.status_code == 302 and httpx.get(content.headers["location"]).content == b"relative"
    missing = graph.get(f"{base}/Sub/nope.txt:")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "itemNotFound"


def test_beta_answers_like_v1(emulator, emulator_user, graph):
    beta = str(graph.base_url).replace("/v1.0", "/beta")
    response = graph.get(f"{beta}/me/drive")
    assert response.status_code == 200 and response.json()["id"] == emulator_user.drive_id


def test_content_without_a_redirect_switch(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("a.txt", b"hello world")
    assert graph.get(f"/me/drive/items/{quote(item_id)}/content").status_code == 302  # the default
    emulator.content_redirect = False
    whole = graph.get(f"/me/drive/items/{quote(item_id)}/content")
    assert whole.status_code == 200 and whole.content == b"hello world" and "location" not in whole.headers
    part = graph.get(f"/me/drive/items/{quote(item_id)}/content", headers={"Range": "bytes=6-"})
    assert part.status_code == 206 and part.content == b"world"


def test_authorization_on_the_download_host_is_refused_unless_allowed(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("a.txt", b"x")
    location = graph.get(f"/me/drive/items/{quote(item_id)}/content").headers["location"]
    assert httpx.get(location, headers=graph.headers).status_code == 401
    emulator.allow_auth_on_download = True  # for clients older than the rule (rclone < 1.67)
    assert httpx.get(location, headers=graph.headers).content == b"x"


def test_request_latency_switch_delays_every_request(emulator, emulator_user, graph):
    item_id = emulator_user.drive.write_file("a.txt", b"x")
    emulator.request_latency = 0.2
    emulator.request_log.clear()  # the sign-in before this was not delayed
    started = time.monotonic()
    location = graph.get(f"/me/drive/items/{quote(item_id)}/content").headers["location"]
    assert httpx.get(location).content == b"x"
    assert time.monotonic() - started >= 0.4  # Graph's answer and the download's, each delayed
    logged = emulator.requests
    assert [e["host"] for e in logged] == ["api", "download"]
    assert all(e["duration"] is None or e["duration"] >= 0.2 for e in logged)  # None: still streaming
