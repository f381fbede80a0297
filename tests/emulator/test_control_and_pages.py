"""The control API, the drive page, Graph's plain reads, and the standalone command."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from urllib.parse import quote

import httpx
import pytest

from devtools.emulator.content import quick_xor_hash

from .helpers import Hook, all_delta_pages, echo, graph_client, wait_for
from .test_subscriptions import subscribe


@pytest.fixture
def control(emulator):
    with httpx.Client(base_url=emulator.control_url) as client:
        yield client


def test_control_api_drives_a_drive_end_to_end(emulator, control):
    user = control.post("/users", json={"email": "grace@example.com", "display_name": "Grace Hopper"}).json()
    drive = f"/users/{user['email']}/drive"
    assert control.post(drive + "/folders", json={"path": "Docs/Sub"}).status_code == 201
    assert control.post(drive + "/files", json={"path": "Docs/a.txt", "content": "hello"}).status_code == 201
    raw = base64.b64encode(b"\x00\x01binary").decode()
    control.post(drive + "/files", json={"path": "Docs/b.bin", "content_base64": raw})
    control.post(drive + "/files", json={"path": "big.bin", "size": 5_000_000, "seed": 9})
    control.post(drive + "/move", json={"from": "Docs/a.txt", "to": "Other/a.txt"})
    control.post(drive + "/rename", json={"path": "Other/a.txt", "name": "renamed.txt"})
    control.post(drive + "/delete", json={"path": "Docs/Sub"})
    control.post(drive + "/onenote", json={"path": "Notebook"})
    control.post(drive + "/malware", json={"path": "bad.exe"})
    assert control.post(drive + "/seed", json={"n_files": 50, "n_folders": 5, "seed": 2}).json() == {"files": 50}
    snapshot = control.get(drive + "/snapshot").json()
    assert snapshot["Other/renamed.txt"] == [5, quick_xor_hash(b"hello")]
    assert snapshot["Docs/b.bin"][0] == 8 and "big.bin" in snapshot and "bad.exe" not in snapshot
    assert len(snapshot) == 3 + 50
    assert control.get(drive + "/content", params={"path": "Other/renamed.txt"}).content == b"hello"
    assert control.post(drive + "/move", json={"from": "missing", "to": "x"}).status_code == 400
    assert control.get("/users/nobody@example.com").status_code == 404
    paths = {i["path"] for i in control.get(drive + "/items").json()}
    assert {"", "Docs", "Other/renamed.txt", "Notebook"} <= paths


def test_control_api_options_faults_logs_and_breakage(emulator, emulator_user, control):
    assert control.patch("/options", json={"delta_page_size": 2, "delta_order": "shuffled"}).json()["delta_page_size"] == 2
    assert emulator.delta_page_size == 2 and emulator.delta_order == "shuffled"
    assert control.patch("/options", json={"no_such_option": 1}).status_code == 400
    fault = control.post("/faults", json={"path": "/me$", "status": 429, "retry_after": "3", "times": 1}).json()
    assert fault["status"] == 429 and len(control.get("/faults").json()) == 1
    with graph_client(emulator) as graph:
        assert graph.get("/me").status_code == 429
        assert control.get("/faults").json() == []  # used up
        link = graph.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
        control.post(f"/users/{emulator_user.id}/expire-delta-tokens")
        assert graph.get(link).status_code == 410
        control.post(f"/users/{emulator_user.id}/revoke-consent")
        assert graph.get("/me").status_code == 401
    assert any(e["path"] == "/v1.0/me" and e["status"] == 429 for e in control.get("/requests").json())
    control.delete("/requests")
    assert control.get("/requests").json() == []
    summary = control.get("").json()
    assert summary["graph_base_url"] == emulator.graph_base_url and summary["users"][0]["id"] == emulator_user.id


def test_control_api_subscriptions_and_deliveries(emulator, emulator_user, control):
    hook = Hook(echo)
    try:
        emulator.notification_debounce = 5
        with graph_client(emulator) as graph:
            subscription_id = subscribe(graph, hook.url).json()["id"]
        control.post(f"/users/{emulator_user.id}/drive/files", json={"path": "a.txt", "content": "x"})
        control.post("/notifications/flush")
        assert len(hook.notifications) == 1
        kinds = [d["kind"] for d in control.get("/deliveries").json()]
        assert kinds == ["validation", "notification"]
        assert control.get("/subscriptions").json()[0]["id"] == subscription_id
        control.post(f"/subscriptions/{subscription_id}/expire")
        assert control.get("/subscriptions").json() == []
    finally:
        hook.close()


def test_drive_page_is_a_product_page(emulator, emulator_user):
    drive = emulator_user.drive
    drive.write_file("Documents/report.txt", b"hello")
    drive.add_onenote("Notebook")
    home = httpx.get(emulator.base_url + "/", follow_redirects=True)
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    for text in ("<style>", "OneDrive", "Documents", "Notebook", "OneNote", "New folder", "Upload", emulator_user.email):
        assert text in home.text
    folder = httpx.get(emulator.base_url + "/drive", params={"user": emulator_user.id, "folder": drive.item_id("Documents")})
    assert "report.txt" in folder.text and "Rename" in folder.text and "Delete" in folder.text
    emulator.add_user("grace@example.com", "Grace Hopper")
    accounts = httpx.get(emulator.base_url + "/")
    assert "grace@example.com" in accounts.text and "Add account" in accounts.text


def test_graph_plain_reads(emulator, emulator_user):
    drive = emulator_user.drive
    for index in range(5):
        drive.write_file(f"Docs/f{index}.txt", b"x" * index)
    with graph_client(emulator) as graph:
        me = graph.get("/me").json()
        assert me["id"] == emulator_user.id and me["userPrincipalName"] == "ada@example.com"
        info = graph.get("/me/drive").json()
        assert info["id"] == drive.id and info["driveType"] == "personal" and info["quota"]["used"] == 10
        assert graph.get(f"/drives/{drive.id}").json()["id"] == drive.id
        root = graph.get("/me/drive/root").json()
        assert root["root"] == {} and root["folder"]["childCount"] == 1
        item = graph.get(f"/me/drive/items/{quote(drive.item_id('Docs/f3.txt'))}").json()
        assert item["parentReference"]["path"] == "/drive/root:/Docs"  # outside delta only
        assert item["file"]["hashes"]["quickXorHash"] == quick_xor_hash(b"xxx")
        children, url = [], f"/me/drive/items/{quote(drive.item_id('Docs'))}/children?$top=2"
        while url:
            body = graph.get(url).json()
            children += [c["name"] for c in body["value"]]
            url = body.get("@odata.nextLink")
        assert children == [f"f{i}.txt" for i in range(5)]
        assert graph.get("/me/drive/items/NOPE!1").json()["error"]["code"] == "itemNotFound"
        other = emulator.add_user("eve@example.com", "Eve")
        assert graph.get(f"/drives/{other.drive_id}/root").status_code == 403
    with graph_client(emulator, scope="User.Read") as no_files:
        assert no_files.get("/me/drive").status_code == 403


def test_drive_changes_from_python_show_in_delta_and_snapshot(emulator, emulator_user):
    drive = emulator_user.drive
    drive.write_file("a.txt", b"1")
    drive.write_file("a.txt", b"22")  # update: new eTag/cTag/hash, same id
    assert drive.read("a.txt") == b"22"
    assert drive.snapshot() == {"a.txt": (2, quick_xor_hash(b"22"))}
    with graph_client(emulator) as graph:
        pages, _ = all_delta_pages(graph)
    items = {i["name"]: i for page in pages for i in page}
    assert items["a.txt"]["size"] == 2 and items["a.txt"]["id"] == drive.item_id("a.txt")


def test_standalone_command_prints_urls_and_serves(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulator", "--port", "0", "--demo"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        lines: list[str] = []
        wait_for(lambda: lines.append(process.stdout.readline()) or "Ctrl+C" in lines[-1], timeout=20, what="the banner")
        graph_line = next(line for line in lines if line.startswith("graph:"))
        base = graph_line.split()[1].rsplit("/v1.0", 1)[0]
        users = httpx.get(base + "/_emulator/users").json()
        assert users[0]["email"] == "ada@example.com"
        items = httpx.get(f"{base}/_emulator/users/{users[0]['id']}/drive/snapshot").json()
        assert "Documents/Welcome.txt" in items
    finally:
        process.terminate()
        process.wait(timeout=10)
