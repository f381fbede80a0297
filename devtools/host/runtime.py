"""The local host as one object: HTTP server, queue listeners and timers for a list of functions."""

from __future__ import annotations

import logging
from typing import Any

from devtools.serving import ServerThread

from .bindings import FunctionSpec
from .config import HostOptions
from .http_server import build_http_app
from .invocation import Invoker
from .queues import QueueListener
from .timers import TimerRunner

log = logging.getLogger("devtools.host")

SUPPORTED_TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")


class LocalHost:
    """`LocalHost(specs, function_key=...).start()`; `.url`; `.stop()`.

    `run_queues` / `run_timers` switch those triggers off (e.g. to serve HTTP only)."""

    def __init__(self, specs: list[FunctionSpec], *, function_key: str, options: HostOptions | None = None,
                 host: str = "127.0.0.1", port: int = 0, run_queues: bool = True, run_timers: bool = True,
                 queue_service: Any = None) -> None:
        self.options = options or HostOptions.from_host_json()
        self.function_key = function_key
        self.invoker = Invoker()
        self.specs = [spec for spec in specs if _supported(spec)]
        self.http = ServerThread(build_http_app(self.specs, function_key=function_key), host=host, port=port)
        self.queue_listeners = [
            QueueListener(spec, self.options, self.invoker, queue_service)
            for spec in self.specs if spec.trigger == "queueTrigger" and run_queues
        ]
        self.timers = [TimerRunner(spec, self.invoker) for spec in self.specs if spec.trigger == "timerTrigger" and run_timers]

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> LocalHost:
        self.http.start()
        for runner in (*self.queue_listeners, *self.timers):
            runner.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop triggering; give running invocations up to `timeout` seconds to finish."""
        for runner in (*self.timers, *self.queue_listeners):
            runner.stop(timeout)
        self.http.stop()
        self.invoker.stop()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _supported(spec: FunctionSpec) -> bool:
    if spec.trigger not in SUPPORTED_TRIGGERS:
        log.error("Function %s has a %s, which the local host does not run (use Core Tools: func start)",
                  spec.name, spec.trigger)
        return False
    if spec.other_bindings:
        kinds = ", ".join(sorted({b["type"] for b in spec.other_bindings}))
        log.error("Function %s uses %s bindings, which the local host does not provide (use Core Tools: func start)",
                  spec.name, kinds)
        return False
    return True
