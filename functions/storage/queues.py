"""Queue messages: send one (JSON, base64 as the Functions trigger expects), and count them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from functions.errors import NotFound
from functions.storage import clients
from functions.storage.faults import translated

MAX_DELAY_SECONDS = 7 * 24 * 3600  # the service's limit on a message's initial invisibility


def send(queue_name: str, payload: Mapping[str, Any], *, delay_seconds: int = 0, patient: bool = True) -> None:
    """Put one JSON message on a queue; `delay_seconds` keeps it invisible that long (max 7 days).

    `patient=False` fails at once instead of retrying: for callers that must answer quickly and
    have someone to retry for them (the webhook answers 503 and Graph delivers again).
    """
    send_text(queue_name, json.dumps(payload, separators=(",", ":"), sort_keys=True), delay_seconds=delay_seconds,
              patient=patient)


def send_text(queue_name: str, body: str, *, delay_seconds: int = 0, patient: bool = True) -> None:
    """Put one message on a queue as it is (`send` for JSON payloads)."""
    retries: dict[str, Any] = {} if patient else {"retry_total": 0}
    with translated(f"send to {queue_name}"):
        clients.queue(queue_name).send_message(
            body, visibility_timeout=max(0, min(int(delay_seconds), MAX_DELAY_SECONDS)) or None, **retries)


def depth(queue_name: str) -> int:
    """About how many messages wait in the queue (0 for a queue that doesn't exist yet)."""
    try:
        with translated(f"properties of {queue_name}"):
            return clients.queue_service().get_queue_client(queue_name).get_queue_properties().approximate_message_count or 0
    except NotFound:
        return 0
