"""The local host running the sample app (tests/host/sample_app.py) against Azurite."""

from __future__ import annotations

import base64
import contextlib
import functools
from collections.abc import Callable, Iterator

import pytest

from devtools.host.config import HostOptions, QueueOptions
from devtools.host.runtime import LocalHost
from tests.host import sample_app

KEY = "host-test-key"
SCHEDULE = "*/1 * * * * *"

# Fast retries so that a message reaches the poison queue in well under a second.
FAST = HostOptions(queues=QueueOptions(batch_size=4, new_batch_threshold=2, max_dequeue_count=3,
                                       visibility_timeout=0, max_polling_interval=0.2, message_encoding="base64"))


@functools.cache
def sample_specs():
    from devtools.host.bindings import load

    return load(sample_app.app, environ={"SAMPLE_SCHEDULE": SCHEDULE})


@pytest.fixture
def start_host(storage) -> Iterator[Callable[..., LocalHost]]:
    """`start_host(options=..., run_timers=...)` → a started LocalHost on the sample app."""
    started: list[LocalHost] = []
    sample_app.invocations.clear()

    def start(*, options: HostOptions = FAST, run_timers: bool = False, run_queues: bool = True) -> LocalHost:
        host = LocalHost(sample_specs(), function_key=KEY, options=options, run_timers=run_timers, run_queues=run_queues)
        started.append(host.start())
        return host

    yield start
    for host in started:
        host.stop()


def raw_queue(name: str):
    """A queue client reading and writing raw text, to see exactly what the host sees."""
    from functions import storage

    client = storage.queue_service().get_queue_client(name)
    with contextlib.suppress(Exception):
        client.create_queue()
    return client


def send_base64(name: str, text: str) -> None:
    raw_queue(name).send_message(base64.b64encode(text.encode()).decode())


def invocations_of(function: str) -> list[dict]:
    return [entry for entry in list(sample_app.invocations) if entry["function"] == function]
