"""Depth: renaming a folder of 250 files 40 levels down, against the same folder 2 levels down
(the same-run baseline), in the worker process: seconds and peak RSS of the sync, as ratios. The
goal is close to 1: work follows what changed, not how deep it sits (issue 15: before, each
level doubled the ids a traversal asked for). A resumed sync (ancestors not cached: a crash,
an outage, a time budget, a retry) is measured the same way, with a one-byte update.

    .venv/bin/python -m bench.deep [--files 250] [--depth 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics

from .copy import _check_mirror
from .report import Section
from .worker import WorkerProcess


def run(files: int = 250, depth: int = 40, rounds: int = 3) -> Section:
    from .environment import environment

    section = Section(f"Depth: renaming a {files}-file folder {depth} levels down, against 2 levels down").start()
    with environment() as env, WorkerProcess() as worker:
        worker.ask(do="warm")
        user = env.emulator.add_user(email="deep@example.com", display_name="Deep")
        trees = {2: "shallow/s1", depth: "deep/" + "/".join(f"d{level}" for level in range(1, depth))}
        for base in trees.values():
            for index in range(files):
                user.drive.write_file(f"{base}/folder/f{index:03d}.txt", f"file {index}".encode())
        connection_id = env.connect(user)
        worker.ask(do="sync", connection_id=connection_id)
        _check_mirror(connection_id, user.drive)
        figures: dict[str, dict[int, list[tuple[float, float]]]] = {"rename": {}, "update": {}}
        for round_number in range(rounds):
            for level, base in trees.items():  # alternating, so drift in the machine hits both alike
                old, new = ("folder", "renamed") if round_number % 2 == 0 else ("renamed", "folder")
                user.drive.rename(f"{base}/{old}", new)
                answer = worker.ask(do="sync", connection_id=connection_id)
                figures["rename"].setdefault(level, []).append((answer["seconds"], answer["peak_mb"]))
                user.drive.write_file(f"{base}/{new}/f000.txt", f"update {round_number}".encode())
                answer = worker.ask(do="sync_resumed", connection_id=connection_id)
                figures["update"].setdefault(level, []).append((answer["seconds"], answer["peak_mb"]))
        _check_mirror(connection_id, user.drive)
    for name, what in (("rename", f"rename of the {files}-file folder"), ("update", "one-byte update, resumed run")):
        shallow, deep = figures[name][2], figures[name][depth]
        seconds = [statistics.median(s for s, _ in shallow), statistics.median(s for s, _ in deep)]
        peak = [max(p for _, p in shallow), max(p for _, p in deep)]
        section.line(f"{what}: depth 2 {seconds[0]:.2f} s, peak {peak[0]:.0f} MB (baseline); depth {depth} "
                     f"{seconds[1]:.2f} s, peak {peak[1]:.0f} MB: time ratio {seconds[1] / seconds[0]:.2f}, "
                     f"memory ratio {peak[1] / peak[0]:.2f} (median of {rounds})")
        section.figures.update({f"{name}_time_ratio": seconds[1] / seconds[0], f"{name}_memory_ratio": peak[1] / peak[0],
                                f"{name}_seconds_depth2": seconds[0], f"{name}_seconds_deep": seconds[1]})
    return section


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=250)
    parser.add_argument("--depth", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    return run(args.files, args.depth, args.rounds)


if __name__ == "__main__":
    main()
