"""The consumer example in docs/examples (quoted by the README) reads what the sync worker emits."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema_rs

from functions.storage import Queues
from functions.sync import events

ROOT = Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("consume_change_events", ROOT / "docs/examples/consume_change_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_consumer_receives_each_event_once_as_schema_valid_json(storage):
    example = load_example()
    at = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    sent = [
        events.ChangeEvent(events.ChangeType.CREATED, "c1", "ID1", "Docs/a b.txt", size=3, quickxorhash="AAA=", occurred_at=at),
        events.ChangeEvent(events.ChangeType.MOVED, "c1", "ID1", "Archive/a b.txt", old_path="Docs/a b.txt", size=3,
                           quickxorhash="AAA=", occurred_at=at),
        events.ChangeEvent(events.ChangeType.DELETED, "c1", "ID1", "Archive/a b.txt", occurred_at=at),
    ]
    for event in sent:
        events.emit(event)
    queue = example.change_events_queue(storage.connection_string, Queues.EVENTS)
    received: list[dict] = []

    assert example.consume(queue, received.append) == 3

    assert sorted(json.dumps(e, sort_keys=True) for e in received) == sorted(
        json.dumps(e.to_message(), sort_keys=True) for e in sent)  # order is not promised
    schema = json.loads((ROOT / "docs/change-event.schema.json").read_text())
    for event in received:
        jsonschema_rs.validate(schema, event)
    assert example.consume(queue, received.append) == 0  # handled messages are deleted


def test_an_event_whose_handler_fails_stays_on_the_queue(storage):
    example = load_example()
    events.emit(events.ChangeEvent(events.ChangeType.CREATED, "c1", "ID1", "x.txt", size=1, quickxorhash="AAA="))
    queue = example.change_events_queue(storage.connection_string, Queues.EVENTS)

    def crash(event):
        raise RuntimeError("consumer died")

    with contextlib.suppress(RuntimeError):
        example.consume(queue, crash, visibility_timeout=1)
    assert queue.get_queue_properties().approximate_message_count == 1
