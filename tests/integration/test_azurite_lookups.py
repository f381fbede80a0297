"""The benchmarks' Azurite (indexed lookups, devtools/azurite_indexed_lookups.js) answers exactly
as Azurite as shipped does: same rows, blobs and messages, same misses, same conflicts."""

from __future__ import annotations

from pathlib import Path

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from devtools.azurite import INDEXED_LOOKUPS, Azurite


def table_story(connection_string: str) -> list:
    """Reads, writes, batches and conditional updates over two partitions; what each returned."""
    table = TableServiceClient.from_connection_string(connection_string).create_table_if_not_exists("lookups")
    seen: list = []
    for pk in ("a", "b"):
        table.submit_transaction([("upsert", {"PartitionKey": pk, "RowKey": f"r{n:03d}", "n": n, "pk": pk}) for n in range(50)])
    table.submit_transaction([("upsert", {"PartitionKey": "a", "RowKey": f"r{n:03d}", "m": n * 2}, {"mode": "merge"})
                              for n in range(0, 50, 5)])
    for pk, rk in (("a", "r007"), ("b", "r007"), ("a", "r010"), ("a", "zzz"), ("c", "r001")):
        try:
            seen.append(dict(table.get_entity(pk, rk)))
        except ResourceNotFoundError:
            seen.append(("missing", pk, rk))
    entity = table.get_entity("b", "r020")
    table.update_entity({"PartitionKey": "b", "RowKey": "r020", "x": 1}, mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    try:
        table.update_entity({"PartitionKey": "b", "RowKey": "r020", "x": 2}, mode=UpdateMode.MERGE,
                            etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        seen.append("stale etag refused")
    table.delete_entity("a", "r003")
    seen.append(sorted(e["RowKey"] for e in table.query_entities("PartitionKey eq 'a' and RowKey le 'r005'")))
    seen.append(dict(table.get_entity("b", "r020")))
    return [{k: v for k, v in item.items() if k != "Timestamp"} if isinstance(item, dict) else item for item in seen]


def blob_and_queue_story(connection_string: str) -> list:
    service = BlobServiceClient.from_connection_string(connection_string)
    seen: list = []
    for container_name in ("lookups-a", "lookups-b"):
        container = service.create_container(container_name)
        for n in range(20):
            container.upload_blob(f"dir/{n:02d}.txt", f"{container_name}-{n}".encode(), metadata={"n": str(n)})
    container = service.get_container_client("lookups-a")
    blob = container.get_blob_client("dir/07.txt")
    seen.append((blob.download_blob().readall(), blob.get_blob_properties().metadata))
    snapshot = blob.create_snapshot()
    blob.upload_blob(b"changed", overwrite=True)
    seen.append(container.get_blob_client("dir/07.txt", snapshot=snapshot["snapshot"]).download_blob().readall())
    seen.append(blob.download_blob().readall())
    stale = container.get_blob_client("dir/08.txt").get_blob_properties().etag
    container.upload_blob("dir/08.txt", b"newer", overwrite=True)
    try:
        container.delete_blob("dir/08.txt", etag=stale, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        seen.append("stale etag refused")
    container.delete_blob("dir/09.txt")
    try:
        container.get_blob_client("dir/09.txt").get_blob_properties()
    except ResourceNotFoundError:
        seen.append("deleted blob missing")
    seen.append(sorted(container.list_blob_names(name_starts_with="dir/1")))
    # Listings under a prefix (a range of the name index in the benchmarks' Azurite): names just
    # outside the range, names that read as numbers, regex characters, the same names in the other
    # container, and deletes in between (the index kept in place, not rebuilt).
    other = service.get_container_client("lookups-b")
    for name in ("dir0", "dir.x", "dir/", "12", "123", "1e5", "12/a", "a(b)+/x", "a(b)+/y", "é/ü.txt", "é0", "dir/1/é"):
        container.upload_blob(name, name.encode())
        other.upload_blob(name, b"other")
    for name in ("dir/12.txt", "a(b)+/x", "123", "dir/00.txt"):
        container.delete_blob(name)
    for prefix in ("dir/", "dir", "dir/1", "1", "12", "12/", "a(b)+/", "é", "é/", "di", "zzz", "dir/19.txt"):
        seen.append((prefix, sorted(container.list_blob_names(name_starts_with=prefix))))
    seen.append(sorted(container.list_blob_names()))
    seen.append([(item.name, getattr(item, "prefix", None)) for item in container.walk_blobs(name_starts_with="dir/")])
    queue = QueueClient.from_connection_string(connection_string, "lookups")
    queue.create_queue()
    for n in range(5):
        queue.send_message(f"m{n}")
    received = list(queue.receive_messages(max_messages=3))
    queue.update_message(received[0], content="m0-updated", visibility_timeout=0)
    queue.delete_message(received[1])
    seen.append(sorted(m.content for m in queue.peek_messages(max_messages=10)))
    return seen


def test_indexed_lookups_change_nothing_but_speed(storage, tmp_path):
    with Azurite(location=tmp_path, in_memory=True, indexed_lookups=True) as indexed:
        environ = Path(f"/proc/{indexed.process.pid}/environ").read_bytes().decode(errors="replace")
        assert f"--require {INDEXED_LOOKUPS}" in environ  # node really loads the lookup
        assert table_story(indexed.connection_string) == table_story(storage.connection_string)
        assert blob_and_queue_story(indexed.connection_string) == blob_and_queue_story(storage.connection_string)
