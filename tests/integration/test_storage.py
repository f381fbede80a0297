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
