"""Change events for the product: one JSON message per applied change on Queues.EVENTS.

Sent after the change is visible in the mirror. Delivery is at least once (a worker that dies
after applying a change and before recording it applies and announces it again), so consumers
should treat an event as "this is now the state of `path`", not as a counter.
Schema: docs/change-event.schema.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from functions import storage


class ChangeType(StrEnum):
    CREATED = "created"  # a file appeared in the mirror
    UPDATED = "updated"  # new bytes for a file already mirrored (oldPath set if it also moved)
    DELETED = "deleted"  # the file left the mirror (deleted in OneDrive, or no longer mirrorable)
    MOVED = "moved"  # same bytes, new path (a rename or a move of the file or of a folder above it)


@dataclass(frozen=True)
class ChangeEvent:
    type: ChangeType
    connection_id: str
    item_id: str
    path: str  # in the drive, "/"-separated, no leading slash; for `deleted`, the path it had
    old_path: str | None = None
    size: int | None = None
    quickxorhash: str | None = None
    occurred_at: datetime | None = None
    reason: str | None = None  # "unselected": the selection changed and the file is no longer in it

    def to_message(self) -> dict[str, Any]:
        occurred = (self.occurred_at or datetime.now(UTC)).astimezone(UTC)
        extra = {"reason": self.reason} if self.reason else {}
        return {**extra,
            "type": str(self.type),
            "connectionId": self.connection_id,
            "itemId": self.item_id,
            "path": self.path,
            "oldPath": self.old_path,
            "size": self.size,
            "quickXorHash": self.quickxorhash,
            "occurredAt": occurred.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }


def emit(event: ChangeEvent) -> None:
    storage.send(storage.Queues.EVENTS, event.to_message())
