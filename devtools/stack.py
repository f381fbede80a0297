"""Everything, with one command: Azurite, the OneDrive emulator (with a demo drive) and the local
host, then where to click. `scripts/run` is this after `scripts/bootstrap`.

    python -m devtools.stack [--port 7071] [--emulator-port 8090] [--data .azurite] [--reset]

The data folder keeps Azurite's storage and the emulator's users, drives, tokens and subscriptions
(in its `emulator/` subfolder), so a restart continues where the last run stopped; `--reset` (or
deleting the folder) starts from nothing.

With a real app registration in local.settings.json (MICROSOFT_CLIENT_ID other than the
emulator's) the emulator is skipped and the host talks to Microsoft. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from devtools.azurite import Azurite
from devtools.host.config import read_local_settings
from devtools.keys import new_key_entry
from devtools.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
REAL_AUTHORITY = "https://login.microsoftonline.com/consumers"
REAL_GRAPH = "https://graph.microsoft.com/v1.0"
_PLACEHOLDER_PREFIX = "replace-me"


def ensure_local_settings(path: Path, example: Path = ROOT / "local.settings.example.json") -> bool:
    """Create local.settings.json from the example with a fresh token key, or fill in a placeholder
    key; never touch a value someone set. True if the file was written."""
    document = json.loads(path.read_text()) if path.exists() else json.loads(example.read_text())
    values = document.setdefault("Values", {})
    if path.exists() and not str(values.get("TOKEN_ENCRYPTION_KEYS", "")).startswith(_PLACEHOLDER_PREFIX) \
            and values.get("TOKEN_ENCRYPTION_KEYS"):
        return False
    values["TOKEN_ENCRYPTION_KEYS"] = new_key_entry()
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o600)  # it holds a secret
    return True


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_http(url: str, process: subprocess.Popen | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout} s")


def _stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    port: int = 7071
    emulator_port: int = 8090
    settings_path: Path = ROOT / "local.settings.json"
    data_dir: Path = ROOT / ".azurite"
    demo: bool = True
    azurite: Azurite | None = None
    emulator: subprocess.Popen | None = None
    host: subprocess.Popen | None = None
    example: bool = False  # also start the sample product (examples/product) on example_port
    example_port: int = 8000
    product: subprocess.Popen | None = None
    environment: dict[str, str] = field(default_factory=dict)  # overrides for the host

    def say(self, line: str = "") -> None:
        print(line, flush=True)

    def start(self) -> Stack:
        if ensure_local_settings(self.settings_path):
            self.say(f"Wrote {self.settings_path.name} with a fresh TOKEN_ENCRYPTION_KEYS (kept out of git).")
        values = {**read_local_settings(self.settings_path).values, **os.environ}
        key = os.environ.get("LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(24)
        self.environment["LOCAL_FUNCTION_KEY"] = key

        if not _port_free(self.port):
            raise RuntimeError(f"port {self.port} is in use: stop what uses it, or pass --port")
        public = values.get("PUBLIC_BASE_URL", "http://localhost:7071")
        if _is_local(public):
            public = _with_port(public, self.port)  # the browser must come back to this host
            self.environment["PUBLIC_BASE_URL"] = public

        self._start_storage(values)
        client_id = values.get("MICROSOFT_CLIENT_ID", "")
        emulated = client_id in ("", EMULATOR_CLIENT_ID)
        if emulated:
            emulator_url = self._start_emulator(public)
        else:
            emulator_url = None
            for name, real in (("MICROSOFT_AUTHORITY", REAL_AUTHORITY), ("GRAPH_BASE_URL", REAL_GRAPH)):
                if _is_local(values.get(name, real)):
                    self.environment[name] = real  # the example's emulator URLs don't apply
        self._start_host()
        if self.example:
            self._start_example(public, key)
        self._summary(public, key, emulator_url)
        return self

    def _start_example(self, public: str, key: str) -> None:
        if not _port_free(self.example_port):
            raise RuntimeError(f"port {self.example_port} is in use: stop what uses it, or pass --example-port")
        storage = self.environment.get("AzureWebJobsStorage") or read_local_settings(self.settings_path).values.get(
            "AzureWebJobsStorage", "")
        environment = {**os.environ, "MIRROR_URL": public, "MIRROR_FUNCTION_KEY": key, "MIRROR_STORAGE": storage,
                       "PRODUCT_URL": f"http://localhost:{self.example_port}", "PRODUCT_PORT": str(self.example_port)}
        self.product = subprocess.Popen([sys.executable, "-m", "examples.product"], cwd=ROOT, env=environment)
        _wait_http(f"http://127.0.0.1:{self.example_port}/", self.product, "the sample product")

    def _start_storage(self, values: dict[str, str]) -> None:
        configured = values.get("AzureWebJobsStorage", "UseDevelopmentStorage=true").replace(" ", "").lower()
        if configured != "usedevelopmentstorage=true":
            self.say("Storage: using AzureWebJobsStorage from your settings (Azurite not started).")
            return
        self.azurite = Azurite(location=self.data_dir)
        if all(_port_free(port) for port in (10000, 10001, 10002)):
            self.azurite.ports = (10000, 10001, 10002)  # the well-known ports: Storage Explorer finds them
        self.azurite.start()
        self.environment["AzureWebJobsStorage"] = self.azurite.connection_string

    def _start_emulator(self, public: str) -> str:
        port = self.emulator_port if _port_free(self.emulator_port) else free_port()
        if port != self.emulator_port:
            self.say(f"Port {self.emulator_port} is in use; the OneDrive emulator takes {port}.")
        log = open(self.data_dir / "emulator.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
        # The emulator keeps its state beside Azurite's: the demo user, its connection and its
        # subscription survive a restart together.
        command = [sys.executable, "-m", "devtools.emulator", "--port", str(port),
                   "--data", str(self.data_dir / "emulator")] + (["--demo"] if self.demo else [])
        self.emulator = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/_emulator", self.emulator, "the OneDrive emulator")
        self.environment.update({
            "MICROSOFT_CLIENT_ID": EMULATOR_CLIENT_ID,
            "MICROSOFT_CLIENT_SECRET": EMULATOR_CLIENT_SECRET,
            "MICROSOFT_AUTHORITY": f"{url}/consumers",
            "GRAPH_BASE_URL": f"{url}/v1.0",
        })
        return url

    def _start_host(self) -> None:
        command = [sys.executable, "-m", "devtools.host", "--port", str(self.port), "--settings", str(self.settings_path)]
        # The host's lines (invocations, failures) go to this terminal: that is where to watch it work.
        self.host = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.environment})
        _wait_http(f"http://127.0.0.1:{self.port}/admin/host/status", self.host, "the local host")

    def _summary(self, public: str, key: str, emulator_url: str | None) -> None:
        self.say()
        self.say("Everything is running.")
        self.say(f"  Connect a OneDrive:  {public}/api/connect")
        if emulator_url:
            demo = " (demo user ada@example.com)" if self.demo else ""
            self.say(f"  Change the drive:    {emulator_url}/{demo}")
        else:
            self.say("  Microsoft:           the real service (MICROSOFT_CLIENT_ID from your settings)")
            if _is_local(public):
                self.say("  Note: Graph can't reach a localhost PUBLIC_BASE_URL; set it to a public https tunnel "
                         "for change notifications.")
        if self.example:
            self.say(f"  Sample product:      http://localhost:{self.example_port}/  (sign in as demo / demo)")
        self.say(f"  Status page:         {public}/api/status?code={key}")
        self.say(f"  Product API:         {public}/api/connections  (header x-functions-key: {key})")
        if self.azurite:
            blob, queue, table = self.azurite.ports
            self.say(f"  Storage (Azurite):   blob :{blob}, queue :{queue}, table :{table}; data in {self.data_dir}")
        self.say("Ctrl-C stops everything.")

    def failed_child(self) -> str | None:
        for name, process in (("the local host", self.host), ("the OneDrive emulator", self.emulator),
                              ("the sample product", self.product)):
            if process is not None and process.poll() is not None:
                return f"{name} exited with {process.returncode}"
        return None

    def stop(self) -> None:
        _stop_process(self.product)
        _stop_process(self.host)
        _stop_process(self.emulator)
        if self.azurite:
            self.azurite.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="the local host's port (default 7071)")
    parser.add_argument("--emulator-port", type=int, default=8090, help="the OneDrive emulator's port (default 8090)")
    parser.add_argument("--settings", default=str(ROOT / "local.settings.json"), help="local settings file")
    parser.add_argument("--data", default=str(ROOT / ".azurite"), help="Azurite's data folder (and logs)")
    parser.add_argument("--no-demo", action="store_true", help="don't seed the emulator with a demo user")
    parser.add_argument("--example", action="store_true", help="also start the sample product (examples/product) on :8000")
    parser.add_argument("--example-port", type=int, default=8000, help="the sample product's port (default 8000)")
    parser.add_argument("--reset", action="store_true",
                        help="start from nothing: delete the data folder (Azurite's storage, the emulator's drives and tokens)")
    args = parser.parse_args(argv)

    data_dir = Path(args.data)
    if args.reset and data_dir.exists():
        shutil.rmtree(data_dir)
        print(f"Deleted {data_dir}: starting from nothing.", flush=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(port=args.port, emulator_port=args.emulator_port, settings_path=Path(args.settings),
                  data_dir=data_dir, demo=not args.no_demo, example=args.example, example_port=args.example_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    code = 0
    try:
        stack.start()
        while not stop.wait(0.5):
            problem = stack.failed_child()
            if problem:
                print(f"Stopping: {problem}.", file=sys.stderr, flush=True)
                code = 1
                break
    except (RuntimeError, ValueError, OSError) as error:
        print(f"Could not start: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("Stopping...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    if shutil.which("node") is None and not (ROOT / "node_modules" / ".bin" / "azurite").exists():
        sys.exit("Azurite needs Node.js 20 and npm; run scripts/bootstrap (or scripts/run) first.")
    sys.exit(main())
