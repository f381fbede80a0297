"""rclone, a OneDrive client written by others that works against the real service, run against the
emulator through mitmproxy (issue 19, "A real client checks the emulator"). When they disagree, the
emulator is wrong.

How rclone reaches the emulator (the proxy, its CA, its own virtualenv, the two allowances for
rclone 1.60's age) lives in devtools/rclone.py, shared with the peer benchmark (bench/peer.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.emulator import Emulator, User
from devtools.rclone import (
    DOWNLOADS,
    GRAPH,
    RCLONE_REDIRECT,
    Proxy,
    Rclone,
    Unavailable,
    mitmdump_binary,
    onedrive_remote,
    rclone_binary,
    sign_in,
)


@dataclass
class World:
    emulator: Emulator
    user: User
    rclone: Rclone


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    try:
        rclone = rclone_binary()
        mitmdump_binary()
    except Unavailable as missing:
        pytest.skip(str(missing))
    work = tmp_path_factory.mktemp("conformance")
    emulator = Emulator(redirect_uris=[RCLONE_REDIRECT]).start()
    # rclone 1.60 sends its bearer token to the download host; the real service refuses that
    # (rclone 1.67 stopped). An allowance for the client's age, not the default.
    emulator.allow_auth_on_download = True
    try:
        user = emulator.add_user("ada@example.com", "Ada Lovelace")
        tokens = sign_in(emulator, user)
        with Proxy.start(emulator, work) as proxy:
            emulator.serve_as(GRAPH, DOWNLOADS)  # links and download URLs under Microsoft's names
            config = work / "rclone.conf"
            config.write_text(onedrive_remote("od", emulator, user, tokens))
            yield World(emulator, user, Rclone(rclone, config, proxy))
    finally:
        emulator.stop()
