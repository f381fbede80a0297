"""Seeded random scenarios: whatever fails in between, the mirror ends equal to the drive."""

from __future__ import annotations

import pytest

from functions.settings import reload_settings

from .conftest import FIRST_SEED, SEEDS, TOTALS
from .faults import Killer
from .scenario import Scenario


@pytest.fixture
def killer(monkeypatch):
    killer = Killer(tally=None)
    killer.install(monkeypatch)
    return killer


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + SEEDS))
def test_mirror_equals_drive_after_random_changes_and_faults(seed, emulator, app_server, azurite, sync_worker_host, killer,
                                                             monkeypatch):
    short_budget = seed % 4 == 3
    if short_budget:  # the sync stops starting new work with 10 s left: a 10.5 s budget leaves half a second
        monkeypatch.setenv("SYNC_TIME_BUDGET_SECONDS", "10.5")
        reload_settings()
    scenario = Scenario(seed, emulator=emulator, app_server=app_server, azurite=azurite, killer=killer,
                        short_budget=short_budget)
    outcome = scenario.run()
    TOTALS["scenarios"] += 1
    TOTALS["faults"].update(outcome.faults)
    TOTALS["seconds"] += outcome.seconds
    TOTALS["files"] += outcome.files
    TOTALS["operations"] += len(outcome.operations)
    TOTALS["calls"] += outcome.microsoft_calls
    TOTALS["failed_calls"] += outcome.microsoft_calls_failed
    if outcome.diverged:
        TOTALS["divergences"].append(seed)
    assert not outcome.diverged, outcome.describe()
