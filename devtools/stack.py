"""Everything with one command: Azurite, the OneDrive emulator (with a demo drive) and the local host; then where to click.

`scripts/run` is this after `scripts/bootstrap`:

    python -m devtools.stack [--port 7071] [--emulator-port 8090] [--storage-ports 10000,10001,10002]
                             [--data .azurite] [--reset] [--new-key] [--example]

Every setting is checked before anything starts: a malformed one stops the start with its name,
the file it came from and what is expected. Azurite's data, the emulator's users and drives and
the function key are kept in the --data folder, so a restart continues where the last run
stopped; --reset starts from nothing. With a real app registration in local.settings.json
(MICROSOFT_CLIENT_ID other than the emulator's) the emulator is skipped and the host talks to
Microsoft. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
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
from devtools.host.config import PROCESS_ENVIRONMENT, read_local_settings
from devtools.host.keys import FILE_NAME as KEY_FILE_NAME
from devtools.host.keys import function_key
from devtools.keys import new_key_entry
from devtools.serving import free_port
from functions.settings import problems

ROOT = Path(__file__).resolve().parent.parent
EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
REAL_AUTHORITY = "https://login.microsoftonline.com/consumers"
REAL_GRAPH = "https://graph.microsoft.com/v1.0"
_PLACEHOLDER_PREFIX = "replace-me"
WELL_KNOWN_STORAGE_PORTS = (10000, 10001, 10002)  # what Storage Explorer and UseDevelopmentStorage=true expect


def ensure_local_settings(path: Path, example: Path = ROOT / "local.settings.example.json") -> bool:
    """Create local.settings.json from the example with a fresh token key, or fill in a placeholder
    key; never touch a value someone set. True if the file was written."""
    source = path if path.exists() else example
    try:
        document = json.loads(source.read_text())
    except ValueError as error:
        raise ValueError(f"{source} is not valid JSON: {error}") from None
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
    """Whether a server could listen on `port` now. SO_REUSEADDR as the servers themselves use it
    (uvicorn, node): connections of a stopped run in TIME-WAIT don't keep the port."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    storage_ports: tuple[int, int, int] | None = None  # None: the well-known ones if free, else any
    reset: bool = False  # start from nothing: Azurite's data and the emulator's state
    new_key: bool = False
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
        self.say(f"Checking the settings in {self.settings_path}...")
        if ensure_local_settings(self.settings_path):
            self.say(f"Wrote {self.settings_path.name} with a fresh TOKEN_ENCRYPTION_KEYS (kept out of git).")
        values = {**read_local_settings(self.settings_path).values, **os.environ}

        if not _port_free(self.port):
            raise RuntimeError(f"port {self.port} is in use: stop what uses it, or pass --port")
        public = values.get("PUBLIC_BASE_URL", "http://localhost:7071")
        if _is_local(public):
            public = _with_port(public, self.port)  # the browser must come back to this host
            self.environment["PUBLIC_BASE_URL"] = public

        client_id = values.get("MICROSOFT_CLIENT_ID", "")
        emulated = client_id in ("", EMULATOR_CLIENT_ID)
        emulator_port = self._emulator_port() if emulated else None
        if emulated:
            self.environment.update(_emulator_settings(f"http://127.0.0.1:{emulator_port}"))
        else:
            for name, real in (("MICROSOFT_AUTHORITY", REAL_AUTHORITY), ("GRAPH_BASE_URL", REAL_GRAPH)):
                if _is_local(values.get(name, real)):
                    self.environment[name] = real  # the example's emulator URLs don't apply
        self._check_settings({**values, **self.environment})

        if self.reset:
            self._reset_data()
        key = function_key(key_file=self.data_dir / KEY_FILE_NAME, renew=self.new_key)
        self._start_storage(values)
        emulator_url = self._start_emulator(emulator_port, public) if emulator_port else None
        self._start_host()
        if self.example:
            self._start_example(public, key.value)
        self._summary(public, key.value, emulator_url)
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

    def _check_settings(self, values: dict[str, str]) -> None:
        """Refuse to start on any malformed setting, naming it and where it came from."""
        found = problems(values)
        if found:
            lines = [f"  {error} (set in {'the environment' if error.setting in os.environ else self.settings_path})"
                     for error in found]
            raise RuntimeError("the settings are not valid; nothing was started:\n" + "\n".join(lines))

    def _reset_data(self) -> None:
        """Forget Azurite's data and the emulator's state (the key and the logs stay)."""
        self.say(f"Resetting: deleting the data in {self.data_dir} (the function key and logs stay).")
        for entry in self.data_dir.iterdir():
            if entry.name == KEY_FILE_NAME or entry.suffix == ".log":
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def _start_storage(self, values: dict[str, str]) -> None:
        configured = values.get("AzureWebJobsStorage", "UseDevelopmentStorage=true").replace(" ", "").lower()
        if configured != "usedevelopmentstorage=true":
            self.say("Storage: using AzureWebJobsStorage from your settings (Azurite not started).")
            return
        self.azurite = Azurite(location=self.data_dir)
        if self.storage_ports:
            busy = [port for port in self.storage_ports if not _port_free(port)]
            if busy:
                raise RuntimeError(f"storage port {busy[0]} is in use: stop what uses it, or pass other --storage-ports")
            self.azurite.ports = self.storage_ports
        elif all(_port_free(port) for port in WELL_KNOWN_STORAGE_PORTS):
            self.azurite.ports = WELL_KNOWN_STORAGE_PORTS
        else:
            self.say(f"Ports {WELL_KNOWN_STORAGE_PORTS[0]}-{WELL_KNOWN_STORAGE_PORTS[-1]} are in use (another Azurite?); "
                     f"storage takes {','.join(map(str, self.azurite.ports))} (--storage-ports chooses).")
        self.say(f"Starting Azurite (data in {self.data_dir})...")
        self.azurite.start()
        self.environment["AzureWebJobsStorage"] = self.azurite.connection_string

    def _emulator_port(self) -> int:
        port = self.emulator_port if _port_free(self.emulator_port) else free_port()
        if port != self.emulator_port:
            self.say(f"Port {self.emulator_port} is in use; the OneDrive emulator takes {port}.")
        return port

    def _start_emulator(self, port: int, public: str) -> str:
        self.say(f"Starting the OneDrive emulator (log in {self.data_dir / 'emulator.log'})...")
        log = open(self.data_dir / "emulator.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
        # Its users, drives and tokens live next to Azurite's data: a restart finds the same connection alive.
        command = [sys.executable, "-m", "devtools.emulator", "--port", str(port),
                   "--data", str(self.data_dir / "emulator")] + (["--demo"] if self.demo else [])
        if urlsplit(public).scheme == "http":
            # Graph only notifies https URLs; the local host serves plain http (no TLS here).
            command.append("--allow-http-notification-urls")
        command += ["--reset"] if self.reset else []
        self.emulator = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/_emulator", self.emulator, "the OneDrive emulator")
        return url

    def _start_host(self) -> None:
        self.say("Starting the local host...")
        command = [sys.executable, "-m", "devtools.host", "--port", str(self.port), "--settings", str(self.settings_path),
                   "--key-file", str(self.data_dir / KEY_FILE_NAME)]
        # The host's lines (invocations, failures) go to this terminal: that is where to watch it work.
        self.host = subprocess.Popen(command, cwd=ROOT, env={**PROCESS_ENVIRONMENT, **os.environ, **self.environment})
        _wait_http(f"http://127.0.0.1:{self.port}/admin/host/status", self.host, "the local host")

    def _summary(self, public: str, key: str, emulator_url: str | None) -> None:
        self.say()
        self.say("Everything is running.")
        # A function-key link that makes a fresh connect session on every visit (a session is single-use).
        self.say(f"  Connect a OneDrive:  {public}/api/status/connect?code={key}")
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
        self.say(f"  Health:              {public}/api/health")
        if self.azurite:
            blob, queue, table = self.azurite.ports
            self.say(f"  Storage (Azurite):   blob :{blob}, queue :{queue}, table :{table}; data in {self.data_dir}")
            self.say(f"  Storage connection string: {self.azurite.connection_string}")
        self.say(f"Logs: this terminal (the host), {self.data_dir / 'emulator.log'}, {self.data_dir / 'azurite.log'}. "
                 "Ctrl-C stops everything; --reset starts from nothing.")

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


def _emulator_settings(url: str) -> dict[str, str]:
    return {
        "MICROSOFT_CLIENT_ID": EMULATOR_CLIENT_ID,
        "MICROSOFT_CLIENT_SECRET": EMULATOR_CLIENT_SECRET,
        "MICROSOFT_AUTHORITY": f"{url}/consumers",
        "GRAPH_BASE_URL": f"{url}/v1.0",
    }


def _ports(text: str) -> tuple[int, int, int]:
    try:
        blob, queue, table = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected three ports: blob,queue,table (e.g. 10000,10001,10002)") from None
    return blob, queue, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/run", description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[3:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7071, help="the local host's port (default 7071)")
    parser.add_argument("--emulator-port", type=int, default=8090, help="the OneDrive emulator's port (default 8090)")
    parser.add_argument("--settings", default=str(ROOT / "local.settings.json"), help="local settings file")
    parser.add_argument("--storage-ports", type=_ports, metavar="BLOB,QUEUE,TABLE",
                        help="Azurite's ports (default 10000,10001,10002 when free, else any free ones)")
    parser.add_argument("--data", default=str(ROOT / ".azurite"),
                        help="the local data: Azurite's, the emulator's, the function key, the logs (default .azurite)")
    parser.add_argument("--reset", action="store_true", help="delete the local data first (keeps the function key)")
    parser.add_argument("--new-key", action="store_true", help="replace the kept function key with a new one")
    parser.add_argument("--no-demo", action="store_true", help="don't seed the emulator with a demo user")
    parser.add_argument("--example", action="store_true", help="also start the sample product (examples/product) on :8000")
    parser.add_argument("--example-port", type=int, default=8000, help="the sample product's port (default 8000)")
    args = parser.parse_args(argv)

    data_dir = Path(args.data)
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(port=args.port, emulator_port=args.emulator_port, settings_path=Path(args.settings),
                  data_dir=data_dir, demo=not args.no_demo, storage_ports=args.storage_ports, reset=args.reset,
                  new_key=args.new_key, example=args.example, example_port=args.example_port)
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
