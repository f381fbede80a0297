"""The reliability suite's setup: an Azurite of its own (on disk, so that it can be stopped and
started again without losing data), the sync worker fed by the local host's queue listener, and
time compressed (short backoffs, leases, retry delays, timeouts) so that a scenario takes seconds.

Seeds: RELIABILITY_SEEDS scenarios (default 20, the CI set) from RELIABILITY_FIRST_SEED (default 0).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from devtools.azurite import Azurite

SEEDS = int(os.environ.get("RELIABILITY_SEEDS", "20"))
FIRST_SEED = int(os.environ.get("RELIABILITY_FIRST_SEED", "0"))

# Collected over the session, printed at the end (see pytest_terminal_summary).
TOTALS: dict = {"scenarios": 0, "faults": Counter(), "divergences": [], "seconds": 0.0, "files": 0, "operations": 0,
          "calls": 0, "failed_calls": 0, "kinds": Counter(), "passes": 0, "pass_seconds": 0.0, "widest_traversal": 0,
          "repeated_ids": 0}


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Overrides the session's Azurite for this directory: a dedicated one, persisted to disk."""
    with Azurite(location=tmp_path_factory.mktemp("reliability-azurite"), in_memory=False) as running:
        yield running


@pytest.fixture
def compressed_time(monkeypatch: pytest.MonkeyPatch, app_settings) -> None:
    """Every wait the app makes, shortened: the behaviour is the same, minutes become seconds."""
    from functions import storage
    from functions.microsoft import transport
    from functions.sync import itemrows, state

    monkeypatch.setattr(transport, "BASE_BACKOFF_SECONDS", 0.02)
    monkeypatch.setattr(transport, "MAX_BACKOFF_SECONDS", 0.5)
    # An unanswered Graph call gives up after 1.5 s instead of 60 (the emulator's "timeout" fault hangs 3 s).
    monkeypatch.setattr(transport, "TIMEOUT", httpx.Timeout(connect=2.0, read=1.5, write=2.0, pool=5.0))
    transport.client.cache_clear()
    monkeypatch.setattr(itemrows, "RETRY_BASE", timedelta(seconds=1))  # parked items retried after 1 s, not 5 min
    monkeypatch.setattr(itemrows, "RETRY_MAX", timedelta(seconds=3))
    # A dead worker's lease runs out after 2 s instead of 60.
    monkeypatch.setattr(state, "LEASE_SECONDS", 2.0)
    # The storage SDKs' first retry after an outage: ~0.3 s instead of 15 s.
    monkeypatch.setattr(storage.clients, "_CLIENT_OPTIONS", {**storage.clients._CLIENT_OPTIONS, "initial_backoff": 0.3,
                                                    "increment_base": 2, "random_jitter_range": 0.2, "retry_total": 6})
    storage.reset_clients()
    yield
    transport.client.cache_clear()
    storage.reset_clients()


@pytest.fixture
def sync_worker_host(compressed_time) -> Iterator[None]:
    """The sync_worker function, fed from the sync queue by the local host's listener, with
    host.json's semantics (leases, retries, poison queue) and short timings."""
    from devtools.host.config import HostOptions, QueueOptions
    from devtools.host.invocation import Invoker
    from devtools.host.queues import QueueListener
    from tests.fixtures.app import function_specs

    spec = next(s for s in function_specs() if s.name == "sync_worker")
    options = HostOptions(queues=QueueOptions(batch_size=4, new_batch_threshold=2, max_dequeue_count=5,
                                              visibility_timeout=0.5, max_polling_interval=0.25),
                          function_timeout=6.0)
    invoker = Invoker()
    listener = QueueListener(spec, options, invoker).start()
    yield
    listener.stop(timeout=30)
    invoker.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if not TOTALS["scenarios"]:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability")
    write(f"scenarios run: {TOTALS['scenarios']} ({TOTALS['operations']} drive operations, "
          f"{TOTALS['files']} files checked at the end, {TOTALS['seconds']:.0f} s)")
    if TOTALS["calls"]:
        write(f"calls to Microsoft (sign-in, Graph, downloads): {TOTALS['calls']}, of which failed by injection: "
              f"{TOTALS['failed_calls']} ({TOTALS['failed_calls'] / TOTALS['calls']:.0%}; 20% while a round's faults are armed)")
    write("drive operations, by kind:")
    for kind, count in sorted(TOTALS["kinds"].items(), key=lambda kv: (-kv[1], kv[0])):
        write(f"  {count:6d}  {kind}")
    write(f"sync passes: {TOTALS['passes']}, longest {TOTALS['pass_seconds']:.1f} s; widest parent-chain traversal "
          f"{TOTALS['widest_traversal']} ids, ids asked for twice: {TOTALS['repeated_ids']}")
    write("faults injected, by kind:")
    for kind, count in sorted(TOTALS["faults"].items(), key=lambda kv: (-kv[1], kv[0])):
        if not count:
            continue
        write(f"  {count:6d}  {kind}")
    write(f"divergences: {len(TOTALS['divergences'])}" + (f" (seeds {TOTALS['divergences']})" if TOTALS["divergences"] else ""))
