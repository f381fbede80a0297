"""rclone, a OneDrive client written by others that works against the real service, run against the
emulator through mitmproxy (issue 19, "A real client checks the emulator"). When they disagree, the
emulator is wrong.

rclone has Microsoft's hosts built in; mitmproxy (tests/conformance/proxy_addon.py) sends those to
the emulator and refuses every other host, and rclone trusts the proxy's CA (``--ca-cert``).
mitmproxy lives in its own virtualenv (.venv-mitmproxy, made on first use from
requirements-proxy.txt): on Python 3.11 its pins (h11 0.14, cryptography < 44.1) conflict with the
app's own (httpcore needs h11 0.16; cryptography 50).

Two allowances for rclone 1.60's age (Debian 12), both switches on the emulator rather than a
weaker default: ``drive_type = business`` makes it read quickXorHash (1.60 reads SHA1 on personal
drives, which OneDrive Personal stopped listing in 2023), and ``allow_auth_on_download`` lets its
Authorization header onto the download host (the real service refuses it; rclone 1.67 stopped
sending it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.emulator import Emulator, User
from devtools.serving import free_port
from tests.emulator.helpers import get_code, redeem

ROOT = Path(__file__).resolve().parents[2]
PROXY_VENV = ROOT / ".venv-mitmproxy"
PROXY_REQUIREMENTS = Path(__file__).with_name("requirements-proxy.txt")
ADDON = Path(__file__).with_name("proxy_addon.py")
RCLONE_REDIRECT = "http://localhost:53682/"  # rclone's own redirect URI
GRAPH = "https://graph.microsoft.com"
DOWNLOADS = "https://emulator.files.1drv.com"  # a name under the real download domain


def rclone_binary() -> str:
    found = shutil.which("rclone")
    if found is None:
        pytest.skip("rclone is not installed (apt-get install -y rclone; .ci/run installs it)")
    return found


def mitmdump_binary() -> Path:
    mitmdump = PROXY_VENV / "bin" / "mitmdump"
    if mitmdump.exists():
        return mitmdump
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PROXY_VENV)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(PROXY_VENV / "bin" / "pip"), "install", "-q", "-r", str(PROXY_REQUIREMENTS)],
                       check=True, capture_output=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as error:
        shutil.rmtree(PROXY_VENV, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        pytest.skip(f"mitmproxy could not be installed into {PROXY_VENV.name}: {error} {detail[-300:]!r}")
    return mitmdump


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mitmdump exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("mitmdump did not listen in time")


@dataclass
class Proxy:
    port: int
    ca_cert: Path


@dataclass
class Rclone:
    binary: str
    config: Path
    proxy: Proxy

    def run(self, *args: str, timeout: float = 120, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
            "RCLONE_CONFIG": str(self.config),
            "HTTPS_PROXY": f"http://127.0.0.1:{self.proxy.port}",
            "HTTP_PROXY": f"http://127.0.0.1:{self.proxy.port}",
        }
        command = [self.binary, "--ca-cert", str(self.proxy.ca_cert), "--low-level-retries", "5", *args]
        result = subprocess.run(command, env=env, capture_output=True, text=text, timeout=timeout)
        if check and result.returncode != 0:
            stderr = result.stderr if text else result.stderr.decode(errors="replace")
            raise AssertionError(f"rclone {' '.join(args)} exited {result.returncode}:\n{stderr[-4000:]}")
        return result

    def run_bytes(self, *args: str, timeout: float = 120) -> bytes:
        return self.run(*args, timeout=timeout, text=False).stdout

    def expire_stored_token(self) -> None:
        """Make rclone's saved access token look expired, as it would be an hour later."""
        token = {**self.token(), "expiry": "2001-01-01T00:00:00Z"}
        lines = [f"token = {json.dumps(token)}" if line.startswith("token = ") else line
                 for line in self.config.read_text().splitlines()]
        self.config.write_text("\n".join(lines) + "\n")

    def token(self) -> dict:
        for line in self.config.read_text().splitlines():
            if line.startswith("token = "):
                return json.loads(line.removeprefix("token = "))
        raise AssertionError("no token in rclone.conf")


@dataclass
class World:
    emulator: Emulator
    user: User
    rclone: Rclone


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rclone = rclone_binary()
    mitmdump = mitmdump_binary()
    work = tmp_path_factory.mktemp("conformance")
    emulator = Emulator(redirect_uris=[RCLONE_REDIRECT]).start()
    # rclone 1.60 sends its bearer token to the download host; the real service refuses that
    # (rclone 1.67 stopped). An allowance for the client's age, not the default.
    emulator.allow_auth_on_download = True
    proxy_process = None
    try:
        user = emulator.add_user("ada@example.com", "Ada Lovelace")
        code, verifier = get_code(emulator, redirect_uri=RCLONE_REDIRECT, scope="Files.ReadWrite offline_access User.Read")
        tokens = redeem(emulator, code, verifier, redirect_uri=RCLONE_REDIRECT).json()
        api, download = emulator.base_url.removeprefix("http://"), emulator.download_base_url.removeprefix("http://")
        emulator.serve_as(GRAPH, DOWNLOADS)  # links and download URLs under Microsoft's names

        port = free_port()
        confdir = work / "mitmproxy"
        proxy_process = subprocess.Popen(
            [str(mitmdump), "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
             "--set", "stream_large_bodies=1m", "--set", "connection_strategy=lazy", "-q", "-s", str(ADDON)],
            env={**os.environ, "EMULATOR_API": api, "EMULATOR_DOWNLOAD": download},
            stdout=open(work / "mitmdump.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 (mitmdump keeps writing)
        )
        wait_for_port(port, proxy_process)
        ca_cert = confdir / "mitmproxy-ca-cert.pem"
        assert ca_cert.exists(), "mitmproxy made no CA"

        config = work / "rclone.conf"
        token = {"access_token": tokens["access_token"], "token_type": "Bearer",
                 "refresh_token": tokens["refresh_token"], "expiry": "2099-01-01T00:00:00Z"}
        config.write_text(
            "[od]\n"
            "type = onedrive\n"
            f"client_id = {emulator.client_id}\n"
            f"client_secret = {emulator.client_secret}\n"
            f"token = {json.dumps(token)}\n"
            f"drive_id = {user.drive_id}\n"
            # rclone 1.60 reads SHA1 on personal drives, which OneDrive Personal no longer lists;
            # as "business" it reads quickXorHash. An allowance for its age.
            "drive_type = business\n"
            "region = global\n"
        )
        yield World(emulator, user, Rclone(rclone, config, Proxy(port, ca_cert)))
    finally:
        if proxy_process is not None:
            proxy_process.terminate()
            try:
                proxy_process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy_process.kill()
        emulator.stop()
