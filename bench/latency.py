"""Latency: an initial sync of small files with every request to Microsoft answered after a fixed
delay (the emulator's `request_latency`, e.g. 50 ms as Graph and its download host answer from
afar), at several copy concurrencies: how files/s grow with the downloads in flight, and which
concurrency the default (`COPY_THREADS`) should be.

The baseline is the same sync without the added latency, at the app's default concurrency, in
the same run.

    .venv/bin/python -m bench.latency [--files 300] [--latency-ms 50] [--threads 1,2,4,8,16,32]
"""

from __future__ import annotations

import argparse

from .copy import _check_mirror, load_average
from .report import Section
from .worker import WorkerProcess

SEED = 13


def run(files: int = 300, latency_ms: float = 50, threads: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
        repeats: int = 2) -> Section:
    """Each figure is the best of `repeats` syncs (a shared machine's load only ever slows one down)."""
    from functions.sync import apply

    from .environment import environment

    default = apply.COPY_THREADS
    section = Section(f"Latency: initial sync of {files} small files, {latency_ms:.0f} ms per request to Microsoft, "
                      f"copy concurrency {', '.join(map(str, threads))} (default {default}); best of {repeats}").start()
    rates: dict[int, float] = {}
    with environment() as env, WorkerProcess() as worker:
        worker.ask(do="warm")

        def one(label: str, latency: float, copy_threads: int, count: int = files) -> float:
            user = env.emulator.add_user(email=f"lat-{label}@example.com", display_name=label)
            user.drive.seed(n_files=count, seed=SEED, max_size=4096)
            connection_id = env.connect(user)
            env.emulator.request_latency = latency
            try:
                result = worker.ask(do="sync", connection_id=connection_id, copy_threads=copy_threads)
            finally:
                env.emulator.request_latency = 0.0
            _check_mirror(connection_id, user.drive)
            return count / result["seconds"]

        one("warm-up", 0.0, default, count=20)  # the worker's first sync pays its own start-up
        def best(label: str, latency: float, copy_threads: int) -> float:
            return max(one(f"{label}-{n}", latency, copy_threads) for n in range(repeats))

        baseline = best("baseline", 0.0, default)
        section.line(f"no added latency, {default} downloads at once (baseline): {baseline:6.1f} files/s ({load_average()})")
        for count in threads:
            rates[count] = best(f"t{count}", latency_ms / 1000, count)
            section.line(f"{latency_ms:.0f} ms latency, {count:2d} downloads at once: {rates[count]:6.1f} files/s "
                         f"({rates[count] / baseline:.2f}× the baseline; {load_average()})")
    best = max(rates, key=lambda count: rates[count])
    # The smallest concurrency within 10% of the best: more threads past it buy nothing here.
    enough = min(count for count in rates if rates[count] >= 0.9 * rates[best])
    section.line(f"fastest: {best} at once ({rates[best]:.1f} files/s); within 10% of it from {enough} at once "
                 f"(default {default}: {'kept' if enough <= default <= best else 'to revisit'})")
    section.figures.update({"baseline_files_s": baseline, "best_threads": best, "enough_threads": enough,
                            **{f"files_s_{count}": rate for count, rate in rates.items()}})
    return section


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--threads", default="1,2,4,8,16,32")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    return run(args.files, args.latency_ms, tuple(int(n) for n in args.threads.split(",")), args.repeats)


if __name__ == "__main__":
    main()
