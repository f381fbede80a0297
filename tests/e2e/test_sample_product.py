"""The sample product (examples/product) beside the whole stack (`scripts/run --example`), used
in a real browser (headless chromium over the DevTools protocol): sign in, connect OneDrive
(consent on the emulator's page), choose a folder in the picker, see its files, download one, and
see a change event arrive after a change made on the emulator's drive page. A screenshot of each
step is kept in $SCREENSHOTS_DIR (or the test's temporary folder)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.serving import free_port
from functions.settings import DEFAULTS
from tests.e2e import chromium
from tests.e2e.conftest import KEY, ROOT, stop
from tests.fixtures.waiting import eventually


@pytest.fixture(scope="module")
def example_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("example-stack")
    environment = {k: v for k, v in os.environ.items() if k not in DEFAULTS and not k.startswith("AzureWebJobsStorage")}
    environment["LOCAL_FUNCTION_KEY"] = KEY
    command = [sys.executable, "-m", "devtools.stack", "--port", str(free_port()), "--emulator-port", str(free_port()),
               "--data", str(work / "data"), "--settings", str(work / "local.settings.json"),
               "--example", "--example-port", str(free_port())]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        eventually(lambda: "Everything is running." in "".join(output) or process.poll() is not None, timeout=180)
        text = "".join(output)
        assert process.poll() is None, f"the stack did not start:\n{text}"

        def url(label: str) -> str:
            return re.search(rf"{label}:\s+(\S+)", text).group(1)  # type: ignore[union-attr]

        yield {"product": url("Sample product").rstrip("/"), "emulator": url("Change the drive").rstrip("/"),
               "mirror": url("Connect a OneDrive").removesuffix("/api/connect")}
    finally:
        stop(process)  # what Ctrl-C does


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path) / "sample-product"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_sample_product_connect_pick_list_download_and_live_feed(example_stack, shots):
    from tests.e2e.devtools_protocol import Browser

    chromium.binary()
    product, emulator = example_stack["product"], example_stack["emulator"]
    with Browser() as browser:
        browser.open(product + "/")
        browser.fill("#password", "demo")
        browser.click("form[action='/login'] button")
        browser.wait_for("document.querySelector('#connect') !== null", message="the product's home page")
        browser.screenshot(shots / "1-signed-in.png")

        browser.click("#connect")  # → the product's backend makes a connect session → Microsoft (the emulator)
        browser.wait_for("document.querySelector(\"button[value='accept']\") !== null", message="the consent page")
        browser.screenshot(shots / "2-consent.png")
        browser.click("button[value='accept']")  # → the mirror's callback → the product → the picker

        browser.wait_for("location.pathname === '/api/picker' && document.querySelector('main h1') !== null",
                         timeout=60, message="the picker, right after consent")
        assert "Documents" in browser.text()
        browser.resize(390, 844)  # a phone: nothing wider than the screen
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        browser.screenshot(shots / "3-picker-390px.png")
        browser.resize(1280, 900)
        browser.click("input[aria-label='Share Folder Documents']")
        browser.click("button[value='save']")
        browser.wait_for("document.querySelector('[role=status]') !== null", message="the picker saved")
        browser.screenshot(shots / "4-picked.png")

        browser.click("a[href^='" + product + "']")  # "Done: back to the app"
        def files_listed() -> bool:
            # The sign-in's first sync may have copied the whole drive before the pick: wait until
            # the list is exactly the chosen folder.
            browser.open(product + "/")
            listed = browser.evaluate("[...document.querySelectorAll('#files a')].map(a => a.textContent)")
            return sorted(listed) == ["Documents/Notes/ideas.md", "Documents/Welcome.txt"]
        eventually(files_listed, timeout=90, interval=1, message="the selected folder's files in the product")
        assert "Shared with Acme: Documents" in browser.text()
        browser.screenshot(shots / "5-files.png")

        downloaded = browser.evaluate(
            "fetch('/files/Documents/Welcome.txt').then(async r => ({status: r.status,"
            " disposition: r.headers.get('content-disposition'), body: await r.text()}))")
        assert downloaded["status"] == 200 and "attachment" in downloaded["disposition"]
        assert downloaded["body"] == "Welcome to the OneDrive emulator.\n"

        # A change on the emulator's drive page, in another tab of the same browser.
        feed_before = browser.evaluate("document.querySelectorAll('#feed li').length")
        drive = Browser()
        try:
            drive.open(emulator + "/")
            drive.wait_for("[...document.querySelectorAll('a')].some(a => a.textContent === 'Documents')")
            drive.evaluate("[...document.querySelectorAll('a')].find(a => a.textContent === 'Documents').click()")
            drive.wait_for("document.querySelector('#new-file') !== null && location.search.includes('folder')")
            drive.evaluate("document.getElementById('new-file').click()")
            drive.fill("#editor-name", "from-the-drive-page.txt")
            drive.fill("#editor-content", "written on the drive page")
            drive.evaluate("document.getElementById('editor-save').click()")
            drive.wait_for("document.body.innerText.includes('from-the-drive-page.txt')", message="the new file on the drive page")
            drive.screenshot(shots / "6-drive-page-change.png")
        finally:
            drive.close()

        event = browser.wait_for(
            "[...document.querySelectorAll('#feed li')].map(li => li.textContent)"
            ".find(t => t.includes('Documents/from-the-drive-page.txt'))",
            timeout=90, message="the change event in the live feed")
        assert event.startswith("created")
        assert browser.evaluate("document.querySelectorAll('#feed li').length") > feed_before
        browser.screenshot(shots / "7-live-feed.png")
    for name in ("1-signed-in", "2-consent", "3-picker-390px", "4-picked", "5-files", "6-drive-page-change", "7-live-feed"):
        path = shots / f"{name}.png"
        assert path.stat().st_size > 5_000, f"{path} looks empty"
    (shots / "steps.json").write_text(json.dumps(sorted(p.name for p in shots.glob("*.png"))))
