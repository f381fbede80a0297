"""Disconnect a drive: stop notifications, forget its tokens and sync state, keep (or drop) its mirror.

The connection row stays, in state `disconnected`, for the product's history; signing in again
revives it with the same id. Every step tolerates having been done before, so a retry (or a
second DELETE) finishes whatever an interrupted one left.
"""

from __future__ import annotations

import logging

from functions import connections
from functions.connections import ConnectionState
from functions.notifications import subscriptions
from functions.sync import forget

log = logging.getLogger(__name__)


def disconnect(connection_id: str, *, delete_mirror: bool = False) -> bool:
    """Returns whether the connection existed. Safe to call again, and for an unknown id."""
    existed = connections.get(connection_id) is not None
    if existed:
        # First, so a sync starting now sees it and stops (and the timer skips it); a sync already
        # running stops when its lease row goes, then calls `forget.after_disconnect`.
        connections.update(connection_id, connections.Update(mirror_deleted=delete_mirror))
        connections.set_state(connection_id, ConnectionState.DISCONNECTED)
    try:
        subscriptions.delete(connection_id)
    except Exception as error:  # noqa: BLE001 - revoked tokens, Graph down: the subscription lapses by itself
        log.warning("disconnect: Graph subscription not deleted (%s); local state removed anyway", type(error).__name__,
                    extra={"connection_id": connection_id})
    from functions.tokens import vault

    vault.delete(connection_id)
    removed, blobs = forget.wipe(connection_id, mirror=delete_mirror)
    if existed:
        # Again: a token refusal above may have marked it reauth_required meanwhile.
        connections.set_state(connection_id, ConnectionState.DISCONNECTED)
    log.info("disconnected: %d sync rows and %d mirrored files removed", removed, blobs, extra={"connection_id": connection_id})
    return existed
