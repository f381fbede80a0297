"""rclone (Debian's 1.60) against the emulator, through mitmproxy: for tests/conformance (a real
client checks the emulator) and bench/peer.py (the project against the tool people would use).

rclone has Microsoft's hosts built in; mitmproxy (devtools/rclone_proxy_addon.py) sends those to
the emulator and refuses every other host, and rclone trusts the proxy's CA (``--ca-cert``).
Loopback addresses (Azurite) never go through a proxy: Go's HTTP client skips it for them.
mitmproxy lives in its own virtualenv (.venv-mitmproxy, made on first use from
devtools/requirements-proxy.txt): on Python 3.11 its pins (h11 0.14, cryptography < 44.1)
conflict with the app's own (httpcore needs h11 0.16; cryptography 50).

Two allowances for rclone 1.60's age, both switches on the emulator rather than a weaker default:
``drive_type = business`` makes it read quickXorHash (1.60 reads SHA1 on personal drives, which
OneDrive Personal stopped listing in 2023), and ``allow_auth_on_download`` lets its Authorization
header onto the download host (the real service refuses it; rclone 1.67 stopped sending it).

    with Proxy.start(emulator, work_dir) as proxy:
        emulator.serve_as(GRAPH, DOWNLOADS)           # links under Microsoft's names
        rclone = Rclone(rclone_binary(), work_dir / "rclone.conf", proxy)
        rclone.config.write_text(onedrive_remote("od", emulator, user, sign_in(emulator, user)))
        rclone.run("lsjson", "-R", "od:")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PROXY_VENV = ROOT / ".venv-mitmproxy"
PROXY_REQUIREMENTS = Path(__file__).with_name("requirements-proxy.txt")
ADDON = Path(__file__).with_name("rclone_proxy_addon.py")
RCLONE_REDIRECT = "http://localhost:53682/"  # rclone's own redirect URI
SCOPES = "Files.ReadWrite offline_access User.Read"
GRAPH = "https://graph.microsoft.com"
DOWNLOADS = "https://emulator.files.1drv.com"  # a name under the real download domain


class Unavailable(RuntimeError):
    """rclone or mitmproxy is not there (and could not be installed): callers skip, saying this."""


def rclone_binary() -> str:
    found = shutil.which("rclone")
    if found is None:
        raise Unavailable("rclone is not installed (scripts/system-packages rclone installs it; .ci/run and scripts/bench do)")
    return found


def mitmdump_binary() -> Path:
    """mitmdump from .venv-mitmproxy, made on first use."""
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
        raise Unavailable(f"mitmproxy could not be installed into {PROXY_VENV.name}: {error} {detail[-300:]!r}") from error
    return mitmdump


def sign_in(emulator: Any, user: Any, redirect_uri: str = RCLONE_REDIRECT, scope: str = SCOPES) -> dict[str, Any]:
    """Tokens for `user` as rclone's own `rclone config` would get them: the code flow with PKCE
    against the emulator's own address (call it before `serve_as`)."""
    import httpx

    if emulator.redirect_uris and redirect_uri not in emulator.redirect_uris:
        emulator.redirect_uris = [*emulator.redirect_uris, redirect_uri]
    emulator.auto_consent = True
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    authorize = httpx.get(f"{emulator.authority}/oauth2/v2.0/authorize", cookies={"emulator_user": user.id}, params={
        "client_id": emulator.client_id, "response_type": "code", "redirect_uri": redirect_uri, "scope": scope,
        "response_mode": "query", "state": "rclone", "code_challenge": challenge, "code_challenge_method": "S256"})
    if authorize.status_code != 302:
        raise RuntimeError(f"authorize answered HTTP {authorize.status_code}, not a redirect with a code")
    code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
    tokens = httpx.post(f"{emulator.authority}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier,
        "client_id": emulator.client_id, "client_secret": emulator.client_secret})
    if tokens.status_code != 200:
        raise RuntimeError(f"the token endpoint answered HTTP {tokens.status_code}")
    return tokens.json()


def onedrive_remote(name: str, emulator: Any, user: Any, tokens: dict[str, Any]) -> str:
    """An rclone.conf section for `user`'s drive."""
    token = {"access_token": tokens["access_token"], "token_type": "Bearer",
             "refresh_token": tokens["refresh_token"], "expiry": "2099-01-01T00:00:00Z"}
    return (
        f"[{name}]\n"
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


@dataclass
class Proxy:
    """mitmdump sending Microsoft's hosts to the emulator; `pid` for its CPU."""

    port: int
    ca_cert: Path
    process: subprocess.Popen[bytes]
    api: str = ""  # host:port the emulator's Graph and sign-in listen on (where the proxy sends them)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, emulator: Any, work: Path, timeout: float = 60, http2: bool = True) -> Proxy:
        """Call before `emulator.serve_as` (the proxy needs the addresses the emulator listens on).

        `http2=False` offers rclone HTTP/1.1 only: mitmproxy keeps every stream of an HTTP/2
        connection until the client disconnects (mitmproxy issue 4456), so over one long copy its
        memory and CPU per request grow with the number of requests."""
        from devtools.serving import free_port

        mitmdump = mitmdump_binary()
        api, download = emulator.base_url.removeprefix("http://"), emulator.download_base_url.removeprefix("http://")
        port = free_port()
        confdir = work / "mitmproxy"
        process = subprocess.Popen(
            [str(mitmdump), "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
             "--set", "stream_large_bodies=1m", "--set", "connection_strategy=lazy", "--set", f"http2={str(http2).lower()}",
             "-q", "-s", str(ADDON)],
            env={**os.environ, "EMULATOR_API": api, "EMULATOR_DOWNLOAD": download},
            stdout=open(work / "mitmdump.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115 (mitmdump keeps writing)
        )
        proxy = cls(port, confdir / "mitmproxy-ca-cert.pem", process, api)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"mitmdump exited with {process.returncode}; see {work / 'mitmdump.log'}")
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("mitmdump did not listen in time")
                time.sleep(0.05)
            if not proxy.ca_cert.exists():
                raise RuntimeError("mitmproxy made no CA")
        except BaseException:
            proxy.stop()
            raise
        return proxy

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Rclone:
    binary: str
    config: Path
    proxy: Proxy

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of one rclone run (through the proxy, with its CA)."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
            "RCLONE_CONFIG": str(self.config),
            "HTTPS_PROXY": self.proxy.url,
            "HTTP_PROXY": self.proxy.url,
        }
        return [self.binary, "--ca-cert", str(self.proxy.ca_cert), "--low-level-retries", "5", *args], env

    def run(self, *args: str, timeout: float = 120, check: bool = True, text: bool = True) -> subprocess.CompletedProcess[Any]:
        command, env = self.command(*args)
        result = subprocess.run(command, env=env, capture_output=True, text=text, timeout=timeout)
        if check and result.returncode != 0:
            stderr = result.stderr if text else result.stderr.decode(errors="replace")
            raise RuntimeError(f"rclone {' '.join(args)} exited {result.returncode}:\n{stderr[-4000:]}")
        return result

    def run_bytes(self, *args: str, timeout: float = 120) -> bytes:
        return bytes(self.run(*args, timeout=timeout, text=False).stdout)

    def expire_stored_token(self) -> None:
        """Make rclone's saved access token look expired, as it would be an hour later."""
        token = {**self.token(), "expiry": "2001-01-01T00:00:00Z"}
        lines = [f"token = {json.dumps(token)}" if line.startswith("token = ") else line
                 for line in self.config.read_text().splitlines()]
        self.config.write_text("\n".join(lines) + "\n")

    def token(self) -> dict[str, Any]:
        for line in self.config.read_text().splitlines():
            if line.startswith("token = "):
                token: dict[str, Any] = json.loads(line.removeprefix("token = "))
                return token
        raise RuntimeError("no token in rclone.conf")
