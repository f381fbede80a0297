"""Selection: a 100-file folder selected in a 100,000-item drive costs what the same folder costs
as a drive of its own. First sync, then 10 changes (each synced on its own), both connections in
the same run; figures are seconds and Graph calls, with the folder-as-its-own-drive as baseline.

    .venv/bin/python -m bench.selection [--items 100000] [--files 100] [--changes 10]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from devtools.emulator.changes import change_files

from .report import Section

SEED = 23


def _sync(connection_id: str) -> float:
    from functions.sync import engine

    started = time.perf_counter()
    for _ in range(1000):
        outcome = engine.run(connection_id, reason="bench").outcome
        if outcome != "continued":
            break
    if outcome != "done":
        raise RuntimeError(f"sync ended {outcome}")
    return time.perf_counter() - started


def _graph_calls(emulator: Any, since: int) -> int:
    return sum(1 for r in emulator.requests[since:] if r["host"] == "api")


def _fill(drive: Any, files: int) -> None:
    for index in range(files):
        drive.write_file(f"Selected/sub{index % 5}/file{index}.txt", f"file {index}".encode())


def _measure(env: Any, user: Any, *, select: bool, changes: int) -> dict[str, float]:
    from functions.sync import selection

    emulator = env.emulator
    connection_id = env.connect(user)
    if select:
        folder = user.drive.item_id("Selected")
        selection.save(connection_id, selection.Mode.ITEMS, [selection.SelectedItem(folder, "folder", "Selected", "Selected")],
                       keep_deselected=False)
    mark = len(emulator.requests)
    first = _sync(connection_id)
    first_calls = _graph_calls(emulator, mark)
    _check(connection_id, user.drive)
    rng = random.Random(SEED)
    change_seconds, mark = 0.0, len(emulator.requests)
    for index in range(changes):
        files = sorted(path for path in user.drive.snapshot() if path.startswith("Selected/"))
        change_files(user.drive, rng, 1, files, [f"Selected/sub{n}" for n in range(5)], start=index)
        change_seconds += _sync(connection_id)
    change_calls = _graph_calls(emulator, mark)
    _check(connection_id, user.drive)
    return {"first_s": first, "first_calls": first_calls, "changes_s": change_seconds, "change_calls": change_calls}


def _check(connection_id: str, drive: Any) -> None:
    from functions import storage

    expected = {p for p in drive.snapshot() if p.startswith("Selected/")}
    found = {b.name.split("/", 1)[1] for b in storage.files_container().list_blobs(name_starts_with=connection_id + "/")}
    if found != expected:
        raise AssertionError(f"mirror differs: {len(found)} blobs, {len(expected)} selected files")


def run(items: int = 100_000, files: int = 100, changes: int = 10) -> Section:
    from .environment import environment

    section = Section(f"Selection: a {files}-file folder selected in a {items:,}-item drive vs. the same folder as a "
                      f"drive of its own; first sync, then {changes} changes").start()
    with environment() as env:
        big = env.emulator.add_user(email="big@example.com", display_name="Big")
        started = time.perf_counter()
        big.drive.seed(n_files=max(0, items - files), seed=SEED, max_size=64)
        _fill(big.drive, files)
        seeded = time.perf_counter() - started
        small = env.emulator.add_user(email="small@example.com", display_name="Small")
        _fill(small.drive, files)
        baseline = _measure(env, small, select=False, changes=changes)
        selected = _measure(env, big, select=True, changes=changes)
    section.line(f"(drive of {items:,} items seeded in {seeded:.1f} s, not counted)")
    section.line(f"{'':34}{'first sync':>14}{'Graph calls':>13}{f'{changes} changes':>14}{'Graph calls':>13}")
    section.line(f"{'folder as its own drive (baseline)':34}{baseline['first_s']:>12.2f} s{baseline['first_calls']:>13}"
                 f"{baseline['changes_s']:>12.2f} s{baseline['change_calls']:>13}")
    section.line(f"{'folder selected in the big drive':34}{selected['first_s']:>12.2f} s{selected['first_calls']:>13}"
                 f"{selected['changes_s']:>12.2f} s{selected['change_calls']:>13}")
    first_ratio = selected["first_s"] / baseline["first_s"]
    change_ratio = selected["changes_s"] / baseline["changes_s"]
    section.line(f"ratio selected / baseline: first sync {first_ratio:.2f}, changes {change_ratio:.2f} (goal: close to 1)")
    section.figures.update({"first_ratio": first_ratio, "changes_ratio": change_ratio, **{f"baseline_{k}": v for k, v in baseline.items()},
                            **{f"selected_{k}": v for k, v in selected.items()}})
    return section


def main() -> None:
    import logging
    import warnings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    section = run(args.items, args.files, args.changes)
    section.line("")


if __name__ == "__main__":
    main()
