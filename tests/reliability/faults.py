"""Faults the suite injects that the emulator's fault API can't: a worker that dies mid-sync, and
an Azurite that stops and comes back. Both act at seams nothing real reaches: the HTTP transports
of httpx and azure-core (third-party code), and the Azurite process."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx
from azure.core.pipeline.transport import RequestsTransport

# Threads that run the sync: the queue listener's invocations and the pools they start.
WORKER_THREADS = ("queue:sync-requests", "ThreadPoolExecutor-")


class WorkerKilled(BaseException):
    """The worker process dying: not an Exception, so no `except Exception` in the app stops it,
    and nothing is cleaned up or reported, as when the host is killed."""


class Killer:
    """Kills the sync worker at its n-th outbound call (Graph, downloads or storage), once per arming."""

    def __init__(self, tally: Counter) -> None:
        self.tally = tally
        self._lock = threading.Lock()
        self._remaining: int | None = None

    def arm(self, calls: int) -> None:
        with self._lock:
            self._remaining = calls

    def disarm(self) -> None:
        with self._lock:
            self._remaining = None

    def tick(self) -> None:
        if not threading.current_thread().name.startswith(WORKER_THREADS):
            return
        with self._lock:
            if self._remaining is None:
                return
            self._remaining -= 1
            if self._remaining > 0:
                return
            self._remaining = None
        self.tally["worker killed mid-sync"] += 1
        raise WorkerKilled()

    def install(self, monkeypatch) -> None:
        killer = self
        httpx_send = httpx.HTTPTransport.handle_request
        storage_send = RequestsTransport.send

        def handle_request(transport, request):
            killer.tick()
            return httpx_send(transport, request)

        def send(transport, request, **kwargs):
            killer.tick()
            return storage_send(transport, request, **kwargs)

        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
        monkeypatch.setattr(RequestsTransport, "send", send)


class StorageOutage:
    """Stops Azurite for a moment, in the background, while the sync runs; then starts it again
    on the same ports and data."""

    def __init__(self, azurite, tally: Counter) -> None:
        self.azurite = azurite
        self.tally = tally
        self._thread: threading.Thread | None = None

    def start(self, rng: random.Random) -> None:
        before, down = rng.uniform(0.0, 0.8), rng.uniform(0.3, 1.5)

        def outage() -> None:
            time.sleep(before)
            self.azurite.stop()
            time.sleep(down)
            self.azurite.start()

        self.tally["Azurite stopped and restarted"] += 1
        self._thread = threading.Thread(target=outage, name="azurite-outage", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None
