"""Delta: the initial sync of a large drive of tiny files (items/s), then 100 changes in that
drive and the seconds until the mirror matches again, through the whole path: the emulator's
notification → the webhook → the queue → the sync_worker function (local host's listener).

    .venv/bin/python -m bench.delta [--items 5000,20000,100000] [--changes 100] [--profile DIR]

At each size, three passes with the initial sync's change events still queued, then three after
the product has consumed them (medians: the queue's pickup alone varies by up to the host's
maxPollingInterval). Each pass prints where its seconds went (the notification, the queue's
pickup, the sync's first and last call), the calls it made (counted in the worker process, by
service: a step whose cost grows with the drive shows as calls that grow with it), the CPU of
each process, and Azurite's garbage collections (node's --trace-gc) over it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from devtools.emulator.changes import change_files

from .copy import _check_mirror, load_average
from .report import CpuShare, Section
from .worker import WorkerProcess

SEED = 11


def run(sizes: tuple[int, ...] = (5_000, 20_000, 100_000), changes: int = 100, profile_dir: str | None = None) -> Section:
    """Each drive size in its own Azurite; the change pass's seconds and storage calls side by side."""
    section = Section(f"Delta: initial sync of {', '.join(f'{n:,}' for n in sizes)} tiny files, then {changes} changes "
                      "in each").start()
    figures = [_one_size(items, changes, section, profile_dir) for items in sizes]
    if len(figures) > 1:
        small, large = figures[0], figures[-1]
        for suffix, label in (("", "events queued"), ("_consumed", "events consumed")):
            ratio = large[f"changes_seconds{suffix}"] / small[f"changes_seconds{suffix}"]
            sync = large[f"sync_seconds{suffix}"] / small[f"sync_seconds{suffix}"]
            section.line(f"{sizes[-1]:,} vs {sizes[0]:,} items, {label}: change pass {ratio:.2f}× the seconds (medians; "
                         f"target ≤ 1.5: {'met' if ratio <= 1.5 else 'MISSED'}), the sync itself {sync:.2f}×, storage calls "
                         f"{large[f'storage_calls{suffix}']:.0f} vs {small[f'storage_calls{suffix}']:.0f}")
            section.figures[f"changes_ratio{suffix}"] = ratio
    for items, figure in zip(sizes, figures, strict=True):
        section.figures.update({f"{key}_{items}": value for key, value in figure.items()})
    return section


def _one_size(items: int, changes: int, section: Section, profile_dir: str | None = None) -> dict[str, float]:
    from .environment import environment

    with environment(trace_gc=True) as env, WorkerProcess() as worker:
        worker.ask(do="warm")
        user = env.emulator.add_user(email="delta@example.com", display_name="Delta")
        user.drive.seed(n_files=items, seed=SEED, max_size=64)
        _small_folders(user.drive)
        folders = sum(1 for item in user.drive.walk() if item.kind == "folder")
        connection_id = env.connect(user)
        cpu = CpuShare(**{"sync worker": worker.process.pid, "Azurite": env.azurite.process.pid, "emulator + app": None})
        initial = worker.ask(do="sync", connection_id=connection_id)
        usage = cpu.describe()
        _check_mirror(connection_id, user.drive, skipped=(SKIPPED,))
        total = items + folders
        section.line(f"initial sync: {total:,} items ({items:,} files, {folders:,} folders) in {initial['seconds']:.1f} s: "
                     f"{total / initial['seconds']:.0f} items/s ({len(initial['outcomes'])} invocation(s) of a 240 s budget); "
                     f"worker peak memory {initial['peak_mb']:.0f} MB ({initial['peak_mb'] - initial['rss_before_mb']:+.0f} MB "
                     "over the sync, sweep included)")
        section.line(usage)

        worker.ask(do="listen")
        _wait_idle(timeout=120)  # the sync sign-in queued has nothing left to do
        rng = random.Random(SEED)
        passes: dict[str, list[dict[str, float]]] = {"queued": [], "consumed": []}
        for round in range(ROUNDS):
            events = "queued" if round < PASSES else "consumed"
            if round == PASSES:
                # What a product does with its change events: reads them. Left queued, the initial
                # sync's events (one per file) are what Azurite holds most of, besides the mirror.
                from functions import storage

                storage.queue(storage.Queues.EVENTS).clear_messages()
            passes[events].append(_change_pass(env, worker, user, connection_id, changes, rng, round, items, section,
                                               f"the initial sync's change events {events}", profile_dir))
        worker.ask(do="stop")
    figures = {"items_per_s": total / initial["seconds"], "peak_mb": initial["peak_mb"]}
    for events, runs in passes.items():
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        suffix = "" if events == "queued" else "_consumed"
        figures.update({f"{key}{suffix}": value for key, value in medians.items()})
        each = ", ".join(f"{run['changes_seconds']:.2f}" for run in runs)
        section.line(f"{items:,} items, events {events}: median of {len(runs)} passes {medians['changes_seconds']:.2f} s "
                     f"({each}): the sync itself "
                     f"{medians['sync_seconds']:.2f} s, the queue's pickup {medians['pickup_seconds']:.2f} s")
    return figures


def _change_pass(env, worker: WorkerProcess, user, connection_id: str, changes: int, rng: random.Random, round: int,
                 items: int, section: Section, label: str, profile_dir: str | None) -> dict[str, float]:
    """`changes` changes, and the seconds until the mirror matches again, with the calls, CPU and
    Azurite's garbage collections of the pass."""
    # The queue listener as a notification finds it on a quiet worker, at every size: polling at
    # its longest interval (its backoff from 0.1 s reaches maxPollingInterval within 4 s).
    time.sleep(QUIET_SECONDS)
    delivered = len(env.emulator.deliveries)
    worker.ask(do="count", origins={"graph": env.emulator.graph_base_url, "download": env.emulator.download_base_url})
    profiler = _Profiler(worker.process.pid, f"{profile_dir}/pass-{items}-{round}.txt") if profile_dir else None
    log_at = env.azurite.log_size()
    cpu = CpuShare(**{"sync worker": worker.process.pid, "Azurite": env.azurite.process.pid,
                      "emulator + app + benchmark": None})
    applied = _apply_changes(user.drive, changes, rng, round)
    started = time.perf_counter()
    _wait_for(lambda: len(env.emulator.deliveries) > delivered, timeout=60)  # the webhook has queued the sync
    notified = time.perf_counter()
    idle = _wait_idle(timeout=1800)
    seconds = idle - started
    usage = cpu.describe()
    if profiler:
        profiler.stop()
    pauses = env.azurite.gc_pauses(since=log_at)
    counted = worker.ask(do="counted")
    calls = counted["calls"]
    first_call = min((start for start, _, _ in counted["timeline"]), default=started)
    last_call = max((end for _, end, _ in counted["timeline"]), default=started)
    if profile_dir:  # each call's start, end and kind, on the clock of `started`: the pass's phases
        Path(f"{profile_dir}/calls-{items}-{round}.json").write_text(json.dumps({"started": started, "calls": counted["timeline"]}))
    _check_mirror(connection_id, user.drive, skipped=(SKIPPED,))
    storage_calls = sum(calls.get(name, 0) for name in ("blob", "table", "queue"))
    section.line(f"{items:,} items, {label}; {changes} changes ({', '.join(f'{n} {kind}' for kind, n in sorted(applied.items()))}): "
                 f"mirror matches {seconds:.2f} s after the last change "
                 f"(notification debounce {env.emulator.notification_debounce:.1f} s included; {load_average()})")
    # Where the seconds went (one clock: perf_counter is the machine's monotonic clock on Linux).
    section.line(f"  after the last change: notification answered +{notified - started:.2f} s, the worker's first call "
                 f"+{first_call - started:.2f} s, its last +{last_call - started:.2f} s, "
                 f"the queue seen empty +{seconds:.2f} s")
    section.line("  calls of the change pass: " + ", ".join(f"{name} {calls.get(name, 0)}" for name in
                                                          ("graph", "download", "blob", "table", "queue", "other")))
    section.line("  table calls by kind: " + "; ".join(f"{kind.removeprefix('table ')} {n}" for kind, n in counted["kinds"].items()
                                                  if kind.startswith("table")))
    # Where the time went: a step that grows with the drive on the emulators shows here even
    # when its calls don't (a call Azurite answers more slowly as it holds more).
    section.line(f"  worker CPU {counted['cpu_seconds']:.2f} s; seconds in calls (summed over threads): " + "; ".join(
        f"{kind} {n:.2f}" for kind, n in list(counted["seconds"].items())[:8]))
    section.line(f"  {usage}; Azurite's garbage collections: {pauses['count']:.0f}, {pauses['ms']:.0f} ms "
                 f"({pauses['major_count']:.0f} major, {pauses['major_ms']:.0f} ms; longest {pauses['longest_ms']:.0f} ms)"
                 + (f"; worker profile {profiler.output}" if profiler else ""))
    return {"changes_seconds": seconds, "sync_seconds": last_call - first_call,
            "pickup_seconds": first_call - notified, "storage_calls": storage_calls, "azurite_gc_ms": pauses["ms"],
            "worker_cpu_seconds": counted["cpu_seconds"]}


class _Profiler:
    """py-spy sampling the worker (every thread, not pausing it) until stopped; collapsed stacks."""

    def __init__(self, pid: int, output: str) -> None:
        import shutil
        import subprocess

        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
        self.output = output
        self.process = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100", "--nonblocking",
                                         "--format", "raw", "--output", output], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached

    def stop(self) -> None:
        import signal

        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


SMALL_FOLDERS = 6
SKIPPED = "bench-skipped./inside.txt"
QUIET_SECONDS = 4.0
PASSES = 3  # a pass at each setting: the queue's pickup alone varies by up to maxPollingInterval
ROUNDS = 2 * PASSES  # events queued, then consumed


def _small_folders(drive) -> None:
    """Folders of two files (what the change pass renames and moves: the same work at every
    size; a set for each round), and a skipped item (a folder name ending in "."), which a folder
    change looks at again."""
    for round in range(ROUNDS):
        for index in range(SMALL_FOLDERS):
            for name in ("a.txt", "b.txt"):
                drive.write_file(f"bench-small-{round}-{index}/{name}", name.encode())
    drive.write_file(SKIPPED, b"not mirrored")


def _apply_changes(drive, count: int, rng: random.Random, round: int) -> dict[str, int]:
    """`count` changes: to files, in fixed shares, and three to folders (one created, one renamed
    and one moved, of the round's small folders)."""
    files = sorted(path for path in drive.snapshot() if path.startswith("seed-"))
    folders = sorted(drive.path_of(i) for i in drive.walk() if i.kind == "folder" and drive.path_of(i).startswith("seed-"))
    applied = change_files(drive, rng, count - 3, files, folders)
    renamed, moved = rng.sample(range(SMALL_FOLDERS), 2)
    drive.write_file(f"{rng.choice(folders)}/bench-new-folder-{round}/inside.txt", b"in a new folder")
    drive.rename(f"bench-small-{round}-{renamed}", f"bench-small-{round}-{renamed}-renamed")
    drive.move(f"bench-small-{round}-{moved}", f"{rng.choice(folders)}/bench-small-{round}-{moved}-moved")
    for kind in ("folder created", "folder renamed", "folder moved"):
        applied[kind] = 1
    return applied


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached within {timeout} s")
        time.sleep(0.01)


def _wait_idle(timeout: float) -> float:
    """When the sync queue became empty (running and delayed messages included) for good."""
    from functions import storage

    queue = storage.queue(storage.Queues.SYNC)
    deadline = time.monotonic() + timeout
    empty_since = None
    while time.monotonic() < deadline:
        empty = queue.get_queue_properties().approximate_message_count == 0
        now = time.perf_counter()
        if empty:
            empty_since = empty_since or now
            if now - empty_since >= 0.5:
                return empty_since
        else:
            empty_since = None
        time.sleep(0.02)
    raise RuntimeError(f"the sync queue did not drain within {timeout} s")


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="5000,20000,100000", help="comma-separated drive sizes")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--profile", metavar="DIR", help="sample the worker over each change pass with py-spy into DIR, and its calls' timeline")
    args = parser.parse_args()
    return run(tuple(int(n) for n in args.items.split(",")), args.changes, args.profile)


if __name__ == "__main__":
    main()
