"""The app's own Microsoft credentials (client id and secret), as Microsoft last judged them.

A refused client secret (`invalid_client`: AADSTS7000222 expired, AADSTS7000215 wrong) fails every
connection alike, so it is one app-wide condition, not an error per connection: the first refusal is
recorded once (one row in `Tables.APP_STATE`), syncs and maintenance then pause with a doubling
backoff instead of failing their messages into the poison queue, the status page and the health
check show it, and the first token request that succeeds clears it. Changing the secret (a new
Key Vault version, a restart) ends the pause at once: the row remembers a fingerprint of the
refused secret, never the secret.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions import storage
from functions.settings import settings

log = logging.getLogger(__name__)

PARTITION, ROW = "credentials", "microsoft"
BACKOFF_START_SECONDS = 60
BACKOFF_MAX_SECONDS = 3600
# Every sync and token refresh asks; one storage read per process per half minute answers them.
CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Status:
    rejected: bool
    reason: str = ""
    since: datetime | None = None
    retry_at: datetime | None = None
    failures: int = 0
    fingerprint: str = ""

    def applies(self) -> bool:
        """Whether the refusal concerns the secret configured now (a new one deserves a try at once)."""
        return self.rejected and self.fingerprint == _fingerprint()

    def public(self) -> dict[str, Any]:
        return {"ok": not self.applies(), "reason": self.reason if self.applies() else "",
                "since": _iso(self.since) if self.applies() else None,
                "retryAt": _iso(self.retry_at) if self.applies() else None}


_FINE = Status(rejected=False)
_cached: tuple[Status, float] | None = None
_lock = threading.Lock()


def status(*, fresh: bool = False) -> Status:
    global _cached
    with _lock:
        if not fresh and _cached is not None and time.monotonic() - _cached[1] < CACHE_SECONDS:
            return _cached[0]
    current = _read()
    with _lock:
        _cached = (current, time.monotonic())
    return current


def pause_seconds(now: datetime | None = None) -> float:
    """How long work needing Microsoft's token endpoint should wait; 0 when it may go ahead."""
    current = status()
    if not current.applies() or current.retry_at is None:
        return 0.0
    return max(0.0, ((current.retry_at - (now or datetime.now(UTC))).total_seconds()))


def rejected(reason: str) -> float:
    """Record a refusal of the app's credentials; returns the seconds until the next attempt.

    Refusals meeting a pause still running (many workers at once) don't lengthen it: only a probe
    made after the pause counts as a new failure."""
    now = datetime.now(UTC)
    current = status(fresh=True)
    same = current.applies()
    if same and current.retry_at is not None and current.retry_at > now:
        return (current.retry_at - now).total_seconds()
    failures = current.failures + 1 if same else 1
    delay = min(BACKOFF_START_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
    recorded = Status(True, reason, current.since if same and current.since else now, now + timedelta(seconds=delay),
                      failures, _fingerprint())
    _table().upsert({"PartitionKey": PARTITION, "RowKey": ROW, "rejected": True, "reason": reason[:500],
                            "since": recorded.since, "retry_at": recorded.retry_at, "failures": failures,
                            "fingerprint": recorded.fingerprint})
    _remember(recorded)
    log.error("Microsoft refused the app's credentials (%s); work needing tokens pauses %d s", reason, delay)
    return float(delay)


def accepted() -> None:
    """A token request succeeded: clear a recorded refusal (cheap when there is none)."""
    if not status().rejected:
        return
    _table().delete(PARTITION, ROW)
    _remember(_FINE)
    log.info("Microsoft accepts the app's credentials again")


def health() -> tuple[bool, str]:
    """For the health endpoint and the status page: (ok, what is wrong)."""
    current = status()
    if not current.applies():
        return True, "Microsoft accepts the app's client credentials"
    return False, f"{current.reason}; since {_iso(current.since)}, next attempt {_iso(current.retry_at)}"


def forget_cached() -> None:
    """Drop the in-process copy (tests start each case with empty storage)."""
    global _cached
    with _lock:
        _cached = None


def _remember(current: Status) -> None:
    global _cached
    with _lock:
        _cached = (current, time.monotonic())


def _read() -> Status:
    row = _table().get(PARTITION, ROW)
    if row is None:
        return _FINE
    return Status(bool(row.get("rejected")), str(row.get("reason") or ""), _utc(row.get("since")), _utc(row.get("retry_at")),
                  int(row.get("failures") or 0), str(row.get("fingerprint") or ""))


def _fingerprint() -> str:
    # Enough to tell secrets apart, useless for guessing one (the secret is high-entropy).
    return hashlib.sha256(f"{settings().microsoft_client_id}:{settings().microsoft_client_secret}".encode()).hexdigest()[:16]


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _table() -> storage.Table:
    return storage.Table(storage.Tables.APP_STATE)
