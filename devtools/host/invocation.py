"""Calling a function as the Python worker does: sync functions on the caller's thread, async
functions on one shared event loop, `context` passed when the function asks for it."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .bindings import FunctionSpec

log = logging.getLogger("devtools.host")


@dataclass
class _TraceContext:
    trace_parent: str = ""
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """The subset of `azure.functions.Context` a function can read locally."""

    invocation_id: str
    function_name: str
    function_directory: str = ""
    trace_context: _TraceContext = field(default_factory=_TraceContext)
    retry_context: Any = None
    thread_local_storage: Any = field(default_factory=threading.local)


class Invoker:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="host-async", daemon=True)
                self._thread.start()
            return self._loop

    def invoke(self, spec: FunctionSpec, trigger_value: Any, *, reason: str) -> Any:
        """Run one invocation; logs it like the Functions host and re-raises a failure."""
        invocation_id = str(uuid.uuid4())
        kwargs = {spec.arg_name: trigger_value}
        if "context" in inspect.signature(spec.handler).parameters:
            kwargs["context"] = Context(invocation_id, spec.name)
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.monotonic()
        try:
            if spec.is_async:
                result = asyncio.run_coroutine_threadsafe(spec.handler(**kwargs), self._event_loop()).result()
            else:
                result = spec.handler(**kwargs)
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", spec.name, invocation_id,
                          (time.monotonic() - started) * 1000)
            raise
        log.info("Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id,
                 (time.monotonic() - started) * 1000)
        return result

    def stop(self) -> None:
        with self._lock:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread:
                    self._thread.join(timeout=5)
                self._loop = None
