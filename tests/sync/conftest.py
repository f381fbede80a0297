"""Sync tests: a drive connected through the real sign-in flow, synced in-process."""

from __future__ import annotations

import pytest

from functions import sync


@pytest.fixture
def drive(connected_drive):
    return connected_drive.drive


@pytest.fixture
def run_sync(connected_drive):
    """`run_sync()` runs one sync of the connected drive to completion (following continuations)."""

    def run(**kwargs):
        return sync.run(connected_drive.connection_id, **kwargs)

    return run
