"""Start Azurite (the pinned npm package) on free ports, with its data in an ignored folder.

    python -m devtools.azurite            # runs until Ctrl-C, prints the connection string
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.serving import free_port
from functions.storage import development_connection_string

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "azurite"
INDEXED_LOOKUPS = Path(__file__).with_name("azurite_indexed_lookups.js")
GC_SWITCH = Path(__file__).with_name("azurite_gc.js")


def ensure_installed() -> None:
    if BINARY.exists():
        return
    if not shutil.which("npm"):
        raise RuntimeError("Azurite needs Node.js 20 and npm: install them, then run `npm ci`")
    # Several test runs may start at once on a fresh clone: one installs, the others wait for it.
    with open(ROOT / "package-lock.json", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not BINARY.exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True)


class Azurite:
    """One Azurite process; `connection_string` reaches its blob, queue and table services."""

    def __init__(self, location: str | os.PathLike[str] | None = None, in_memory: bool = False,
                 indexed_lookups: bool = False, gc_interval_ms: int | None = None, trace_gc: bool = False) -> None:
        self.location = Path(location) if location else Path(tempfile.mkdtemp(prefix="azurite-"))
        self.in_memory = in_memory
        # Benchmarks at 100k rows: see azurite_indexed_lookups.js (tests run Azurite as shipped).
        self.indexed_lookups = indexed_lookups
        # Benchmarks: the blob GC's interval (None: Azurite's 10 minutes, unlogged; 0: only at start)
        # and a log line per mark and sweep (see azurite_gc.js).
        self.gc_interval_ms = gc_interval_ms
        # Benchmarks: node's own garbage collections in the log (--trace-gc), to tell its pauses
        # (a heap of a gigabyte at 100,000 items) from the app's costs (`gc_pauses`).
        self.trace_gc = trace_gc
        self.ports = (free_port(), free_port(), free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return development_connection_string(*self.ports)

    def start(self, timeout: float = 30) -> Azurite:
        ensure_installed()
        self.location.mkdir(parents=True, exist_ok=True)
        blob, queue, table = self.ports
        # --trace-gc is refused in NODE_OPTIONS: it goes to node itself, before Azurite's script.
        node = ["node", "--trace-gc", str(BINARY.resolve())] if self.trace_gc else [str(BINARY)]
        args = [*node, "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
                "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
                "--blobPort", str(blob), "--queuePort", str(queue), "--tablePort", str(table)]
        # In memory is faster for tests; the log still goes to `location`.
        args += ["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.location)]
        log = open(self.location / "azurite.log", "ab")  # noqa: SIM115 (the child keeps writing to it)
        # A process group of its own so that stop() ends node and anything it spawned.
        env = dict(os.environ)
        preloads = ([INDEXED_LOOKUPS] if self.indexed_lookups else []) + ([GC_SWITCH] if self.gc_interval_ms is not None else [])
        if preloads:
            env["NODE_OPTIONS"] = " ".join([env.get("NODE_OPTIONS", ""), *(f"--require {p}" for p in preloads)]).strip()
        if self.gc_interval_ms is not None:
            env["AZURITE_GC_INTERVAL_MS"] = str(self.gc_interval_ms)
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not _accepts(port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"Azurite exited with {self.process.returncode}; see {self.location / 'azurite.log'}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"Azurite did not open port {port} within {timeout} s")
                time.sleep(0.05)
        return self

    def gc_runs(self) -> list[tuple[str, int]]:
        """(start, milliseconds) of each blob mark and sweep so far (with `gc_interval_ms` set)."""
        import re

        text = (self.location / "azurite.log").read_text(errors="replace")
        return [(at, int(ms)) for at, ms in re.findall(r"azurite-gc: mark and sweep at (\S+) took (\d+) ms", text)]

    def log_size(self) -> int:
        """Where the log ends now: `gc_pauses(since=...)` reads what node wrote after it."""
        return (self.location / "azurite.log").stat().st_size

    def gc_pauses(self, since: int = 0) -> dict[str, float]:
        """Node's garbage collections logged after `since` (with `trace_gc`): their count, and the
        milliseconds they held the process (all of Azurite's services answer from one thread)."""
        import re

        with open(self.location / "azurite.log", "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        # "... ms: Mark-Compact 250.3 (279.5) -> 70.9 (107.7) MB, 98.50 / 0.00 ms  (+ 1.4 ms in 7 steps ...": the
        # pause, and the incremental marking steps before it (also on the main thread).
        found = re.findall(r"ms: (Scavenge|Mark-Compact|Mark-sweep)\b[^,\n]*MB, ([\d.]+) / [\d.]+ ms(?:\s+\(\+ ([\d.]+) ms in)?", text)
        pauses = [(kind, float(ms) + float(steps or 0)) for kind, ms, steps in found]
        major = [ms for kind, ms in pauses if kind != "Scavenge"]
        return {"count": len(pauses), "ms": sum(ms for _, ms in pauses), "major_count": len(major), "major_ms": sum(major),
                "longest_ms": max((ms for _, ms in pauses), default=0.0)}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data (tests of storage outages)."""
        self.stop()
        self.start()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def main() -> None:
    azurite = Azurite(location=ROOT / ".azurite").start()
    print(f"Azurite is running. AzureWebJobsStorage={azurite.connection_string}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        azurite.stop()


if __name__ == "__main__":
    sys.exit(main())
