"""A closed-loop HTTP load generator: a few client processes, each sending requests back to back.

Clients run in processes of their own so that their Python work does not share a GIL with the
server under test (which runs in the benchmark's process, as the local host does).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass

from .report import percentile


@dataclass(frozen=True)
class LoadResult:
    latencies_ms: list[float]
    statuses: dict[int, int]
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def _client(url: str, bodies: list[bytes], headers: dict[str, str], warmup: int, start_at: float, out) -> None:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    with httpx.Client(headers=headers, timeout=30) as client:
        for body in bodies[:warmup]:  # opens the keep-alive connection, warms the route
            client.post(url, content=body)
        while time.perf_counter() < start_at:
            time.sleep(0.001)
        first = time.perf_counter()
        for body in bodies[warmup:]:
            sent = time.perf_counter()
            status = client.post(url, content=body).status_code
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
        last = time.perf_counter()
    # CLOCK_MONOTONIC is system-wide on Linux: start and end compare across processes.
    out.put((latencies, statuses, first, last))


def post_load(url: str, bodies_per_client: list[list[bytes]], *, headers: dict[str, str] | None = None,
              warmup: int = 20) -> LoadResult:
    """POST each client's bodies (the first `warmup` untimed) concurrently; all clients start together."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.perf_counter() + 3.0  # time for the spawned interpreters to import httpx and warm up
    processes = [context.Process(target=_client, args=(url, bodies, headers or {}, warmup, start_at, out), daemon=True)
                 for bodies in bodies_per_client]
    for process in processes:
        process.start()
    results = [out.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(10)
    latencies = [ms for r in results for ms in r[0]]
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r[1].items():
            statuses[status] = statuses.get(status, 0) + count
    seconds = max(r[3] for r in results) - min(r[2] for r in results)
    return LoadResult(latencies, statuses, seconds)
