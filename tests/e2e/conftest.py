"""The whole stack started the way the README says (devtools/stack.py, what scripts/run runs), in
a subprocess on free ports, and reached over HTTP only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devtools.serving import free_port
from functions.settings import DEFAULTS
from tests.fixtures.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-function-key"
DEMO_USER = "ada@example.com"


@dataclass
class RunningStack:
    process: subprocess.Popen
    output: list[str]
    connect_url: str
    drive_page: str
    status_url: str
    key: str

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def app_url(self) -> str:
        parts = urlsplit(self.connect_url)  # {app}/api/status/connect?code=...: a fresh connect session per visit
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def emulator_url(self) -> str:
        return self.drive_page.rstrip("/")

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.app_url, headers={"x-functions-key": self.key}, timeout=30)

    def control(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        """The emulator's HTTP control API, for the demo user's drive."""
        url = f"{self.emulator_url}/_emulator/users/{DEMO_USER}{endpoint}"
        response = httpx.request(method, url, json=body, timeout=30)
        assert response.status_code < 300, f"{method} {endpoint}: {response.status_code} {response.text}"
        return response.json()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    work = tmp_path_factory.mktemp("stack")
    # A clean environment: every setting comes from the local.settings.json the stack writes.
    environment = {k: v for k, v in os.environ.items()
                   if k not in DEFAULTS and not k.startswith("AzureWebJobsStorage")}
    environment["LOCAL_FUNCTION_KEY"] = KEY
    command = [sys.executable, "-m", "devtools.stack", "--port", str(free_port()), "--emulator-port", str(free_port()),
               "--data", str(work / "data"), "--settings", str(work / "local.settings.json")]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        eventually(lambda: "Everything is running." in "".join(output) or process.poll() is not None, timeout=120)
        text = "".join(output)
        assert process.poll() is None, f"the stack did not start:\n{text}"

        def url(label: str) -> str:
            return re.search(rf"{label}:\s+(\S+)", text).group(1)

        yield RunningStack(process, output, url("Connect a OneDrive"), url("Change the drive"), url("Status page"), KEY)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
