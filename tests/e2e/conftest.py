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


@dataclass(frozen=True)
class Ports:
    app: int
    emulator: int
    storage: tuple[int, int, int]  # free ones, so that the tests run beside a running stack

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), (free_port(), free_port(), free_port()))


def launch(work: Path, ports: Ports, *extra: str, key: str | None = KEY) -> RunningStack:
    """Start devtools/stack.py as scripts/run does, with its data in `work`; returns once it said
    "Everything is running" (or fails with its output)."""
    # A clean environment: every setting comes from the local.settings.json the stack writes.
    environment = {k: v for k, v in os.environ.items()
                   if k not in DEFAULTS and not k.startswith("AzureWebJobsStorage") and k != "LOCAL_FUNCTION_KEY"}
    if key:
        environment["LOCAL_FUNCTION_KEY"] = key
    command = [sys.executable, "-m", "devtools.stack", "--port", str(ports.app), "--emulator-port", str(ports.emulator),
               "--storage-ports", ",".join(map(str, ports.storage)),
               "--data", str(work / "data"), "--settings", str(work / "local.settings.json"), *extra]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        eventually(lambda: "Everything is running." in "".join(output) or process.poll() is not None, timeout=120)
    except AssertionError:
        stop(process)
        raise AssertionError(f"the stack did not start within 120 s:\n{''.join(output)}") from None
    text = "".join(output)
    if process.poll() is not None:
        raise AssertionError(f"the stack did not start:\n{text}")

    def url(label: str) -> str:
        return re.search(rf"{label}:\s+(\S+)", text).group(1)

    status_url = url("Status page")
    return RunningStack(process, output, url("Connect a OneDrive"), url("Change the drive"), status_url,
                        key or status_url.split("code=", 1)[1])


def stop(process: subprocess.Popen) -> int:
    """What Ctrl-C does; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    return process.returncode


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = launch(tmp_path_factory.mktemp("stack"), Ports.free())
    try:
        yield running
    finally:
        stop(running.process)
