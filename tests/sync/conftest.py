"""Sync tests: a drive connected through the real sign-in flow, synced in-process by `engine.run`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.microsoft.transport import Deadline
from functions.sync import engine
from functions.sync.mirror import Mirror


def content_requests(emulator) -> list[dict]:
    """Requests to the download origin (through the URL delta listed, or `/content`'s redirect):
    each is one download."""
    return [r for r in emulator.requests if r["host"] == "download"]


def sync_in_budgets(connection_id: str, budget: float, emulator, *, max_runs: int = 200,
                    after_each: Callable[[str], None] = lambda outcome: None) -> list[str]:
    """Syncs of `budget` seconds each, chained as the queue would, until one is not "continued";
    their outcomes. A run after which neither the mirror nor the downloads moved gets half as
    much again next time: on a starved machine a run's fixed cost (lease, rows, listing) can take
    all of a short budget, and a test of resuming must not hang on the machine's load."""
    mirror = Mirror(connection_id)

    def progress() -> tuple[frozenset[str] | None, int]:
        return mirror.paths(1_000_000), len(content_requests(emulator))

    outcomes, current, before = [], budget, progress()
    for _ in range(max_runs):
        outcomes.append(engine.run(connection_id, deadline=Deadline(current)).outcome)
        if outcomes[-1] != "continued":
            return outcomes
        after_each(outcomes[-1])
        after = progress()
        current = budget if after != before else current * 1.5
        before = after
    raise AssertionError(f"no end after {max_runs} runs: {outcomes[-5:]}")


@pytest.fixture
def drive(connected_drive):
    return connected_drive.drive


@pytest.fixture
def sync_until_done(connected_drive):
    """Run syncs of the connected drive until one completes (following "continue" outcomes),
    as the queue would; returns the last result."""

    def run(max_runs: int = 10, **kwargs):
        for _ in range(max_runs):
            result = engine.run(connected_drive.connection_id, **kwargs)
            if result.outcome != "continued":
                return result
        raise AssertionError(f"sync did not finish in {max_runs} runs")

    return run
