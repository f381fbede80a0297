"""The product's view of its users' connections: find them, inspect one, disconnect one.

Shapes come from `Connection.to_public()` (never a token); failed items are the sync worker's
rows in FAILED_ITEMS (PartitionKey = connection id).
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any
from urllib.parse import unquote

from functions import connections, storage
from functions.api.support import bad_request, decode_cursor, encode_cursor, parse_limit, require_connection

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_FAILED_ITEMS_SHOWN = 100
MAX_SKIPPED_ITEMS_SHOWN = 100
_MAX_REF = 512


def list_connections(*, ref: str | None, cursor: str | None, limit: str | None) -> dict[str, Any]:
    """One page of connections ordered by id, only those of product user `ref` when given."""
    ref = ref or None
    if ref is not None and (len(ref) > _MAX_REF or any(ord(ch) < 0x20 for ch in ref)):
        raise bad_request(f"ref must be at most {_MAX_REF} printable characters.", "invalid_ref")
    page_size = parse_limit(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    scope = {"r": ref}
    after = decode_cursor(cursor, scope=scope).get("a") if cursor else None
    if after is not None and not isinstance(after, str):
        raise bad_request("cursor is not valid for this listing; start again without it.", "invalid_cursor")
    found, next_after = connections.page(ref=ref, limit=page_size, after=after)
    return {
        "connections": [connection.to_public() for connection in found],
        "nextCursor": encode_cursor({**scope, "a": next_after}) if next_after else None,
    }


def get_connection(connection_id: str) -> dict[str, Any]:
    connection = require_connection(connection_id)
    failed, truncated = failed_items(connection_id)
    skipped, skipped_truncated = skipped_items(connection_id)
    return {**connection.to_public(), "failedItems": failed, "failedItemsTruncated": truncated,
            "skippedItems": skipped, "skippedItemsTruncated": skipped_truncated}


def skipped_items(connection_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The items the mirror leaves out on purpose, with the reason (at most MAX_SKIPPED_ITEMS_SHOWN),
    each with its path in the drive."""
    from functions.sync import itemrows, plan

    found, truncated = itemrows.skipped(connection_id, limit=MAX_SKIPPED_ITEMS_SHOWN)
    rows = itemrows.RowCache(connection_id)
    rows.load_chains(state.id for state, _ in found)
    resolver = plan.Resolver(rows, connection_id)
    return [{"itemId": state.id, "path": resolver.drive_path(state.id), "reason": reason} for state, reason in found], truncated


def failed_items(connection_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The items the sync parked after repeated failures, with their last error (at most
    MAX_FAILED_ITEMS_SHOWN; the connection's `itemsFailed` counter has the total)."""
    rows = storage.Table(storage.Tables.FAILED_ITEMS).query("PartitionKey eq @pk", {"pk": connection_id},
                                                             page_size=MAX_FAILED_ITEMS_SHOWN + 1)
    shown: list[dict[str, Any]] = []
    truncated = False
    for row in rows:
        if len(shown) == MAX_FAILED_ITEMS_SHOWN:
            truncated = True
            break
        timestamp = row.get("failed_at") or row.timestamp
        shown.append({
            "itemId": str(row.get("item_id") or unquote(row["RowKey"])),
            "path": row.get("path") or None,
            "error": row.get("error") or None,
            "attempts": int(row.get("attempts") or 0),
            "updatedAt": timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z") if timestamp else None,
        })
    _resolve_paths(connection_id, [item for item in shown if item["path"] is None])
    return shown, truncated


def _resolve_paths(connection_id: str, items: list[dict[str, Any]]) -> None:
    """Fill in where each item lives in the drive, from the sync engine's id map (the failed rows
    carry only the item id)."""
    if not items:
        return
    from functions.sync import itemrows, plan

    rows = itemrows.RowCache(connection_id)
    rows.load_chains(item["itemId"] for item in items)
    resolver = plan.Resolver(rows, connection_id)
    for item in items:
        item["path"] = resolver.desired(item["itemId"]).path or None


def delete_connection(connection_id: str, *, delete_mirror: str | None) -> None:
    """Disconnect: stop the subscription, forget the tokens, and (only when asked) delete the mirror."""
    if delete_mirror not in (None, "", "true", "false"):
        raise bad_request("deleteMirror must be true or false.", "invalid_delete_mirror")
    require_connection(connection_id)
    from functions.upkeep import disconnect

    disconnect.disconnect(connection_id, delete_mirror=delete_mirror == "true")
    log.info("connection disconnected through the API", extra={"connection_id": connection_id, "delete_mirror": delete_mirror == "true"})
