"""Delta: the initial sync of a large drive of tiny files (items/s), then 100 changes in that
drive and the seconds until the mirror matches again, through the whole path: the emulator's
notification → the webhook → the queue → the sync_worker function (local host's listener).

    .venv/bin/python -m bench.delta [--items 5000,20000,100000] [--changes 100]

At each size, the calls the change pass made (counted in the worker process, by service): a
step whose cost grows with the drive shows as calls that grow with it.
"""

from __future__ import annotations

import argparse
import random
import time

from devtools.emulator.changes import change_files

from .copy import _check_mirror, load_average
from .report import CpuShare, Section
from .worker import WorkerProcess

SEED = 11


def run(sizes: tuple[int, ...] = (5_000, 20_000, 100_000), changes: int = 100) -> Section:
    """Each drive size in its own Azurite; the change pass's seconds and storage calls side by side."""
    section = Section(f"Delta: initial sync of {', '.join(f'{n:,}' for n in sizes)} tiny files, then {changes} changes "
                      "in each").start()
    figures = [_one_size(items, changes, section) for items in sizes]
    if len(figures) > 1:
        small, large = figures[0], figures[-1]
        ratio = large["changes_seconds"] / small["changes_seconds"]
        section.line(f"{sizes[-1]:,} vs {sizes[0]:,} items: change pass {ratio:.2f}× the seconds (target ≤ 1.5: "
                     f"{'met' if ratio <= 1.5 else 'MISSED'}), storage calls {large['storage_calls']:.0f} vs "
                     f"{small['storage_calls']:.0f}")
        section.figures["changes_ratio"] = ratio
    for items, figure in zip(sizes, figures, strict=True):
        section.figures.update({f"{key}_{items}": value for key, value in figure.items()})
    return section


def _one_size(items: int, changes: int, section: Section) -> dict[str, float]:
    from .environment import environment

    with environment() as env, WorkerProcess() as worker:
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
        delivered = len(env.emulator.deliveries)
        worker.ask(do="count", origins={"graph": env.emulator.graph_base_url, "download": env.emulator.download_base_url})
        applied = _apply_changes(user.drive, changes, random.Random(SEED))
        started = time.perf_counter()
        _wait_for(lambda: len(env.emulator.deliveries) > delivered, timeout=60)  # the webhook has queued the sync
        seconds = _wait_idle(timeout=1800) - started
        counted = worker.ask(do="counted")
        calls = counted["calls"]
        worker.ask(do="stop")
        _check_mirror(connection_id, user.drive, skipped=(SKIPPED,))
        storage_calls = sum(calls.get(name, 0) for name in ("blob", "table", "queue"))
        section.line(f"{items:,} items, {changes} changes ({', '.join(f'{n} {kind}' for kind, n in sorted(applied.items()))}): "
                     f"mirror matches {seconds:.2f} s after the last change "
                     f"(notification debounce {env.emulator.notification_debounce:.1f} s included; {load_average()})")
        section.line("calls of the change pass: " + ", ".join(f"{name} {calls.get(name, 0)}" for name in
                                                            ("graph", "download", "blob", "table", "queue", "other")))
        section.line("  table calls by kind: " + "; ".join(f"{kind.removeprefix('table ')} {n}" for kind, n in counted["kinds"].items()
                                                      if kind.startswith("table")))
        # Where the time went: a step that grows with the drive on the emulators shows here even
        # when its calls don't (a call Azurite answers more slowly as it holds more).
        section.line(f"  worker CPU {counted['cpu_seconds']:.2f} s; seconds in calls (summed over threads): " + "; ".join(
            f"{kind} {n:.2f}" for kind, n in list(counted["seconds"].items())[:8]))
    return {"items_per_s": total / initial["seconds"], "changes_seconds": seconds, "storage_calls": storage_calls,
            "peak_mb": initial["peak_mb"]}


SMALL_FOLDERS = 6
SKIPPED = "bench-skipped./inside.txt"


def _small_folders(drive) -> None:
    """Folders of two files (what the change pass renames and moves: the same work at every
    size), and a skipped item (a folder name ending in "."), which a folder change looks at again."""
    for index in range(SMALL_FOLDERS):
        for name in ("a.txt", "b.txt"):
            drive.write_file(f"bench-small-{index}/{name}", name.encode())
    drive.write_file(SKIPPED, b"not mirrored")


def _apply_changes(drive, count: int, rng: random.Random) -> dict[str, int]:
    """`count` changes: to files, in fixed shares, and three to folders (one created, one renamed
    and one moved, of the small folders)."""
    files = sorted(path for path in drive.snapshot() if path.startswith("seed-"))
    folders = sorted(drive.path_of(i) for i in drive.walk() if i.kind == "folder" and drive.path_of(i).startswith("seed-"))
    applied = change_files(drive, rng, count - 3, files, folders)
    renamed, moved = rng.sample(range(SMALL_FOLDERS), 2)
    drive.write_file(f"{rng.choice(folders)}/bench-new-folder/inside.txt", b"in a new folder")
    drive.rename(f"bench-small-{renamed}", f"bench-small-{renamed}-renamed")
    drive.move(f"bench-small-{moved}", f"{rng.choice(folders)}/bench-small-{moved}-moved")
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
    args = parser.parse_args()
    return run(tuple(int(n) for n in args.items.split(",")), args.changes)


if __name__ == "__main__":
    main()
