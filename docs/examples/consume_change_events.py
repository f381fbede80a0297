"""Consume onedrive-mirror's change events (a sketch to copy into the product).

    python docs/examples/consume_change_events.py [--once] "<connection string>"

Locally, the connection string is the one `scripts/run` prints ("Storage connection string"), or
`UseDevelopmentStorage=true` when Azurite has its usual ports (10000-10002); it can also come from
STORAGE_CONNECTION_STRING. `--once` handles what is waiting and exits; without it, it keeps polling.

The app puts one JSON message per applied change on the `change-events` queue of its storage
account, base64-encoded as Azure Functions queue messages are (schema: docs/change-event.schema.json).
In Azure, with Entra ID instead of a connection string:
    QueueClient("https://<account>.queue.core.windows.net", "change-events",
                credential=DefaultAzureCredential(), message_decode_policy=TextBase64DecodePolicy())
(the product's identity needs "Storage Queue Data Message Processor" on that queue).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from azure.storage.queue import QueueClient, TextBase64DecodePolicy


def change_events_queue(connection_string: str, queue_name: str = "change-events") -> QueueClient:
    return QueueClient.from_connection_string(connection_string, queue_name,
                                              message_decode_policy=TextBase64DecodePolicy())


def consume(queue: QueueClient, handle: Callable[[dict[str, Any]], None], *,
            max_messages: int = 32, visibility_timeout: int = 60) -> int:
    """Handle the waiting events; returns how many. A message is deleted only after `handle`
    returned: if the consumer dies, the event comes back after `visibility_timeout` seconds.
    Events arrive at least once, so `handle` should be idempotent (upsert by connectionId + path)."""
    handled = 0
    for message in queue.receive_messages(max_messages=max_messages, visibility_timeout=visibility_timeout):
        handle(json.loads(message.content))
        queue.delete_message(message)
        handled += 1
    return handled


def print_event(event: dict[str, Any]) -> None:
    where = f"{event['oldPath']} -> {event['path']}" if event["oldPath"] else event["path"]
    print(f"{event['occurredAt']} {event['connectionId']} {event['type']:8} {where} ({event['size']} bytes)")


def main(argv: list[str]) -> int:
    once = "--once" in argv
    given = [arg for arg in argv if arg != "--once"]
    connection_string = given[0] if given else os.environ.get("STORAGE_CONNECTION_STRING", "")
    if not connection_string:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    events = change_events_queue(connection_string)
    while True:
        handled = consume(events, print_event)
        if once:
            print(f"{handled} events handled.")
            return 0
        if not handled:
            time.sleep(2)  # the queue was empty: poll again shortly


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
