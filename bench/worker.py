"""The worker process of the copy and delta benchmarks: a fresh interpreter that runs the sync
(the way a Functions worker would), so that its time and memory are measured apart from the
emulator and the benchmark itself. Driven by JSON lines on stdin; answers one JSON line each.

    {"do": "warm"}                                   import and connect everything; RSS
    {"do": "upload", "name": ..., "size": n, "seed": s, "concurrency": c}   baseline: plain SDK upload
    {"do": "sync", "connection_id": ..., "budget": s, "origins": {...}, "copy_threads": n}
                                                     engine.run until done; CPU seconds, and
                                                     calls by service if origins
    {"do": "sync_resumed", "connection_id": ...}     the same, each chunk of files from a cold row cache
    {"do": "listen"} / {"do": "stop"}                the sync_worker function fed by the queue listener
    {"do": "count", "origins": {...}} / {"do": "counted"}   count calls by service between the two
    {"do": "quit"}
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .report import reset_rss_peak, rss_high_water_mb, rss_mb

ROOT = Path(__file__).resolve().parent.parent


class WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self) -> None:
        from devtools.host.config import PROCESS_ENVIRONMENT

        # Started as the Functions host starts the app's worker (the environment wins, as there).
        self.process = subprocess.Popen([sys.executable, "-m", "bench.worker"], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1, env={**PROCESS_ENVIRONMENT, **os.environ})

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the worker process exited ({self.process.poll()}) during {command['do']}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker: {answer['error']}")
        return answer

    def close(self) -> None:
        # The worker may be busy (the benchmark was interrupted): end it rather than wait.
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----- inside the worker process ------------------------------------------------------------

_listener = None


def _warm() -> dict[str, Any]:
    from functions import storage  # noqa: F401  (what a sync imports)

    storage.files_container()
    storage.queue(storage.Queues.SYNC)
    return {"rss_mb": rss_mb()}


def _upload(name: str, size: int, seed: int, concurrency: int = 1) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    from devtools.emulator.content import GeneratedContent
    from functions import storage

    # Plain SDK use, as a developer would write it: a client from the connection string, one call.
    service = BlobServiceClient.from_connection_string(storage._endpoints().connection_string)
    container = service.get_container_client("bench-baseline")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client(name)
    reset_rss_peak()
    before = rss_mb()
    started = time.perf_counter()
    blob.upload_blob(GeneratedContent(size=size, seed=seed).chunks(chunk_size=4 << 20), length=size, overwrite=True,
                     max_concurrency=concurrency)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_before_mb": before, "peak_mb": rss_high_water_mb()}


def _sync(connection_id: str, budget: float | None = None, origins: dict[str, str] | None = None,
          copy_threads: int | None = None, trace: bool = False) -> dict[str, Any]:
    """`budget`: seconds per message (else the setting); `origins` (graph=, download=): count calls;
    `copy_threads`: downloads at once (else the app's COPY_THREADS); `trace`: the Python heap's
    peak and where what was alive near it was allocated (tracemalloc: slows the sync several times)."""
    from devtools.calls import CallCounter
    from functions.microsoft.transport import Deadline
    from functions.sync import apply, engine

    if copy_threads:
        apply.COPY_THREADS = copy_threads

    calls = CallCounter.for_environment(**(origins or {}))
    if origins:
        calls.__enter__()
    tracer = _HeapTracer() if trace else None
    reset_rss_peak()
    before = rss_mb()
    started = time.perf_counter()
    cpu_started = time.process_time()  # the worker's own CPU, every thread
    outcomes: list[str] = []
    failures = 0
    while True:
        try:
            result = engine.run(connection_id, reason="bench", deadline=Deadline(budget) if budget else None)
        except Exception as error:
            # What the host does with a failed invocation: run the message again (maxDequeueCount 5).
            failures += 1
            outcomes.append(f"failed: {type(error).__name__}")
            if failures >= 5:
                raise
            continue
        outcomes.append(result.outcome)
        if result.outcome not in ("continued", "throttled", "busy") or len(outcomes) > 10_000:
            break
        if result.outcome != "continued":
            time.sleep(max(0.05, result.retry_after))
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    if origins:
        calls.__exit__()
    traced = tracer.stop() if tracer else {}
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "rss_before_mb": before, "peak_mb": rss_high_water_mb(),
            "outcomes": outcomes, "stats": result.stats, "calls": dict(calls.snapshot()), **traced}


class _HeapTracer:
    """tracemalloc over a sync: its peak, and a snapshot taken whenever the heap passed its last
    high (sampled every second), so that what grows with the drive shows where it was allocated."""

    def __init__(self) -> None:
        import threading
        import tracemalloc

        tracemalloc.start(4)
        self._high = 0
        self._snapshot: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import tracemalloc

        while not self._stop.wait(1.0):
            current, _ = tracemalloc.get_traced_memory()
            if current > self._high * 1.02:
                self._high = current
                self._snapshot = tracemalloc.take_snapshot()

    def stop(self) -> dict[str, Any]:
        import tracemalloc

        self._stop.set()
        self._thread.join()
        _, peak = tracemalloc.get_traced_memory()
        sites: list[tuple[str, float, int]] = []
        if self._snapshot is not None:
            for stat in self._snapshot.statistics("traceback")[:25]:
                where = " < ".join(f"{Path(frame.filename).name}:{frame.lineno}" for frame in stat.traceback)
                sites.append((where, stat.size / 2**20, stat.count))
        tracemalloc.stop()
        return {"heap_peak_mb": peak / 2**20, "heap_high_mb": self._high / 2**20, "heap_sites": sites}


_counter = None
_cpu_started = 0.0


def _count(origins: dict[str, str]) -> dict[str, Any]:
    """Count this process's calls from now (the queue listener's syncs included)."""
    global _counter
    from devtools.calls import CallCounter

    global _cpu_started
    _cpu_started = time.process_time()
    _counter = CallCounter.for_environment(**origins).__enter__()
    return {"counting": True}


def _counted() -> dict[str, Any]:
    global _counter
    if _counter is None:
        return {"calls": {}}
    _counter.__exit__()
    calls, kinds = dict(_counter.snapshot()), _call_kinds(_counter.calls)
    seconds = _call_kinds(_counter.calls, _counter.seconds)
    # The sync's span: its calls but the listener's receives (which poll whether or not there is work).
    spans = [(end - took, end, _call_kind(*call))
             for call, took, end in zip(_counter.calls, _counter.seconds, _counter.ended, strict=True)
             if call[:2] != ("queue", "GET")]
    _counter = None
    return {"calls": calls, "kinds": kinds, "seconds": seconds, "cpu_seconds": time.process_time() - _cpu_started,
            "timeline": spans}


def _call_kinds(calls: list[tuple[str, str, str]], seconds: list[float] | None = None) -> dict[str, float]:
    """Calls by kind (`_call_kind`); with `seconds`, the seconds they took instead (summed over threads)."""
    totals: dict[str, float] = {}
    for index, call in enumerate(calls):
        name = _call_kind(*call)
        totals[name] = totals.get(name, 0) + (seconds[index] if seconds is not None else 1)
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _call_kind(service: str, method: str, path: str) -> str:
    """A call's service, method and what it reaches (a table query: the table and its filter)."""
    import re
    from urllib.parse import unquote

    path = unquote(path)
    if "?" in path:
        where, _, query = path.partition("?")
        found = re.search(r"\$filter=([^&]*)", query)
        condition = re.sub(r"'[^']*'", "…", found.group(1)) if found else ""
        return f"{service} {method} {where.rsplit('/', 1)[-1].split('(')[0]} where {condition}"
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{service} {method} {last.split('(')[0] if service == 'table' else ''}".rstrip()


def _sync_resumed(connection_id: str) -> dict[str, Any]:
    """`_sync`, with every chunk of files applied from a cold row cache: what a run resumed in a
    new message (after a crash, an outage, a spent time budget) or a retry of parked items does."""
    from functions.sync import apply, itemrows

    apply_files = apply.Applier.apply_files

    def cold(applier, ids):
        applier.rows = itemrows.RowCache(applier.connection_id)
        return apply_files(applier, ids)

    apply.Applier.apply_files = cold  # type: ignore[method-assign]
    try:
        return _sync(connection_id)
    finally:
        apply.Applier.apply_files = apply_files  # type: ignore[method-assign]


def _listen() -> dict[str, Any]:
    global _listener
    from devtools.host.config import HostOptions
    from devtools.host.invocation import Invoker
    from devtools.host.queues import QueueListener

    from .environment import app_specs

    spec = next(s for s in app_specs() if s.name == "sync_worker")
    _listener = QueueListener(spec, HostOptions.from_host_json(), Invoker()).start()
    return {"listening": True}


def _stop() -> dict[str, Any]:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
    return {"stopped": True}


def main() -> None:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    out = sys.stdout
    for line in sys.stdin:
        command = json.loads(line)
        action = command.pop("do")
        try:
            if action == "quit":
                _stop()
                out.write(json.dumps({"bye": True}) + "\n")
                out.flush()
                return
            answer = {"warm": _warm, "upload": _upload, "sync": _sync, "sync_resumed": _sync_resumed, "listen": _listen,
                      "stop": _stop, "count": _count, "counted": _counted}[action](**command)
        except Exception as error:  # reported to the parent, which stops the benchmark
            answer = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
