"""Shared fixtures: Azurite, the OneDrive emulator, the app configured against both."""

pytest_plugins = [
    "tests.fixtures.storage",
    "tests.fixtures.emulator",
    "tests.fixtures.app",
    "tests.fixtures.connected",
]
