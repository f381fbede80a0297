"""The app's storage clients against real Azurite: tables with ETags, blobs, base64 queues."""

import base64
import json

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import UpdateMode
from azure.storage.queue import QueueClient

from functions import storage as app_storage


def test_table_round_trip_detects_etag_conflict(storage):
    table = app_storage.table(app_storage.Tables.SYNC_STATE)
    table.create_entity({"PartitionKey": "c1", "RowKey": "sync", "delta_link": "a"})
    first = table.get_entity("c1", "sync")
    second = table.get_entity("c1", "sync")
    first["delta_link"] = "b"
    table.update_entity(first, mode=UpdateMode.REPLACE, etag=first.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    second["delta_link"] = "c"
    with pytest.raises(ResourceModifiedError):
        table.update_entity(second, mode=UpdateMode.REPLACE, etag=second.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    assert table.get_entity("c1", "sync")["delta_link"] == "b"


def test_blob_round_trip_with_metadata(storage):
    blob = app_storage.container("onedrive-files").get_blob_client("c1/Docs/ä b#%+.txt")
    blob.upload_blob(b"hello", metadata={"item_id": "A!1"})
    assert blob.download_blob().readall() == b"hello"
    assert blob.get_blob_properties().metadata == {"item_id": "A!1"}


def test_queue_message_decodes_as_the_functions_trigger_does(storage):
    app_storage.send(app_storage.Queues.SYNC, {"connection_id": "c1", "reason": "test"})
    # Read it raw, without the app's decode policy, the way the Functions host receives it.
    raw = QueueClient.from_connection_string(storage.connection_string, app_storage.Queues.SYNC)
    message = next(iter(raw.receive_messages()))
    assert json.loads(base64.b64decode(message.content)) == {"connection_id": "c1", "reason": "test"}


def test_each_test_starts_with_empty_storage(storage):
    assert list(app_storage.table_service().list_tables()) == []
    assert list(app_storage.queue_service().list_queues()) == []


# ----- the adapter the core uses: the project's errors, and one compare-and-swap loop ----------


def test_the_adapter_raises_the_projects_errors_never_the_sdks(storage):
    from functions.errors import Conflict, NotFound

    table = app_storage.Table(app_storage.Tables.SYNC_STATE)
    with pytest.raises(NotFound):
        table.merge({"PartitionKey": "c1", "RowKey": "r", "x": 1})  # must exist
    etag = table.insert({"PartitionKey": "c1", "RowKey": "r", "x": 1})
    with pytest.raises(Conflict):
        table.insert({"PartitionKey": "c1", "RowKey": "r", "x": 2})  # insert-new only
    table.merge({"PartitionKey": "c1", "RowKey": "r", "x": 3})
    with pytest.raises(Conflict):
        table.replace({"PartitionKey": "c1", "RowKey": "r", "x": 4}, etag=etag)  # changed since
    table.delete("c1", "r")
    with pytest.raises(Conflict):  # gone since: a conditional write loses too
        table.merge({"PartitionKey": "c1", "RowKey": "r", "x": 5}, etag=etag)
    assert table.get("c1", "r") is None
    container = app_storage.Container("onedrive-files")
    assert container.probe("c1/none") is None and container.delete("c1/none") is False
    container.upload("c1/a", b"abc", {})
    old = container.probe("c1/a")
    container.upload("c1/a", b"abd", {})
    with pytest.raises(Conflict):  # the bytes planned with are not the bytes there now
        container.read("c1/a", offset=0, length=3, etag=old.etag)


def test_large_integers_round_trip_as_plain_ints(storage):
    table = app_storage.Table(app_storage.Tables.DRIVE_ITEMS)
    table.upsert({"PartitionKey": "c1", "RowKey": "r", "big": 5 * 1024**3, "small": app_storage.Int64(7)})
    row = table.get("c1", "r")
    assert row is not None and (row["big"], row["small"]) == (5 * 1024**3, 7)
    assert type(row["big"]) is int and type(row["small"]) is int
    raw = app_storage.table(app_storage.Tables.DRIVE_ITEMS).get_entity("c1", "r")
    assert raw["small"].edm_type == "Edm.Int64"  # stored as asked, whatever the value


def test_swap_decides_again_on_the_row_that_won_a_race(storage):
    table = app_storage.Table(app_storage.Tables.SYNC_STATE)
    seen: list[object] = []

    def add_one(row):
        seen.append(None if row is None else row["n"])
        if len(seen) == 2:  # someone else writes between our read and our write
            table.merge({"PartitionKey": "c1", "RowKey": "r", "n": 10})
        return app_storage.Write({"n": (0 if row is None else row["n"]) + 1}, "done")

    assert app_storage.swap(table, "c1", "r", add_one, attempts=5).result == "done"  # inserted: n = 1
    assert app_storage.swap(table, "c1", "r", add_one, attempts=5).result == "done"  # lost once, then 11
    assert seen == [None, 1, 10]
    assert table.get("c1", "r")["n"] == 11
    kept = app_storage.swap(table, "c1", "r", lambda row: app_storage.Keep(row["n"]), attempts=1)
    assert (kept.result, kept.etag) == (11, None)


def test_threads_asking_at_once_for_a_client_create_its_queue_table_and_container_once(storage):
    # The copy's threads send their first change events together: each missed the client cache,
    # and each asked Azurite to create the queue (up to 3 calls where 1 is needed, in one sync).
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from devtools.calls import CallCounter

    together = Barrier(8)

    def first_use(_: int) -> None:
        together.wait()
        app_storage.queue(app_storage.Queues.EVENTS)
        app_storage.table(app_storage.Tables.SYNC_STATE)
        app_storage.files_container()

    with CallCounter.for_environment() as calls, ThreadPoolExecutor(8) as pool:
        list(pool.map(first_use, range(8)))
    assert dict(calls.snapshot()) == {"queue": 1, "table": 1, "blob": 1}, calls.calls
