"""Queue triggers against Azure Storage (Azurite locally), with the semantics of host.json.

Like the Functions host: messages are fetched in batches of `batchSize` and a new batch is fetched
when no more than `newBatchThreshold` are still running; a message is leased for the function
timeout while it runs; a failure makes it visible again after `visibilityTimeout`; once its dequeue
count reaches `maxDequeueCount` it is copied, unchanged, to `<queue>-poison` and deleted. Polling
backs off while the queue is empty, up to `maxPollingInterval`. Nothing one invocation does (fail,
raise, hang) stops the listener.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.functions.queue import QueueMessage

from .bindings import FunctionSpec
from .config import HostOptions
from .invocation import Invoker

log = logging.getLogger("devtools.host")

MIN_POLLING_INTERVAL = 0.1


class UndecodableMessage(ValueError):
    pass


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}-poison"


def queue_service_for(connection: str) -> Any:
    """The queue service a binding's `connection` names: the app's own storage module for
    AzureWebJobsStorage (same credentials and endpoints as the app), else a connection string."""
    from functions import storage

    if connection in ("", storage.CONNECTION):
        return storage.queue_service()
    from azure.storage.queue import QueueServiceClient

    value = os.environ.get(connection, "").strip()
    if not value:
        raise KeyError(f"queue trigger connection {connection!r} names no setting")
    return QueueServiceClient.from_connection_string(value)


class QueueListener:
    """Runs one queue-triggered function. `start()`, `stop()`."""

    def __init__(self, spec: FunctionSpec, options: HostOptions, invoker: Invoker,
                 queue_service: Callable[[], Any] | None = None) -> None:
        self.spec = spec
        self.options = options
        self.queue_options = options.queues
        self.invoker = invoker
        self._queue_service = queue_service or (lambda: queue_service_for(spec.binding.get("connection", "")))
        slots = self.queue_options.batch_size + self.queue_options.new_batch_threshold
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=f"queue:{spec.queue_name}")
        self._in_flight = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll:{spec.queue_name}", daemon=True)
        self._queue: Any = None
        self._poison: Any = None

    # Lifecycle

    def start(self) -> QueueListener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop fetching, then wait (up to `timeout`) for the running invocations to finish."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.notify_all()
            while self._in_flight and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            if self._in_flight:
                # As when Azure's host dies: the messages stay leased and come back after the lease.
                log.warning("Queue %s: %d invocations still running at shutdown", self.spec.queue_name, self._in_flight)
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._executor.shutdown(wait=False, cancel_futures=True)

    # Polling

    def _clients(self) -> tuple[Any, Any]:
        if self._queue is None:
            service = self._queue_service()
            # Raw text in and out: decoding is ours (a bad message must be poisoned, not crash
            # the SDK), and a poison message must keep its exact original content.
            queue = service.get_queue_client(self.spec.queue_name)
            poison = service.get_queue_client(poison_queue_name(self.spec.queue_name))
            _create_if_missing(queue)
            self._queue, self._poison = queue, poison
        return self._queue, self._poison

    def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        failing_since_logged = False
        while not self._stopping.is_set():
            self._wait_for_room()
            if self._stopping.is_set():
                break
            try:
                queue, _ = self._clients()
                wanted = self.queue_options.batch_size
                messages = list(queue.receive_messages(messages_per_page=wanted, max_messages=wanted,
                                                       visibility_timeout=int(self.options.function_timeout)))
                if failing_since_logged:
                    log.info("Queue %s is reachable again", self.spec.queue_name)
                    failing_since_logged = False
            except Exception as error:  # storage unreachable: keep trying, log once
                if not failing_since_logged:
                    log.warning("Cannot read queue %s (%s); retrying", self.spec.queue_name, type(error).__name__)
                    failing_since_logged = True
                self._queue = None
                messages = []
            if messages:
                delay = MIN_POLLING_INTERVAL
                for message in messages:
                    with self._changed:
                        self._in_flight += 1
                    self._executor.submit(self._process, message)
                continue
            self._stopping.wait(delay)
            delay = min(delay * 2, max(MIN_POLLING_INTERVAL, self.queue_options.max_polling_interval))

    def _wait_for_room(self) -> None:
        with self._changed:
            while self._in_flight > self.queue_options.new_batch_threshold and not self._stopping.is_set():
                self._changed.wait()

    # One message

    def _process(self, message: Any) -> None:
        try:
            self._handle(message)
        except Exception:  # never let a storage hiccup kill the worker thread silently
            log.exception("Queue %s: could not complete message %s", self.spec.queue_name, message.id)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _handle(self, message: Any) -> None:
        queue, _ = self._clients()
        max_dequeue = self.queue_options.max_dequeue_count
        if message.dequeue_count > max_dequeue:
            # Already tried enough (e.g. a host crashed while running it): don't run it again.
            self._move_to_poison(message)
            return
        try:
            body = self._decode(message.content)
            trigger = QueueMessage(
                id=message.id, body=body, dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt,
                expiration_time=message.expires_on, insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
            )
            self.invoker.invoke(self.spec, trigger, reason=f"New queue message detected on '{self.spec.queue_name}'.")
        except Exception as error:
            if isinstance(error, UndecodableMessage):
                log.error("Queue %s: message %s is not valid %s (host.json messageEncoding): %s",
                          self.spec.queue_name, message.id, self.queue_options.message_encoding, error)
            if message.dequeue_count >= max_dequeue:
                self._move_to_poison(message)
            else:
                queue.update_message(message.id, message.pop_receipt,
                                      visibility_timeout=int(self.queue_options.visibility_timeout))
            return
        queue.delete_message(message.id, message.pop_receipt)

    def _decode(self, content: str | bytes | None) -> bytes:
        raw = content.encode() if isinstance(content, str) else (content or b"")
        if self.queue_options.message_encoding == "none":
            return raw
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as error:
            raise UndecodableMessage(str(error)) from None

    def _move_to_poison(self, message: Any) -> None:
        queue, poison = self._clients()
        _create_if_missing(poison)
        poison.send_message(message.content)
        queue.delete_message(message.id, message.pop_receipt)
        log.error("Message %s moved to poison queue %s after %d attempts (function %s)", message.id,
                  poison_queue_name(self.spec.queue_name), message.dequeue_count, self.spec.name)


def _create_if_missing(queue: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
