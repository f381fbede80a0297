"""Prints, after the run, how many variants of each attack the security tests tried."""

from __future__ import annotations

from tests.security.report import TRIED


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 (pytest's hook signature)
    if not TRIED:
        return
    terminalreporter.section("security variants tried")
    for family, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"{count:6d}  {family}")
    terminalreporter.write_line(f"{sum(TRIED.values()):6d}  in all")


# The product API's fixtures: a mirror written the way the sync worker writes it.
from tests.product_api.conftest import api, connect, drive  # noqa: E402, F401
