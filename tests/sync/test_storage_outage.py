"""Azure Storage going away in the middle of a sync (scenario 27): the run fails (so the queue
retries the message), nothing is advanced past unapplied changes, and the next run converges."""

from __future__ import annotations

import threading
import time

import pytest

from devtools.azurite import Azurite
from functions import connections, storage
from functions.sync import engine
from functions.sync import state as syncstate
from tests.fixtures.mirror import assert_mirror_equals_drive
from tests.fixtures.waiting import eventually
from tests.sync.conftest import content_requests


# ~90 s: with Azurite gone, every storage call of the failing run waits out the Azure SDK's default
# retry policy (15 s initial backoff) before the run gives up. Recovery itself takes seconds.
@pytest.mark.slow
def test_storage_outage_mid_sync_loses_nothing(connected_drive, emulator, drive, tmp_path, monkeypatch):
    from functions.tokens import vault

    # This test's own Azurite, on disk, so it can be stopped and started with its data kept.
    access_token = vault.access_token(connected_drive.connection_id)
    tokens = lambda force_refresh=False: access_token  # noqa: E731  (the vault's rows live in the other Azurite)
    with Azurite(location=tmp_path, in_memory=False) as private:
        monkeypatch.setenv(storage.CONNECTION, private.connection_string)
        storage.reset_clients()
        connections.save_profile(account_id=connected_drive.user.id, drive_id=drive.id, display_name="", email="", ref="")
        drive.seed(n_files=40, n_folders=4, seed=41)
        emulator.faults.inject(method="GET", path=r"/download/", latency=0.1)

        def outage() -> None:
            eventually(lambda: len(content_requests(emulator)) >= 10, timeout=30)
            private.stop()

        stopper = threading.Thread(target=outage)
        stopper.start()
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 (whatever the SDK raises once its retries give up)
            engine.run(connected_drive.connection_id, token_source=tokens, lease_seconds=2)
        failed_after = time.monotonic() - started
        stopper.join()
        private.start()
        storage.reset_clients()
        state = syncstate.read(connected_drive.connection_id)
        assert state.phase == syncstate.Phase.APPLY and state.delta_link == ""  # not advanced
        emulator.faults.clear()
        eventually(lambda: engine.run(connected_drive.connection_id, token_source=tokens, lease_seconds=2).outcome == "done",
                   timeout=30, interval=0.5)
        assert_mirror_equals_drive(connected_drive.connection_id, drive)
        print(f"failed after {failed_after:.1f} s, recovered after {time.monotonic() - started - failed_after:.1f} s")
        assert failed_after < 120
