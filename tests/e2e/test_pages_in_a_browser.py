"""The pages a person sees, rendered by a real browser (headless chromium): the status page, the
mirror browser, and the emulator's consent and drive pages. Screenshots are kept in the test's
temporary folder (or in $SCREENSHOTS_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e import chromium
from tests.e2e.test_whole_stack import connect, wait_until_mirrored
from tests.fixtures.connected import Browser


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def assert_real_screenshot(path: Path) -> None:
    assert chromium.png_size(path) == chromium.WINDOW
    # A blank or error page compresses to a few KB; a rendered page with text and tables doesn't.
    assert path.stat().st_size > 20_000, f"{path} looks empty ({path.stat().st_size} bytes)"


def test_status_page_and_mirror_browser_render_in_chromium(stack, shots):
    chromium.binary()
    connection_id = connect(stack)
    wait_until_mirrored(stack, connection_id, "the initial sync")
    status = f"{stack.app_url}/api/status?code={stack.key}&refresh=off"
    mirror = f"{stack.app_url}/api/status/connections/{connection_id}?folder=Documents&code={stack.key}&refresh=off"

    dom = chromium.dump_dom(status)
    assert "Ada Lovelace" in dom and "ada@example.com" in dom and "Active" in dom
    assert "sync-requests-poison" in dom
    assert_real_screenshot(chromium.screenshot(status, shots / "status.png"))

    dom = chromium.dump_dom(mirror)
    assert "Welcome.txt</a>" in dom and "Notes/</a>" in dom
    assert f"/api/connections/{connection_id}/content?path=Documents%2FWelcome.txt&amp;code=" in dom
    assert_real_screenshot(chromium.screenshot(mirror, shots / "mirror.png"))


def test_emulator_consent_and_drive_pages_render_in_chromium(stack, shots):
    chromium.binary()
    with Browser() as browser:  # /api/connect's redirect leads to the emulator's authorize URL
        redirect = browser.open(stack.connect_url, stop_at=stack.emulator_url)
        authorize = redirect.headers["location"]
    dom = chromium.dump_dom(authorize)
    assert "ada@example.com" in dom or "Ada" in dom
    assert_real_screenshot(chromium.screenshot(authorize, shots / "consent.png"))

    drive_page = stack.drive_page
    dom = chromium.dump_dom(drive_page)
    assert "Documents" in dom
    assert_real_screenshot(chromium.screenshot(drive_page, shots / "drive.png"))
