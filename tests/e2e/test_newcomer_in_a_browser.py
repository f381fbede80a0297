"""What a newcomer does in a real browser (headless chromium over the DevTools protocol): connect
through the link the stack prints (and the 127.0.0.1 one), come back after a restart, open the
status page with a stale key, work the drive page with the keyboard only, and look at every
page on a phone. Screenshots go to the test's temporary folder (or $SCREENSHOTS_DIR)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from tests.e2e import cdp, chromium
from tests.e2e.conftest import DEMO_USER, Ports, RunningStack, launch, stop
from tests.e2e.test_whole_stack import connect, mirror_of, wait_until_mirrored
from tests.fixtures.waiting import eventually

PHONE_WIDTH = 390


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser():
    chromium.binary()  # skips where chromium is not installed
    with cdp.Browser() as opened:
        yield opened


def connect_in(browser: cdp.Browser, link: str) -> str:
    """Open a connect link, press Accept on the consent page; the final page's text."""
    browser.goto(link)
    browser.wait_for("!!document.querySelector('button[value=accept]')", message=f"no consent page: {browser.text()[:500]}")
    browser.evaluate("document.querySelector('button[value=accept]').focus()")
    browser.press("Enter")  # what a keyboard user does on the consent page
    browser.wait_for("document.readyState === 'complete' && document.body.innerText.includes('OneDrive')"
                     " && !document.querySelector('button[value=accept]')", message="the sign-in did not finish")
    return browser.text()


def the_connection(stack: RunningStack) -> list[dict]:
    with stack.api() as api:
        return [c for c in api.get("/api/connections").json()["connections"] if c["account"]["email"] == DEMO_USER]


def test_the_127_0_0_1_connect_link_works(stack, browser):
    link = stack.connect_url.replace("localhost", "127.0.0.1")
    assert "127.0.0.1" in link
    text = connect_in(browser, link)
    assert "OneDrive connected" in text, text
    assert [c["state"] for c in the_connection(stack)] == ["active"]


def test_a_wrong_key_gets_a_page_that_says_where_the_key_is(stack, browser):
    browser.goto(f"{stack.app_url}/api/status?code=left-from-yesterday")
    text = browser.text()
    assert "Function key needed" in text and "wrong" in text and "scripts/run" in text and stack.key not in text
    answer = httpx.get(f"{stack.app_url}/api/connections", headers={"x-functions-key": "wrong"})
    assert answer.status_code == 401 and "x-functions-key" in answer.json()["error"]["message"]
    assert httpx.get(f"{stack.app_url}/api/no-such-thing").json()["error"]["code"] == "not_found"


def _drive_folder_url(stack: RunningStack, folder: str) -> str:
    user = httpx.get(f"{stack.emulator_url}/_emulator/users/{DEMO_USER}").json()
    [item] = [i for i in stack.control("GET", "/drive/items") if i["path"] == folder]
    return f"{stack.emulator_url}/drive?user={user['id']}&folder={item['id']}"


def test_the_drive_page_row_actions_are_visible_and_work_from_the_keyboard(stack, browser, shots):
    stack.control("POST", "/drive/files", {"path": "Keyboard/one byte.txt", "content": "1"})
    stack.control("POST", "/drive/folders", {"path": "Keyboard/Archive"})
    browser.goto(_drive_folder_url(stack, "Keyboard"))
    assert "1 byte" in browser.text() and "1 bytes" not in browser.text()

    reached = []
    for _ in range(40):  # Tab through the page as a keyboard user does, no mouse, no hover
        browser.press("Tab")
        focused = browser.evaluate("""(() => { const e = document.activeElement, s = getComputedStyle(e);
            return {label: e.getAttribute('aria-label') || e.textContent.trim(),
                    visible: s.visibility === 'visible' && e.offsetWidth > 0 && e.offsetHeight > 0}; })()""")
        reached.append(focused)
        if focused["label"] == "Delete one byte.txt":
            break
    labels = [f["label"] for f in reached]
    for action in ("Rename", "Move", "Delete"):
        assert f"{action} one byte.txt" in labels and f"{action} Archive" in labels, labels
    assert "Edit one byte.txt" in labels
    assert all(f["visible"] for f in reached if f["label"].endswith(("one byte.txt", "Archive"))), reached

    # Move, by keyboard: go back to "Move one byte.txt", Enter, pick the folder from the list.
    browser.press("Tab", shift=True)
    assert browser.evaluate("document.activeElement.getAttribute('aria-label')") == "Move one byte.txt"
    browser.press("Enter")
    browser.wait_for("document.getElementById('mover').open", message="the Move dialog did not open")
    chromium_shot = browser.screenshot(shots / "drive-move-dialog.png")
    assert chromium_shot.stat().st_size > 5_000
    options = browser.evaluate("[...document.querySelectorAll('#mover-folder option')].map(o => o.value)")
    assert "Keyboard/Archive" in options and "Keyboard" not in options  # not where it already is
    assert browser.evaluate("document.activeElement.id") == "mover-folder"
    for _ in range(len(options)):
        if browser.evaluate("document.getElementById('mover-folder').value") == "Keyboard/Archive":
            break
        browser.press("ArrowDown")
    browser.press("Tab")
    browser.press("Tab")
    assert browser.evaluate("document.activeElement.textContent") == "Move here"
    browser.press("Enter")
    eventually(lambda: "Keyboard/Archive/one byte.txt" in stack.control("GET", "/drive/snapshot"), timeout=20,
               message="the file was not moved into the chosen folder")


def test_every_page_fits_a_phone_without_sideways_scrolling(stack, browser, shots):
    connection_id = connect(stack)
    stack.control("POST", "/drive/files", {"path": "A folder with a rather long name/and a file name that goes on and on"
                                                    " and on until it has to wrap somewhere.txt", "content": "x"})
    wait_until_mirrored(stack, connection_id, "a long name")
    browser.viewport(PHONE_WIDTH)
    pages = {
        "status": f"{stack.app_url}/api/status?code={stack.key}&refresh=off",
        "mirror": f"{stack.app_url}/api/status/connections/{connection_id}?code={stack.key}&refresh=off",
        "drive": _drive_folder_url(stack, "A folder with a rather long name"),
        "drive-root": stack.drive_page,
        "wrong-key": f"{stack.app_url}/api/status?code=wrong",
    }
    overflowing = {}
    for name, url in pages.items():
        browser.goto(url)
        assert browser.evaluate("innerWidth") == PHONE_WIDTH
        browser.screenshot(shots / f"phone-{name}.png")
        if browser.horizontal_overflow() > 0:
            overflowing[name] = browser.horizontal_overflow()
    assert overflowing == {}, f"wider than {PHONE_WIDTH} px by: {overflowing} (screenshots in {shots})"


def test_connect_restart_and_the_same_connection_is_still_active_and_syncing(tmp_path, browser, shots):
    """Needs the emulator to keep its users, drives, tokens and subscriptions in --data across a
    restart (the emulator's persistence, built beside this): before it, the restarted emulator has
    a new demo user and no subscription, and this test fails at the last step."""
    ports = Ports.free()
    first = launch(tmp_path, ports, key=None)  # the key the stack keeps in --data, as scripts/run does
    try:
        assert "OneDrive connected" in connect_in(browser, first.connect_url.replace("localhost", "127.0.0.1"))
        [connection] = the_connection(first)
        wait_until_mirrored(first, connection["id"], "the initial sync")
    finally:
        assert stop(first.process) == 0, first.text[-3000:]

    second = launch(tmp_path, ports, key=None)  # at once, on the same ports: TIME-WAIT must not stop it
    try:
        assert second.key == first.key  # a status tab left open keeps working
        browser.goto(second.status_url + "&refresh=off")
        text = browser.text()
        browser.screenshot(shots / "status-after-restart.png")
        assert text.count("Ada Lovelace") == 1 and "Active" in text, text
        assert [c["id"] for c in the_connection(second)] == [connection["id"]]

        content = base64.b64encode(b"written after the restart").decode()
        second.control("POST", "/drive/files", {"path": "After restart.txt", "content_base64": content})
        mirrored = wait_until_mirrored(second, connection["id"], "a change after the restart")
        assert "After restart.txt" in mirrored
        assert [c["state"] for c in the_connection(second)] == ["active"]
        assert "After restart.txt" in mirror_of(second, connection["id"])
    finally:
        stop(second.process)
