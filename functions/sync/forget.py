"""Forgetting a connection's sync: its rows in every sync table, and (when asked) its mirror.

The sync owns these rows and blobs, so it owns wiping them: a disconnect calls `wipe`, and a sync
that was running during a disconnect calls `after_disconnect` once it has stopped writing (it may
have written rows, or blobs, after the disconnect's wipe and before it noticed).
"""

from __future__ import annotations

import logging

from functions import connections, storage
from functions.connections import ConnectionState

log = logging.getLogger(__name__)

# Every row of these tables has PartitionKey = connection id.
PER_CONNECTION_TABLES = (
    storage.Tables.SYNC_STATE,
    storage.Tables.DRIVE_ITEMS,
    storage.Tables.PENDING_ITEMS,
    storage.Tables.FAILED_ITEMS,
    storage.Tables.SKIPPED_ITEMS,
)


def wipe(connection_id: str, *, mirror: bool) -> tuple[int, int]:
    """Delete the connection's sync rows (and its mirrored blobs if `mirror`); (rows, blobs) removed.
    Safe to repeat."""
    rows = sum(storage.Table(name).wipe_partition(connection_id) for name in PER_CONNECTION_TABLES)
    blobs = _delete_mirror(connection_id) if mirror else 0
    return rows, blobs


def after_disconnect(connection_id: str) -> None:
    """A sync that stopped because the connection went away wipes what it may have written late."""
    connection = connections.get(connection_id)
    if connection is None or connection.state != ConnectionState.DISCONNECTED:
        return  # not disconnected (or signed in again): its rows are live
    rows, blobs = wipe(connection_id, mirror=connection.mirror_deleted)
    if rows or blobs:
        log.info("after disconnect: %d late sync rows and %d files removed", rows, blobs, extra={"connection_id": connection_id})


def _delete_mirror(connection_id: str) -> int:
    container = storage.blobs.files()
    names = list(container.names(storage.mirror_prefix(connection_id)))
    container.delete_all(names)
    return len(names)
