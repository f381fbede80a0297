"""Helpers for the notification tests: read queues, run the maintenance worker, make connection rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from functions import connections, storage
from tests.fixtures.app import function_specs


def drain(queue_name: str) -> list[dict[str, Any]]:
    """Receive and delete every visible message of a queue; their JSON bodies, in order."""
    client = storage.queue(queue_name)
    bodies = []
    while True:
        batch = list(client.receive_messages(messages_per_page=32, max_messages=32))
        if not batch:
            return bodies
        for message in batch:
            bodies.append(json.loads(message.content))
            client.delete_message(message)


def queued_count(queue_name: str) -> int:
    """Messages on a queue, visible or delayed."""
    return storage.queue(queue_name).get_queue_properties().approximate_message_count


def handler(name: str):
    return next(spec.handler for spec in function_specs() if spec.name == name)


def run_maintenance_worker() -> list[dict[str, Any]]:
    """Hand every visible maintenance task to the `maintenance_worker` function, as the host would."""
    worker = handler("maintenance_worker")
    tasks = drain(storage.Queues.MAINTENANCE)
    for task in tasks:
        worker(QueueMessage(body=json.dumps(task).encode(), dequeue_count=1))
    return tasks


def put_connections(count: int, *, prefix: str = "c", **fields: Any) -> list[str]:
    """Connection rows written straight into the table (for scale), 100 per transaction."""
    table = storage.table(storage.Tables.CONNECTIONS)
    ids = [f"{prefix}{n:06d}" for n in range(count)]
    now = datetime.now(UTC)
    base = {"account_id": "a", "drive_id": "d", "state": "active", "connected_at": now - timedelta(hours=1),
            "last_token_refresh_at": now - timedelta(hours=1), "last_sync_finished_at": now - timedelta(hours=1),
            "subscription_id": "s", "subscription_expires_at": now + timedelta(days=20)}
    base.update(fields)
    for start in range(0, count, 100):
        table.submit_transaction([("upsert", {"PartitionKey": connections.PARTITION, "RowKey": cid, **base}) for cid in ids[start:start + 100]])
    return ids


def post_json(client, path: str, payload: Any, **kwargs):
    return client.post(path, content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, **kwargs)


@pytest.fixture
def timer_request() -> func.TimerRequest:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=False)



@pytest.fixture
def subscribed(connected_drive):
    """A connected drive whose initial sync request has been taken off the queue."""
    drain(storage.Queues.SYNC)
    return connected_drive
