"""A restarted emulator with the same data folder continues where it stopped (issue 17 #2), and a
consent page sent twice is answered as what happened (issue 17 #7)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from devtools.emulator import Emulator

from .helpers import Hook, all_delta_pages, authorize, echo, pkce_pair, sign_in, wait_for
from .test_subscriptions import in_minutes

ROOT = Path(__file__).resolve().parents[2]


def started(data_dir: Path) -> Emulator:
    emu = Emulator(data_dir=data_dir)
    emu.notification_debounce = 0.05
    emu.allow_http_notification_urls = True  # the test's webhook is local http
    return emu.start()


@pytest.fixture
def hook():
    endpoint = Hook(echo)
    yield endpoint
    endpoint.close()


def listing(emu: Emulator, user_id: str) -> dict[str, tuple]:
    drive = emu.user_by_id(user_id).drive
    with drive.lock:
        return {item.id: (drive.path_of(item), item.kind, item.etag, item.quick_xor_hash()) for item in drive.walk()}


def test_a_restart_keeps_users_drives_tokens_and_subscriptions(tmp_path, hook):
    first = started(tmp_path)
    try:
        user = first.add_user("ada@example.com", "Ada Lovelace")
        drive = user.drive
        drive.write_file("Docs/a.txt", b"hello")
        drive.write_file("Docs/big.bin", size=3_000_000, seed=5)
        drive.seed(n_files=20, n_folders=3, seed=2)
        drive.rename("Docs/a.txt", "renamed.txt")
        drive.write_file("gone.txt", b"bye")
        drive.delete("gone.txt")
        drive.add_remote_item("Shared")  # its folder lives in the sharer's drive, kept too
        tokens = sign_in(first)
        graph = httpx.Client(base_url=first.graph_base_url, headers={"Authorization": f"Bearer {tokens['access_token']}"})
        subscription = graph.post("/subscriptions", json={
            "changeType": "updated", "notificationUrl": hook.url, "resource": "me/drive/root",
            "expirationDateTime": in_minutes(4000), "clientState": "kept-state",
        })
        assert subscription.status_code == 201, subscription.text
        _, delta_link = all_delta_pages(graph)
        before = listing(first, user.id)
    finally:
        first.stop()

    second = started(tmp_path)
    try:
        assert [u.id for u in second.users] == [user.id] and second.users[0].drive_id == user.drive_id
        assert listing(second, user.id) == before
        restored = second.user_by_id(user.id).drive
        assert restored.read("Docs/renamed.txt") == b"hello"
        assert restored.snapshot()["Docs/big.bin"] == (3_000_000, drive.snapshot()["Docs/big.bin"][1])
        assert restored.get(drive.root_id) is not None
        shortcut = restored.find("Shared")
        assert second.drive_by_id(shortcut.remote["drive_id"]).find("Shared/Shared notes.txt") is not None
        # The same access token, against the restarted Graph (its port differs).
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        graph = httpx.Client(base_url=second.graph_base_url, headers=headers)
        assert graph.get("/me").json()["id"] == user.id
        listed = graph.get("/subscriptions").json()["value"]
        assert [s["id"] for s in listed] == [subscription.json()["id"]]
        # The refresh token too.
        refreshed = httpx.post(f"{second.authority}/oauth2/v2.0/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
            "client_id": second.client_id, "client_secret": second.client_secret,
        })
        assert refreshed.status_code == 200, refreshed.text
        # The subscription hears a change made after the restart.
        restored.write_file("after restart.txt", b"new")
        wait_for(lambda: hook.notifications, what="a notification after the restart")
        entry = json.loads(hook.notifications[-1].body)["value"][0]
        assert entry["subscriptionId"] == subscription.json()["id"] and entry["clientState"] == "kept-state"
        # The old deltaLink continues: only what changed after it.
        old_link = delta_link.replace(first.graph_base_url, second.graph_base_url)
        pages, _ = all_delta_pages(graph, old_link)
        names = {i.get("name") for page in pages for i in page}
        assert "after restart.txt" in names and "big.bin" not in names
        # Download URLs of the restarted emulator serve the kept bytes.
        file_id = restored.item_id("Docs/renamed.txt")
        location = graph.get(f"/me/drive/items/{quote(file_id)}/content").headers["location"]
        assert httpx.get(location).content == b"hello"
    finally:
        second.stop()


def test_changes_are_saved_while_running_not_only_at_stop(tmp_path):
    emu = started(tmp_path)
    try:
        user = emu.add_user()
        user.drive.write_file("a.txt", b"x")
        state_file = tmp_path / "state.json"
        wait_for(lambda: state_file.exists() and "a.txt" in state_file.read_text(), what="the state saved")
        assert oct(state_file.stat().st_mode & 0o777) == "0o600"  # it holds tokens
    finally:
        emu.stop()


def test_without_a_data_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    emu = Emulator().start()
    try:
        emu.add_user().drive.write_file("a.txt", b"x")
    finally:
        emu.stop()
    assert list(tmp_path.iterdir()) == []


def run_demo(data_dir: Path, *extra: str) -> str:
    """Start the standalone emulator with --demo, read its banner, stop it: -> the demo user's line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulator", "--port", "0", "--demo", "--data", str(data_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        wait_for(lambda: lines.append(process.stdout.readline()) or "Ctrl+C" in lines[-1], timeout=30, what="the banner")
    finally:
        process.terminate()  # SIGTERM: what the stack sends; the emulator saves before it exits
        process.wait(timeout=30)
    return next(line for line in lines if line.startswith("demo user:"))


def test_the_demo_user_survives_a_restart_of_the_command_and_reset_forgets_it(tmp_path):
    user_id = re.compile(r"\(id (\w+), drive (\w+)\)")
    first = run_demo(tmp_path)
    second = run_demo(tmp_path)
    assert user_id.search(first).groups() == user_id.search(second).groups()
    assert "kept from" in second and "kept from" not in first
    third = run_demo(tmp_path, "--reset")
    assert user_id.search(third).group(1) != user_id.search(first).group(1)


def consent_form(emu: Emulator) -> tuple[str, dict]:
    _, challenge = pkce_pair()
    page = authorize(emu, challenge)
    assert page.status_code == 200, page.text
    action = re.search(r"<form method='post' action='([^']+)'", page.text).group(1)
    request_id = re.search(r"name='request' value='([^']+)'", page.text).group(1)
    return action, {"request": request_id, "user": emu.users[0].id}


@pytest.mark.parametrize("first_answer, said", [("accept", "you accepted it"), ("deny", "you declined it")])
def test_a_consent_page_sent_again_says_it_was_already_answered(emulator, emulator_user, first_answer, said):
    action, form = consent_form(emulator)
    first = httpx.post(action, data={**form, "action": first_answer})
    assert first.status_code == 302
    again = httpx.post(action, data={**form, "action": "accept"})
    assert again.status_code == 400 and "location" not in again.headers
    text = again.text
    assert "already answered" in text and said in text
    assert "expired" not in text and "app registration" not in text
    assert "start from there" in text


def test_an_unknown_consent_request_is_still_expired(emulator, emulator_user):
    action, form = consent_form(emulator)
    response = httpx.post(action, data={**form, "request": "no-such-request", "action": "accept"})
    assert response.status_code == 400 and "AADSTS90015" in response.text
