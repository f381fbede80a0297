"""Counts of attack variants tried, printed at the end of the run (tests/security/conftest.py)."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()


def tried(family: str, count: int) -> None:
    TRIED[family] += count
