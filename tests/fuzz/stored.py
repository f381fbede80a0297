"""Everything the app could have stored or queued, as a comparable value: tables (entities with
their ETags), queues (message counts, invisible ones included) and blobs (names with ETags)."""

from __future__ import annotations

from typing import Any

from functions import storage


def snapshot() -> dict[str, Any]:
    state: dict[str, Any] = {}
    tables = storage.table_service()
    for table in tables.list_tables():
        client = tables.get_table_client(table.name)
        state[f"table:{table.name}"] = sorted(
            (e["PartitionKey"], e["RowKey"], e.metadata.get("etag")) for e in client.list_entities()
        )
    queues = storage.queue_service()
    for queue in queues.list_queues():
        # The approximate count includes invisible (delayed) messages, unlike a peek.
        count = queues.get_queue_client(queue.name).get_queue_properties().approximate_message_count
        state[f"queue:{queue.name}"] = count
    blobs = storage.blob_service()
    for container in blobs.list_containers():
        client = blobs.get_container_client(container.name)
        state[f"container:{container.name}"] = sorted((b.name, b.etag) for b in client.list_blobs())
    return state


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What differs, ignoring empty tables/queues/containers that merely came into existence."""
    empty = (0, [], None)
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key) and not (before.get(key) in empty and after.get(key) in empty)}


def queued_messages(state: dict[str, Any]) -> int:
    return sum(count for key, count in state.items() if key.startswith("queue:"))
