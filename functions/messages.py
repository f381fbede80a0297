"""Queue messages between the triggers, parsed at the edge into small typed objects.

Poison messages, one rule for every queue trigger: a message that can never succeed (`BadMessage`:
unreadable, or a task no version of the code would run) is `park`ed at once, unchanged, in the
queue's poison twin, for inspection; any other failure propagates, so the host retries the message
and parks it itself after `maxDequeueCount` attempts (host.json).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from functions import storage
from functions.errors import BadInput


class BadMessage(BadInput):
    """A queue message that can never be processed (kept in the poison queue for inspection)."""


def _json_object(body: bytes | str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadMessage(f"not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise BadMessage("not a JSON object")
    return payload


def _text(payload: dict[str, Any], name: str, *, required: bool = True, limit: int = 200) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise BadMessage(f"field {name!r} must be a non-empty string of at most {limit} characters")
    return value


@dataclass(frozen=True)
class SyncRequest:
    """"Bring this connection's mirror up to date." `reason` is for logs and status only."""

    connection_id: str
    reason: str = "notification"

    @classmethod
    def from_message(cls, body: bytes | str) -> SyncRequest:
        payload = _json_object(body)
        return cls(_text(payload, "connection_id"), _text(payload, "reason", required=False) or "notification")

    def to_message(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MaintenanceTask:
    """Per-connection upkeep, fanned out by the maintenance timer."""

    connection_id: str
    action: str  # "renew_subscription" | "refresh_token" | "safety_sync" | ...

    @classmethod
    def from_message(cls, body: bytes | str) -> MaintenanceTask:
        payload = _json_object(body)
        return cls(_text(payload, "connection_id"), _text(payload, "action"))

    def to_message(self) -> dict[str, Any]:
        return asdict(self)


def enqueue_sync(connection_id: str, reason: str, *, delay_seconds: int = 0, patient: bool = True) -> None:
    storage.send(storage.Queues.SYNC, SyncRequest(connection_id, reason).to_message(), delay_seconds=delay_seconds, patient=patient)


def enqueue_maintenance(task: MaintenanceTask, *, delay_seconds: int = 0, patient: bool = True) -> None:
    storage.send(storage.Queues.MAINTENANCE, task.to_message(), delay_seconds=delay_seconds, patient=patient)


def park(queue_name: str, body: bytes) -> None:
    """Keep a message that can never succeed in `queue_name`'s poison queue, as it came."""
    storage.queues.send_text(storage.poison_queue(queue_name), body.decode("utf-8", "replace"))
