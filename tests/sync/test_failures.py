"""A sync under failure: killed workers, concurrent workers, Graph faults, expired links and
tokens, time budget. Each ends with the mirror compared to the drive."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from functions import connections, storage
from functions.sync import engine, itemrows
from functions.sync import state as syncstate
from tests.fixtures.mirror import assert_mirror_equals_drive, bring_reconciliation_forward
from tests.fixtures.waiting import eventually
from tests.sync.conftest import content_requests, sync_in_budgets

ROOT = Path(__file__).resolve().parents[2]


def queued_sync_requests() -> list[dict]:
    """Sync requests on the queue, visible or not (peek sees only visible ones: count via properties)."""
    queue = storage.queue(storage.Queues.SYNC)
    return [json.loads(m.content) for m in queue.peek_messages(max_messages=32)]


def sync_queue_length() -> int:
    return storage.queue(storage.Queues.SYNC).get_queue_properties().approximate_message_count


def delta_requests(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["host"] == "api" and "/delta" in r["path"]]


@pytest.mark.parametrize("phase", ["collect", "apply"])
def test_a_worker_killed_mid_sync_is_resumed_by_the_next_one(connected_drive, emulator, drive, sync_until_done, phase):
    drive.seed(n_files=60, n_folders=6, seed=11)
    emulator.delta_page_size = 5
    if phase == "collect":
        emulator.faults.inject(method="GET", path=r"/delta", latency=0.2)
        reached = lambda: len(delta_requests(emulator)) >= 4  # noqa: E731
    else:
        emulator.faults.inject(method="GET", path=r"/download/", latency=0.2)
        reached = lambda: len(content_requests(emulator)) >= 10  # noqa: E731
    worker = subprocess.Popen([sys.executable, "-m", "tests.sync.worker_process", connected_drive.connection_id, "2"],
                              cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        eventually(reached, timeout=60, message=f"the worker reaches its {phase} phase")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    state = syncstate.read(connected_drive.connection_id)
    assert state.phase == phase and state.lease_owner  # died holding the lease, mid-phase
    assert state.delta_link == ""  # nothing advanced past unapplied changes
    emulator.faults.clear()
    downloads_before = len(content_requests(emulator))
    result = eventually(lambda: (r := engine.run(connected_drive.connection_id)).outcome == "done" and r, timeout=30,
                        message="the killed worker's lease runs out and the next run finishes")
    assert result.outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    if phase == "apply":
        # Resumed, not restarted: files committed before the kill are not downloaded again.
        assert len(content_requests(emulator)) - downloads_before <= 60 - 5


@pytest.mark.parametrize("enumeration", ["first sync", "periodic reconciliation"])
def test_a_full_enumeration_killed_mid_collect_forgets_what_only_its_abandoned_pages_saw(connected_drive, emulator, drive,
                                                                                        sync_until_done, enumeration):
    """Seed 394: a full enumeration's worker dies after a page; meanwhile a file and a folder that
    page listed are deleted. The next worker starts the enumeration over, which lists live items
    only: no tombstone ever tells. The abandoned page's stamps must not count as seen by the new
    enumeration, or the mark and sweep keeps their rows, and the mirror keeps (and a later folder
    rename relocates) their blobs."""
    drive.write_file("doomed.bin", b"deleted while no worker ran")
    drive.write_file("gone/inner.bin", b"in a folder deleted while no worker ran")
    for index in range(12):
        drive.write_file(f"keep/f{index}.txt", f"file {index}".encode())
    if enumeration == "periodic reconciliation":
        assert sync_until_done().outcome == "done"  # their blobs are in the mirror
        bring_reconciliation_forward(connected_drive.connection_id)
    emulator.delta_page_size = 4  # page 1: the root, doomed.bin, gone, gone/inner.bin
    emulator.faults.inject(method="GET", path=r"/delta", latency=0.3)
    asked = len(delta_requests(emulator))
    worker = subprocess.Popen([sys.executable, "-m", "tests.sync.worker_process", connected_drive.connection_id, "2"],
                              cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The second page asked for: the first one is recorded and checkpointed.
        eventually(lambda: len(delta_requests(emulator)) >= asked + 2, timeout=60,
                   message="the worker is past its first page")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    state = syncstate.read(connected_drive.connection_id)
    assert state.phase == "collect" and state.lease_owner and state.resync_epoch  # died mid full enumeration
    drive.delete("doomed.bin")
    drive.delete("gone")
    emulator.faults.clear()
    result = eventually(lambda: (r := engine.run(connected_drive.connection_id)).outcome == "done" and r, timeout=30,
                        message="the killed worker's lease runs out and the next run finishes")
    assert result.outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # Their rows are gone too: nothing left to claim, or relocate, a blob under those names.
    ids = {row.id for row in itemrows.all_rows(connected_drive.connection_id) if not row.deleted}
    assert ids == set(drive.items) - {i for i, item in drive.items.items() if item.deleted}


def test_two_workers_never_run_together_and_a_busy_request_gets_its_pass(connected_drive, emulator, drive):
    for index in range(6):
        drive.write_file(f"f{index}.bin", size=20_000, seed=index)
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.25)
    results: dict[str, object] = {}

    first = threading.Thread(target=lambda: results.setdefault("first", engine.run(connected_drive.connection_id)))
    first.start()
    eventually(lambda: content_requests(emulator), timeout=20, message="the first worker is copying")
    drive.write_file("arrived-during-engine.txt", b"notification while syncing")
    second = engine.run(connected_drive.connection_id)  # the notification's worker
    assert second.outcome == "busy"
    assert first.is_alive(), "the busy answer came while the first worker was still running"
    first.join(60)
    assert results["first"].outcome == "done"
    assert results["first"].passes == 2  # the busy request's pass, made by the lease holder
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    state = syncstate.read(connected_drive.connection_id)
    assert not state.lease_owner and not state.rerun


def test_a_worker_that_reaches_its_pass_limit_lets_go_and_queues_the_next_pass(connected_drive, emulator, drive,
                                                                                 monkeypatch):
    monkeypatch.setattr(engine, "MAX_PASSES", 1)
    emulator.notifications_paused = True  # only the worker may add to the queue here
    drive.write_file("slow.bin", size=20_000, seed=1)
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.5)
    results: dict[str, object] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", engine.run(connected_drive.connection_id)))
    first.start()
    eventually(lambda: content_requests(emulator), timeout=20, message="the first worker is copying")
    drive.write_file("arrived-during-engine.txt", b"notification while syncing")
    assert engine.run(connected_drive.connection_id).outcome == "busy"
    before = sync_queue_length()
    first.join(60)
    assert results["first"].outcome == "done" and results["first"].passes == 1
    state = syncstate.read(connected_drive.connection_id)
    assert not state.lease_owner, "the lock is free as soon as the worker stops"
    assert sync_queue_length() > before, "the requested pass was handed to a new message"
    emulator.faults.clear()
    assert engine.run(connected_drive.connection_id).outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_only_one_of_many_simultaneous_workers_gets_the_lease(connected_drive):
    barrier = threading.Barrier(8)
    outcomes = []

    def contend(index: int) -> None:
        barrier.wait()
        outcomes.append(syncstate.acquire(connected_drive.connection_id, f"worker-{index}"))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leases = [o for o in outcomes if isinstance(o, syncstate.Lease)]
    assert len(leases) == 1 and len(outcomes) == 8
    state = syncstate.read(connected_drive.connection_id)
    assert state.lease_owner == leases[0].owner and state.rerun  # the others asked for one more pass


@pytest.mark.parametrize("fault", [
    dict(method="GET", path=r"/delta", status=429, retry_after="1", times=2),
    dict(method="GET", path=r"/delta", status=503, retry_after="0.5", times=2),
    dict(method="GET", path=r"/download/", status=429, retry_after="1.5", times=2),
    dict(method="GET", path=r"/download/", status=504, times=2),
    dict(method="GET", path=r"/download/", status=509, times=1),
    dict(method="GET", path=r"/download/", status=500, times=2),
    dict(method="GET", path=r"/download/", kind="reset", times=2),
    dict(method="GET", path=r"/download/", kind="timeout", hang=0.3, times=1),
    dict(method="GET", path=r"/delta", kind="reset", times=2),
])
def test_transient_graph_failures_are_retried(connected_drive, emulator, drive, sync_until_done, fault):
    drive.write_file("Docs/a.bin", size=100_000, seed=1)
    drive.write_file("b.txt", b"b")
    rule = emulator.faults.inject(**fault)
    assert sync_until_done().outcome == "done"
    assert rule.fired >= 1
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_a_long_retry_after_becomes_a_delayed_message_not_a_sleep(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("a.txt", b"a")
    emulator.faults.inject(method="GET", path=r"/delta", status=429, retry_after="3600", times=1)
    visible_before = len(queued_sync_requests())  # the sign-in's initial sync request
    started = time.monotonic()
    result = engine.run(connected_drive.connection_id)
    assert result.outcome == "throttled" and result.retry_after >= 3600
    assert time.monotonic() - started < 10
    assert sync_queue_length() == visible_before + 1  # queued...
    assert len(queued_sync_requests()) == visible_before  # ...and invisible for now
    assert "throttled" in connections.require(connected_drive.connection_id).last_sync_error
    assert not syncstate.read(connected_drive.connection_id).lease_owner
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_range_ignored_on_resume_restarts_the_download_from_zero(connected_drive, emulator, drive, sync_until_done):
    emulator.ignore_range = True
    drive.write_file("big.bin", size=9 * 1024 * 1024 + 5, seed=21)
    emulator.faults.inject(method="GET", path=r"/download/", after_bytes=5 * 1024 * 1024, times=1)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    downloads = [r for r in emulator.requests if r["host"] == "download"]
    assert len(downloads) == 2 and downloads[0]["fault"].startswith("reset after")


def test_a_broken_download_resumes_with_range(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("big.bin", size=9 * 1024 * 1024 + 5, seed=22)
    emulator.faults.inject(method="GET", path=r"/download/", after_bytes=5 * 1024 * 1024, times=1)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    downloads = [r for r in emulator.requests if r["host"] == "download"]
    assert [r["status"] for r in downloads][-1] == 206  # the second attempt asked only for the rest


def test_content_answered_with_the_bytes_instead_of_a_redirect_is_mirrored(connected_drive, emulator, drive, sync_until_done):
    emulator.content_redirect = False
    drive.write_file("small.txt", b"hello")
    big = drive.write_file("Docs/big.bin", size=9 * 1024 * 1024 + 5, seed=23)
    # The URLs delta lists have expired when used: every read goes to /content, which answers the
    # bytes itself. Cut the big one inside its first range: the retry asks /content for the rest.
    emulator.download_url_lifetime = 0
    emulator.faults.inject(method="GET", path=re.escape(big) + "/content$", host="api", after_bytes=2 * 1024 * 1024, times=1)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    answered = [r["status"] for r in emulator.requests if r["host"] == "api" and r["path"].endswith(big + "/content")]
    assert answered and all(status in (200, 206) for status in answered), answered  # never redirected
    assert 206 in answered  # the resumed read


def test_an_expired_download_url_gets_a_fresh_one(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("a.bin", size=50_000, seed=2)
    emulator.faults.inject(method="GET", path=r"/download/", status=401, times=1)
    assert sync_until_done().outcome == "done"
    assert len(content_requests(emulator)) == 2
    # The URL delta listed was refused: `/content` issued a fresh one, and nothing was parked.
    assert len([r for r in emulator.requests if r["host"] == "api" and r["path"].endswith("/content")]) == 1
    assert connections.require(connected_drive.connection_id).items_failed == 0
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_expired_access_token_is_refreshed_once(connected_drive, emulator, drive, sync_until_done):
    drive.write_file("a.txt", b"a")
    emulator.expire_access_tokens(connected_drive.user)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)


def test_revoked_consent_marks_the_connection_and_stops_quietly(connected_drive, emulator, drive):
    drive.write_file("a.txt", b"a")
    emulator.revoke_consent(connected_drive.user)
    emulator.expire_access_tokens(connected_drive.user)
    result = engine.run(connected_drive.connection_id)
    assert result.outcome == "reauth"
    assert connections.require(connected_drive.connection_id).state == connections.ConnectionState.REAUTH_REQUIRED
    state = syncstate.read(connected_drive.connection_id)
    assert not state.lease_owner and state.delta_link == ""
    # Nothing re-queued by the sync (the sign-in's "initial" and the write's notification may be there).
    assert [m["reason"] for m in queued_sync_requests() if m["reason"] not in ("initial", "notification")] == []
    assert engine.run(connected_drive.connection_id).outcome == "inactive"


def test_a_sync_ended_by_a_revoked_consent_is_reported_finished_not_running(connected_drive, emulator, drive):
    emulator.revoke_consent(connected_drive.user)
    emulator.expire_access_tokens(connected_drive.user)
    assert engine.run(connected_drive.connection_id).outcome == "reauth"
    last_sync = connections.require(connected_drive.connection_id).to_public()["lastSync"]
    assert last_sync["finishedAt"] >= last_sync["startedAt"], last_sync
    assert "revoked" in last_sync["error"]


@pytest.mark.parametrize("refusal", ["interaction_required", "consent_required", "login_required"])
def test_a_refresh_needing_the_user_stops_the_sync_as_reauth_not_a_retry(connected_drive, emulator, drive, refusal):
    drive.write_file("a.txt", b"a")
    emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error=refusal)
    emulator.expire_access_tokens(connected_drive.user)
    assert engine.run(connected_drive.connection_id).outcome == "reauth"  # not raised into the queue's retries
    assert connections.require(connected_drive.connection_id).state == connections.ConnectionState.REAUTH_REQUIRED


@pytest.mark.parametrize("how", ["410", "400"])
def test_a_dead_delta_link_means_full_enumeration_then_mark_and_sweep(connected_drive, emulator, drive, sync_until_done, how):
    drive.write_file("keep.txt", b"keep")
    drive.write_file("Old/remove-me.txt", b"soon deleted")
    sync_until_done()
    stray = storage.files_container().get_blob_client(f"{connected_drive.connection_id}/stray/not-in-drive.txt")
    stray.upload_blob(b"hostile or leftover")
    if how == "410":
        emulator.expire_delta_tokens(connected_drive.user)
    else:
        storage.table(storage.Tables.SYNC_STATE).upsert_entity(
            {"PartitionKey": connected_drive.connection_id, "RowKey": syncstate.ROW,
             "delta_link": emulator.graph_base_url + "/me/drive/root/delta?token=not-a-token"}, mode="merge")
    drive.delete("Old")
    drive.write_file("new.txt", b"new")
    downloads_before = len(content_requests(emulator))
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    assert len(content_requests(emulator)) - downloads_before == 1  # unchanged files are not copied again


def test_time_budget_checkpoints_and_continues_in_a_new_message(connected_drive, emulator, drive, monkeypatch):
    monkeypatch.setattr(engine, "BUDGET_MARGIN_SECONDS", 0.0)
    drive.seed(n_files=30, n_folders=3, seed=31)
    emulator.delta_page_size = 4
    emulator.faults.inject(method="GET", path=r"/delta", latency=0.15)
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.4)  # copies span messages too

    def continued(outcome: str) -> None:
        assert [m["reason"] for m in queued_sync_requests()][-1:] == ["continue"]

    outcomes = sync_in_budgets(connected_drive.connection_id, 0.5, emulator, after_each=continued)
    assert outcomes[0] == "continued" and outcomes[-1] == "done"
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    status = connections.get(connected_drive.connection_id)
    assert status.items_copied == 30 and status.last_sync_finished_at  # the whole sync, not its last message


def test_the_queue_trigger_runs_a_sync_and_parks_bad_messages_at_once(connected_drive, drive):
    from azure.functions.queue import QueueMessage

    from functions.triggers.sync_worker import sync_worker

    drive.write_file("via-trigger.txt", b"queued")
    body = json.dumps({"connection_id": connected_drive.connection_id, "reason": "notification"}).encode()
    sync_worker.build().get_user_function()(QueueMessage(body=body, dequeue_count=1))
    assert_mirror_equals_drive(connected_drive.connection_id, drive)
    # Retrying can't help a message that can never be read: it goes to the poison queue unchanged,
    # without failing the invocation (the same rule as the maintenance worker's).
    sync_worker.build().get_user_function()(QueueMessage(body=b"not json", dequeue_count=1))
    poison = storage.queue(storage.poison_queue(storage.Queues.SYNC))
    assert [m.content for m in poison.receive_messages(max_messages=32)] == [b"not json"]


def test_a_sync_running_during_a_disconnect_leaves_no_rows_or_files_behind(connected_drive, emulator, drive):
    from functions.sync import forget
    from functions.upkeep import disconnect
    from tests.notifications.test_disconnect import mirrored, rows

    connection_id = connected_drive.connection_id
    drive.seed(n_files=80, n_folders=4, seed=23)
    emulator.faults.inject(method="GET", path=r"/download/", latency=0.3)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=engine.run(connection_id, lease_seconds=2)))
    worker.start()
    eventually(lambda: len(content_requests(emulator)) >= 8, timeout=30, message="the sync is copying")
    disconnect.disconnect(connection_id, delete_mirror=True)
    worker.join(timeout=60)

    # It noticed (its lease row gone, or its tokens), stopped, and cleaned up after itself; the
    # missing tokens did not turn the user's "disconnected" into "sign in again".
    assert outcome["result"].outcome == "lost"
    assert connections.require(connection_id).state == connections.ConnectionState.DISCONNECTED
    for table_name in forget.PER_CONNECTION_TABLES:
        assert rows(table_name, connection_id) == [], table_name
    assert mirrored(connection_id) == []
