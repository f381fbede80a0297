"""Disconnect a drive: stop notifications, forget its tokens and sync state, keep (or drop) its mirror.

The connection row stays, in state `disconnected`, for the product's history; signing in again
revives it with the same id. Every step tolerates having been done before, so a retry (or a
second DELETE) finishes whatever an interrupted one left.
"""

from __future__ import annotations

import logging

from functions import connections, storage
from functions.connections import ConnectionState
from functions.notifications import subscriptions

log = logging.getLogger(__name__)

# Every row of these tables has PartitionKey = connection id.
PER_CONNECTION_TABLES = (
    storage.Tables.SYNC_STATE,
    storage.Tables.DRIVE_ITEMS,
    storage.Tables.PENDING_ITEMS,
    storage.Tables.FAILED_ITEMS,
)
_BATCH = 100  # Table transactions: at most 100 entities of one partition
_BLOB_BATCH = 256  # Blob batch delete: at most 256 blobs


def disconnect(connection_id: str, *, delete_mirror: bool = False) -> bool:
    """Returns whether the connection existed. Safe to call again, and for an unknown id."""
    existed = connections.get(connection_id) is not None
    if existed:
        # First, so a sync starting now sees it and stops (and the timer skips it); a sync already
        # running stops when its lease row goes, then calls `clean_up_after_sync`.
        connections.update(connection_id, mirror_deleted=delete_mirror)
        connections.set_state(connection_id, ConnectionState.DISCONNECTED)
    try:
        subscriptions.delete(connection_id)
    except Exception as error:  # noqa: BLE001 - revoked tokens, Graph down: the subscription lapses by itself
        log.warning("disconnect: Graph subscription not deleted (%s); local state removed anyway", type(error).__name__,
                    extra={"connection_id": connection_id})
    from functions.tokens import vault

    vault.delete(connection_id)
    removed = _wipe_sync_rows(connection_id)
    blobs = _delete_mirror(connection_id) if delete_mirror else 0
    if existed:
        # Again: a token refusal above may have marked it reauth_required meanwhile.
        connections.set_state(connection_id, ConnectionState.DISCONNECTED)
    log.info("disconnected: %d sync rows and %d mirrored files removed", removed, blobs, extra={"connection_id": connection_id})
    return existed


def clean_up_after_sync(connection_id: str) -> None:
    """A sync that was running during a disconnect may have written rows (and blobs) after the wipe
    before it noticed: it calls this once it has stopped writing."""
    connection = connections.get(connection_id)
    if connection is None or connection.state != ConnectionState.DISCONNECTED:
        return  # not disconnected (or signed in again): its rows are live
    removed = _wipe_sync_rows(connection_id)
    blobs = _delete_mirror(connection_id) if connection.extra.get("mirror_deleted") else 0
    if removed or blobs:
        log.info("after disconnect: %d late sync rows and %d files removed", removed, blobs, extra={"connection_id": connection_id})


def _wipe_sync_rows(connection_id: str) -> int:
    return sum(_wipe_partition(name, connection_id) for name in PER_CONNECTION_TABLES)


def _wipe_partition(table_name: str, connection_id: str) -> int:
    from azure.data.tables import TableTransactionError

    table = storage.table(table_name)
    keys = [
        row["RowKey"]
        for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": connection_id}, select=["RowKey"])
    ]
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start : start + _BATCH]
        try:
            table.submit_transaction([("delete", {"PartitionKey": connection_id, "RowKey": key}) for key in chunk])
        except TableTransactionError:
            # A row went meanwhile (a sync finishing): the whole transaction failed, so go one by one.
            for key in chunk:
                table.delete_entity(connection_id, key)
    return len(keys)


def _delete_mirror(connection_id: str) -> int:
    container = storage.files_container()
    names = [blob.name for blob in container.list_blobs(name_starts_with=f"{connection_id}/")]
    for start in range(0, len(names), _BLOB_BATCH):
        container.delete_blobs(*names[start : start + _BLOB_BATCH], delete_snapshots="include")
    return len(names)
