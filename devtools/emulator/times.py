"""Time as Graph writes it, in one place."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def graph_time(moment: datetime) -> str:
    """driveItem timestamps: milliseconds, Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso(moment: datetime) -> str:
    """Subscription timestamps: Graph writes 7 fractional digits."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


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
