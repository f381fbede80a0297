"""Every benchmark, one after the other; prints the figures and writes bench/results/latest.md.

    .venv/bin/python -m bench [--quick] [--only webhook,transactions,copy,delta,deep,cold_start,scale,selection,peer,latency,azurite_gc,memory]
                              [--delta-items 5000,20000,100000] [--memory-items 10000,100000,1000000]

`--quick` scales every benchmark down (a smoke run of the machinery, not figures to quote).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
import traceback
import warnings

from . import report

ORDER = ("cold_start", "webhook", "transactions", "copy", "delta", "deep", "scale", "selection", "peer", "latency", "azurite_gc", "memory")
DELTA_ITEMS = (5_000, 20_000, 100_000)
MEMORY_ITEMS = (10_000, 100_000, 1_000_000)


def _cold_start(quick: bool) -> report.Section:
    from . import cold_start

    runs = 5 if quick else 15
    section = report.Section(f"Cold start: import function_app against azure.functions alone (median of {runs} fresh interpreters)").start()
    figures = cold_start.measure(runs)
    figures["ratio"] = figures["app_ms"] / figures["baseline_ms"]
    section.line(f"import azure.functions  {figures['baseline_ms']:8.1f} ms   (baseline)")
    section.line(f"import function_app     {figures['app_ms']:8.1f} ms   ratio {figures['ratio']:.2f} (target ≤ 1.5: "
                 f"{'met' if figures['ratio'] <= 1.5 else 'MISSED'})")
    section.figures.update(figures)
    return section


def _webhook(quick: bool) -> report.Section:
    from . import webhook

    return webhook.run(clients=4, requests=400 if quick else 3000)


def _transactions(quick: bool) -> report.Section:
    from . import transactions

    return transactions.run(rounds=5 if quick else 30)


def _copy(quick: bool) -> report.Section:
    from . import copy

    if quick:
        return copy.run(size_mb=64, small_files=500, resumed_mb=256, budget=15, rate_mb=16)
    return copy.run(size_mb=1024, small_files=10_000, resumed_mb=4096, budget=60, rate_mb=40)


def _delta(quick: bool) -> report.Section:
    from . import delta

    return delta.run(sizes=(500, 2000) if quick else DELTA_ITEMS, changes=100)


def _deep(quick: bool) -> report.Section:
    from . import deep

    return deep.run(files=50 if quick else 250, depth=40, rounds=1 if quick else 3)


def _scale(quick: bool) -> report.Section:
    from . import scale

    return scale.run(rows=1000 if quick else 5000)


def _command(args: argparse.Namespace, wanted: list[str]) -> str:
    return ("scripts/bench" + (" --quick" if args.quick else "") + ("" if wanted == list(ORDER) else f" --only {args.only}")
            + (f" --delta-items {args.delta_items}" if args.delta_items != "5000,20000,100000" else "")
            + (f" --memory-items {args.memory_items}" if args.memory_items != "10000,100000,1000000" else ""))


def _selection(quick: bool) -> report.Section:
    from . import selection

    return selection.run(items=3000 if quick else max(DELTA_ITEMS), files=100, changes=10)


def _latency(quick: bool) -> report.Section:
    from . import latency

    return latency.run(files=60 if quick else 300, threads=(1, 4, 8, 16) if quick else (1, 2, 4, 8, 16, 32),
                       repeats=1 if quick else 2)


def _azurite_gc(quick: bool) -> report.Section:
    from . import azurite_gc

    return azurite_gc.run(sizes=(1_000, 4_000) if quick else (5_000, 20_000))


def _peer(quick: bool) -> report.Section:
    from . import peer

    return peer.run(files=2000 if quick else 10_000, large_mb=256 if quick else 1024)


def _memory(quick: bool) -> report.Section:
    from . import memory

    return memory.run(sizes=(2_000, 8_000) if quick else MEMORY_ITEMS)


RUNNERS = {"cold_start": _cold_start, "webhook": _webhook, "transactions": _transactions, "copy": _copy, "delta": _delta, "deep": _deep, "scale": _scale,
           "selection": _selection, "peer": _peer, "latency": _latency, "azurite_gc": _azurite_gc, "memory": _memory}


def main() -> int:
    global DELTA_ITEMS, MEMORY_ITEMS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated subset of " + ", ".join(ORDER))
    parser.add_argument("--delta-items", default="5000,20000,100000",
                        help="drive sizes of the delta benchmark, comma-separated (default 5000,20000,100000)")
    parser.add_argument("--memory-items", default="10000,100000,1000000",
                        help="files in the drives of the memory benchmark, comma-separated (default 10000,100000,1000000)")
    args = parser.parse_args()
    DELTA_ITEMS = tuple(int(n) for n in args.delta_items.split(","))
    MEMORY_ITEMS = tuple(int(n) for n in args.memory_items.split(","))
    logging.basicConfig(level=logging.ERROR)  # the app's retry warnings are not figures
    warnings.filterwarnings("ignore")
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown benchmarks: {sorted(unknown)}")
    print(f"Machine: {report.machine()}\n", flush=True)
    # Ctrl-C or SIGTERM unwinds normally, so Azurite and the worker process are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sections, failed = {}, []
    for name in wanted:
        started = time.monotonic()
        try:
            section = RUNNERS[name](args.quick)
        except Exception as error:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            section = report.Section(f"{name}: FAILED").start()
            section.line(f"{type(error).__name__}: {str(error)[:300]}")
            failed.append(name)
        section.line(f"({time.monotonic() - started:.0f} s)")
        print(flush=True)
        if name not in failed:
            sections[name] = section
            report.write_markdown({name: section}, order=ORDER, command=_command(args, wanted))
    path = report.RESULTS / "latest.md"
    print(f"written to {path.relative_to(report.RESULTS.parent.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
