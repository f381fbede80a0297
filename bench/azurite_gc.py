"""Azurite's blob garbage collection, ruled in or out: does it stall the storage the sync talks to,
and does that grow with the number of blobs (the mirror of a 100,000-item drive holds 100,000)?

Azurite (not Azure Storage) runs a mark and sweep over every blob and every uncommitted block
every 10 minutes, in pages that LokiJS filters and sorts from the whole collection, on Node's
one thread: while a page is computed, no request is answered. Here, at each size, Azurite runs it
every 2 s (devtools/azurite_gc.js), and a blob read every 20 ms measures how long answers wait.
The baseline is the same probe with the collection off, in the same run.

    .venv/bin/python -m bench.azurite_gc [--blobs 5000,20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from .copy import load_average
from .report import Section

PROBE_SECONDS = 12.0


def run(sizes: tuple[int, ...] = (5_000, 20_000)) -> Section:
    section = Section(f"Azurite blob GC: mark and sweep time and the longest wait of a blob read, at "
                      f"{', '.join(f'{n:,}' for n in sizes)} blobs").start()
    for blobs in sizes:
        for gc in (False, True):
            figures = _one(blobs, gc)
            runs = figures.pop("gc_ms")
            label = f"GC every 2 s ({len(runs)} runs, {statistics.median(runs) if runs else 0:.0f} ms each)" if gc else "GC off (baseline)"
            section.line(f"{blobs:6,} blobs, {label}: blob reads p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                         f"longest {figures['max_ms']:.0f} ms ({load_average()})")
            section.figures.update({f"{key}_{blobs}_{'gc' if gc else 'off'}": value for key, value in figures.items()})
            if gc:
                section.figures[f"gc_ms_{blobs}"] = statistics.median(runs) if runs else 0.0
    if len(sizes) > 1:
        small, large = section.figures[f"gc_ms_{sizes[0]}"], section.figures[f"gc_ms_{sizes[-1]}"]
        growth = large / small if small else float("inf")
        section.line(f"a mark and sweep at {sizes[-1]:,} blobs takes {growth:.1f}× the time at {sizes[0]:,} "
                     f"({sizes[-1] / sizes[0]:.0f}× the blobs)")
    return section


def _one(blobs: int, gc: bool) -> dict:
    from azure.storage.blob import BlobServiceClient

    from devtools.azurite import Azurite

    with Azurite(location=tempfile.mkdtemp(prefix="bench-gc-"), in_memory=True, indexed_lookups=True,
                 gc_interval_ms=2000 if gc else 0) as azurite:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = service.get_container_client("gc-bench")
        container.create_container()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda n: container.upload_blob(f"conn/folder-{n % 100}/file-{n:07d}.txt", b"x" * 32), range(blobs)))
        before = len(azurite.gc_runs())
        probe = container.get_blob_client("conn/folder-0/file-0000000.txt")
        waits = []
        ends = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < ends:
            started = time.perf_counter()
            probe.get_blob_properties()
            waits.append(1000 * (time.perf_counter() - started))
            time.sleep(0.02)
        runs = [ms for _, ms in azurite.gc_runs()[before:]]
    waits.sort()
    return {"p50_ms": waits[len(waits) // 2], "p99_ms": waits[int(len(waits) * 0.99)], "max_ms": waits[-1], "gc_ms": runs}


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", default="5000,20000")
    args = parser.parse_args()
    return run(tuple(int(n) for n in args.blobs.split(",")))


if __name__ == "__main__":
    main()
