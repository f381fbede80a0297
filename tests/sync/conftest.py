"""Sync tests: a drive connected through the real sign-in flow, synced in-process by `engine.run`."""

from __future__ import annotations

import pytest

from functions.sync import engine


def content_requests(emulator) -> list[dict]:
    """Requests to the download origin (through the URL delta listed, or `/content`'s redirect):
    each is one download."""
    return [r for r in emulator.requests if r["host"] == "download"]


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
