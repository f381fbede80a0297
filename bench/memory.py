"""Memory: the worker's peak RSS over a full enumeration (a first sync: collect, apply, sweep) of a
drive of tiny files, at several sizes, against the same worker's RSS before the sync (warm:
imports done, clients built). The emulator seeds the drive lazily (`Drive.seed_lazily`): its
items are made when asked for, so a million-item drive costs the emulator no memory either.

    .venv/bin/python -m bench.memory [--items 10000,100000,1000000] [--trace]

What to read: MB over the baseline per item between two sizes (the slope) is what grows with the
drive; the peak itself includes what every sync holds whatever the drive (thread pools, HTTP
connections, a chunk's rows, up to DOWNLOAD_URLS_KEPT listed download URLs).
"""

from __future__ import annotations

import argparse

from .copy import load_average
from .report import Section
from .worker import WorkerProcess

SEED = 17
TARGET_ITEMS = 1_000_000
TARGET_MB = 256


def run(sizes: tuple[int, ...] = (10_000, 100_000, TARGET_ITEMS), *, trace: bool = False) -> Section:
    section = Section(f"Memory: worker peak RSS over a full enumeration of {', '.join(f'{n:,}' for n in sizes)} "
                      "tiny files (lazily seeded drives)").start()
    figures = [_one_size(files, section, trace=trace) for files in sizes]
    for files, figure in zip(sizes, figures, strict=True):
        section.figures.update({f"{key}_{files}": value for key, value in figure.items()})
    if len(figures) > 1:
        small, large = figures[0], figures[-1]
        slope = (large["over_mb"] - small["over_mb"]) * 2**20 / (large["items"] - small["items"])
        section.figures["slope_bytes_per_item"] = slope
        section.line(f"growth between {small['items']:,.0f} and {large['items']:,.0f} items: {slope:,.0f} bytes/item "
                     "(MB over the baseline, difference of the two sizes)")
        if large["items"] < TARGET_ITEMS:
            projected = large["peak_mb"] + max(0.0, slope) * (TARGET_ITEMS - large["items"]) / 2**20
            section.figures["projected_peak_mb"] = projected
            section.line(f"{TARGET_ITEMS:,} items, extrapolated from that slope: {projected:.0f} MB "
                         f"(target ≤ {TARGET_MB} MB: {'met' if projected <= TARGET_MB else 'MISSED'}, not measured)")
    largest = figures[-1]
    if largest["items"] >= TARGET_ITEMS:
        section.line(f"{largest['items']:,.0f} items: peak {largest['peak_mb']:.0f} MB (target ≤ {TARGET_MB} MB: "
                     f"{'met' if largest['peak_mb'] <= TARGET_MB else 'MISSED'})")
    return section


def _one_size(files: int, section: Section, *, trace: bool = False) -> dict[str, float]:
    from .environment import environment

    with environment() as env, WorkerProcess() as worker:
        warm = worker.ask(do="warm")
        user = env.emulator.add_user(email="memory@example.com", display_name="Memory")
        user.drive.seed_lazily(n_files=files, seed=SEED, max_size=64)
        items = user.drive.lazy.total
        connection_id = env.connect(user)
        synced = worker.ask(do="sync", connection_id=connection_id, trace=trace)
        load = load_average()
        blobs = _blob_count(connection_id)
        if blobs != files:
            raise RuntimeError(f"the mirror holds {blobs:,} blobs for {files:,} files")
        over = synced["peak_mb"] - synced["rss_before_mb"]
        section.line(f"{items:,} items ({files:,} files): peak {synced['peak_mb']:.0f} MB, {over:+.0f} MB over the "
                     f"worker's {synced['rss_before_mb']:.0f} MB before the sync (warm: {warm['rss_mb']:.0f} MB), "
                     f"{over * 2**20 / items:,.0f} bytes/item; {items / synced['seconds']:.0f} items/s "
                     f"({synced['seconds']:.0f} s, {len(synced['outcomes'])} invocation(s)); {load}")
        if trace:
            section.line(f"  traced Python heap: peak {synced['heap_peak_mb']:.1f} MB; alive at its last sampled high "
                         f"({synced['heap_high_mb']:.1f} MB), by where it was allocated:")
            for where, mb, count in synced["heap_sites"]:
                section.line(f"    {mb:7.2f} MB {count:8,} blocks  {where}")
    return {"items": float(items), "peak_mb": synced["peak_mb"], "over_mb": over, "items_per_s": items / synced["seconds"]}


def _blob_count(connection_id: str) -> int:
    from functions import storage

    return sum(1 for _ in storage.files_container().list_blob_names(name_starts_with=connection_id + "/"))


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="10000,100000,1000000", help="comma-separated numbers of files")
    parser.add_argument("--trace", action="store_true",
                        help="also trace the worker's Python heap (tracemalloc; several times slower): its peak, and "
                             "where what was alive at its high was allocated")
    args = parser.parse_args()
    return run(tuple(int(n) for n in args.items.split(",")), trace=args.trace)


if __name__ == "__main__":
    main()
