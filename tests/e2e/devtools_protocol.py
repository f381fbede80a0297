"""Headless chromium driven over the DevTools protocol: navigate, run script in the page, click,
take screenshots. A person's browser, step by step (cookies, redirects, the page's own script)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import chromium


class PageError(AssertionError):
    pass


class Browser:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        import websocket

        self._profile = tempfile.TemporaryDirectory(prefix="chromium-cdp-", ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [chromium.binary(), *chromium.FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = self._endpoint()
        port = re.search(r":(\d+)/", endpoint).group(1)  # type: ignore[union-attr]
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"]
        self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.resize(width, height)

    def _endpoint(self) -> str:
        deadline = time.monotonic() + 30
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("chromium did not open its DevTools endpoint")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self.socket.recv())
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise PageError(f"{method}: {answer['error']}")
                return dict(answer.get("result") or {})

    def resize(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=width < 600)

    def evaluate(self, expression: str, *, wait: bool = True) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=wait, returnByValue=True)
        if "exceptionDetails" in result:
            raise PageError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                            f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_loaded()

    def wait_loaded(self, timeout: float = 30) -> None:
        time.sleep(0.2)  # let a navigation start before asking whether the document is ready
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def wait_for(self, condition: str, timeout: float = 30, message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(condition)
                if last:
                    return last
            except PageError:
                pass  # mid-navigation
            time.sleep(0.2)
        raise AssertionError(f"not reached within {timeout} s: {message or condition} (page: {self.url()})")

    def click(self, selector: str) -> None:
        """Click an element and wait for the page it leads to (if any) to finish loading."""
        found = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                              f" if (!e) return false; e.click(); return true; }})()")
        if not found:
            raise PageError(f"no {selector} on {self.url()}")
        self.wait_loaded()

    def fill(self, selector: str, value: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")

    def url(self) -> str:
        try:
            return str(self.evaluate("location.href"))
        except PageError:
            return "?"

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
            # Chromium's helper processes can still be writing the profile as the main one exits:
            # a leftover temp directory is not a failure of the page under test.
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
