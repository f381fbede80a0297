"""Time as Graph writes it, in one place."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def graph_time(moment: datetime) -> str:
    """driveItem timestamps: milliseconds, Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso(moment: datetime) -> str:
    """Subscription timestamps: Graph writes 7 fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_iso(text: str) -> datetime | None:
    # Graph sends and accepts 7 fractional digits; Python takes 6.
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if match is None:
        return None
    micro = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or "Z"
    try:
        return datetime.fromisoformat(f"{match.group(1)}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


class ModelledClock:
    """Seconds as the notifier lives them: real time sped up by ``scale()`` (which may change at
    any moment), so that Graph's hours of retries can pass in a test's seconds."""

    def __init__(self, scale: Callable[[], float]) -> None:
        self._scale = scale
        self._real = time.monotonic()
        self._modelled = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            real = time.monotonic()
            self._modelled += (real - self._real) * self._scale()
            self._real = real
            return self._modelled

    async def sleep(self, modelled_seconds: float) -> None:
        if modelled_seconds > 0:
            await asyncio.sleep(modelled_seconds / max(self._scale(), 1e-9))
