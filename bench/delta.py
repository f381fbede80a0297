"""Delta: the initial sync of a large drive of tiny files (items/s), then 100 changes in that
drive and the seconds until the mirror matches again, through the whole path: the emulator's
notification → the webhook → the queue → the sync_worker function (local host's listener).

    .venv/bin/python -m bench.delta [--items 100000] [--changes 100]
"""

from __future__ import annotations

import argparse
import random
import time

from .copy import _check_mirror
from .report import CpuShare, Section
from .worker import WorkerProcess

SEED = 11


def run(items: int = 100_000, changes: int = 100) -> Section:
    from .environment import environment

    section = Section(f"Delta: initial sync of {items:,} tiny files, then {changes} changes").start()
    with environment() as env, WorkerProcess() as worker:
        worker.ask(do="warm")
        user = env.emulator.add_user(email="delta@example.com", display_name="Delta")
        user.drive.seed(n_files=items, seed=SEED, max_size=64)
        folders = sum(1 for item in user.drive.walk() if item.kind == "folder")
        connection_id = env.connect(user)
        cpu = CpuShare(**{"sync worker": worker.process.pid, "Azurite": env.azurite.process.pid, "emulator + app": None})
        initial = worker.ask(do="sync", connection_id=connection_id)
        usage = cpu.describe()
        _check_mirror(connection_id, user.drive)
        total = items + folders
        section.line(f"initial sync: {total:,} items ({items:,} files, {folders:,} folders) in {initial['seconds']:.1f} s: "
                     f"{total / initial['seconds']:.0f} items/s ({len(initial['outcomes'])} invocation(s) of a 240 s budget)")
        section.line(usage)

        worker.ask(do="listen")
        _wait_idle(timeout=120)  # the sync sign-in queued has nothing left to do
        delivered = len(env.emulator.deliveries)
        applied = _apply_changes(user.drive, changes, random.Random(SEED))
        started = time.perf_counter()
        _wait_for(lambda: len(env.emulator.deliveries) > delivered, timeout=60)  # the webhook has queued the sync
        seconds = _wait_idle(timeout=1800) - started
        worker.ask(do="stop")
        _check_mirror(connection_id, user.drive)
        section.line(f"{changes} changes ({', '.join(f'{n} {kind}' for kind, n in sorted(applied.items()))}): "
                     f"mirror matches {seconds:.2f} s after the last change "
                     f"(notification debounce {env.emulator.notification_debounce:.1f} s included)")
    section.figures.update({"items_per_s": total / initial["seconds"], "changes_seconds": seconds})
    return section


def _apply_changes(drive, count: int, rng: random.Random) -> dict[str, int]:
    files = sorted(drive.snapshot())
    folders = sorted(drive.path_of(i) for i in drive.walk() if i.kind == "folder")
    applied: dict[str, int] = {}
    kinds = ["modified"] * 40 + ["created"] * 20 + ["renamed"] * 15 + ["moved"] * 15 + ["deleted"] * 10
    for index in range(count):
        kind = kinds[index % len(kinds)]
        path = files.pop(rng.randrange(len(files)))
        if kind == "modified":
            drive.write_file(path, rng.randbytes(rng.randrange(1, 64)))
        elif kind == "created":
            drive.write_file(f"{rng.choice(folders)}/bench-new-{index}.txt", rng.randbytes(32))
        elif kind == "renamed":
            drive.rename(path, f"renamed-{index}-{path.rsplit('/', 1)[-1]}")
        elif kind == "moved":
            drive.move(path, f"{rng.choice(folders)}/moved-{index}-{path.rsplit('/', 1)[-1]}")
        else:
            drive.delete(path)
        applied[kind] = applied.get(kind, 0) + 1
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
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    return run(args.items, args.changes)


if __name__ == "__main__":
    main()
