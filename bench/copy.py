"""Copy: file bytes from the emulator into the mirror through the sync worker's copy path.

1. One large file (default 1 GiB): MB/s against a plain azure-storage-blob upload of the same
   bytes into the same Azurite with as many blocks at once (target ratio ≥ 0.9), and the worker
   process's peak memory growth (resident-set high-water mark minus before; target ≤ 64 MB).
2. A file longer to copy than one message's budget (default 4 GiB, 60 s, download capped at
   40 MiB/s): messages, and the bytes downloaded against the file's size (target 1.0).
3. Many small files (default 10,000): files/s for the initial sync, the worker's CPU ms per file
   and the calls per file by service (devtools/calls.py).

Both run in a separate worker process (bench/worker.py): the emulator serving the bytes lives
in this process, as Microsoft does in another place.

    .venv/bin/python -m bench.copy [--size-mb 1024] [--small-files 10000]
"""

from __future__ import annotations

import argparse
from urllib.parse import unquote

from .report import CpuShare, Section
from .worker import WorkerProcess

SEED = 7


def run(size_mb: int = 1024, small_files: int = 10_000, resumed_mb: int = 4096, budget: float = 60.0,
        rate_mb: float = 40.0) -> Section:
    from functions.sync import mirror

    from .environment import environment

    size = size_mb << 20
    section = Section(f"Copy: emulator → mirror through the sync worker (one {size_mb} MiB file; a {resumed_mb} MiB file "
                      f"in {budget:.0f}-s messages; {small_files:,} small files)").start()
    with environment(time_budget_seconds=3600) as env, WorkerProcess() as worker:
        worker.ask(do="warm")
        origins = {"graph": env.emulator.graph_base_url, "download": env.emulator.download_base_url}
        baseline = worker.ask(do="upload", name="big.bin", size=size, seed=SEED, concurrency=mirror.IN_FLIGHT)
        base_load = load_average()

        user = env.emulator.add_user(email="big@example.com", display_name="Big File")
        user.drive.write_file("big.bin", size=size, seed=SEED)
        connection_id = env.connect(user)
        pids = {"sync worker": worker.process.pid, "Azurite": env.azurite.process.pid, "emulator + app": None}
        cpu = CpuShare(**pids)
        copy = worker.ask(do="sync", connection_id=connection_id)
        copy_usage = cpu.describe()
        _check_mirror(connection_id, user.drive)

        base_mbs = size_mb / baseline["seconds"]
        app_mbs = size_mb / copy["seconds"]
        base_growth = baseline["peak_mb"] - baseline["rss_before_mb"]
        growth = copy["peak_mb"] - copy["rss_before_mb"]
        ratio = app_mbs / base_mbs
        section.line(f"plain SDK upload, {mirror.IN_FLIGHT} blocks at once (baseline) {base_mbs:7.1f} MB/s  "
                     f"({baseline['seconds']:.1f} s, memory growth {base_growth:.0f} MB; {base_load})")
        section.line(f"sync worker copy            {app_mbs:7.1f} MB/s  ({copy['seconds']:.1f} s, memory growth {growth:.0f} MB, "
                     f"download + hash check + {mirror.IN_FLIGHT} blocks staging at once; {load_average()})")
        section.line(f"ratio {ratio:.2f} (target ≥ 0.9: {'met' if ratio >= 0.9 else 'MISSED'}); "
                     f"memory growth {growth:.0f} MB (target ≤ 64 MB: {'met' if growth <= 64 else 'MISSED'})")
        section.line(copy_usage)

        resumed = _resumed(env, worker, resumed_mb, budget, rate_mb, section)

        small_user = env.emulator.add_user(email="small@example.com", display_name="Small Files")
        small_user.drive.seed(n_files=small_files, seed=SEED)
        small_id = env.connect(small_user)
        cpu = CpuShare(**pids)
        many = worker.ask(do="sync", connection_id=small_id, origins=origins)
        many_usage = cpu.describe()
        _check_mirror(small_id, small_user.drive)
        per_second = small_files / many["seconds"]
        total_kb = sum(size for size, _ in small_user.drive.snapshot().values()) / 1024
        cpu_ms = 1000 * many["cpu_seconds"] / small_files
        calls = many["calls"]
        section.line(f"{small_files:,} small files (≤ 4 KiB, {total_kb / 1024:.1f} MiB in all): {many['seconds']:.1f} s, "
                     f"{per_second:.0f} files/s (initial sync, {len(many['outcomes'])} invocation(s); {load_average()})")
        section.line(f"per file: worker CPU {cpu_ms:.2f} ms (target ≤ 2 ms: {'met' if cpu_ms <= 2 else 'MISSED'}); calls "
                     + ", ".join(f"{name} {calls.get(name, 0) / small_files:.3f}"
                                 for name in ("graph", "download", "blob", "table", "queue", "other")))
        section.line(many_usage)
    section.figures.update({"baseline_mb_s": base_mbs, "copy_mb_s": app_mbs, "ratio": ratio, "memory_growth_mb": growth,
                            "small_files_per_s": per_second, "cpu_ms_per_file": cpu_ms,
                            **{f"calls_per_file_{name}": calls.get(name, 0) / small_files for name in calls}, **resumed})
    return section


def _resumed(env, worker: WorkerProcess, size_mb: int, budget: float, rate_mb: float, section: Section) -> dict[str, float]:
    """A file longer to copy than a message's budget: each message continues after the blocks the
    one before staged. The download is capped (a home line's speed), so the copy needs several."""
    size = size_mb << 20
    user = env.emulator.add_user(email="huge@example.com", display_name="Huge File")
    user.drive.write_file("huge.bin", size=size, seed=SEED + 1)
    connection_id = env.connect(user)
    env.emulator.download_rate = rate_mb * 2**20
    logged = len(env.emulator.requests)
    try:
        result = worker.ask(do="sync", connection_id=connection_id, budget=budget)
    finally:
        env.emulator.download_rate = 0
    _check_mirror(connection_id, user.drive)
    downloads = [r for r in env.emulator.requests[logged:] if r["host"] == "download"]
    sent = sum(r["bytes"] for r in downloads)
    messages = len(result["outcomes"])
    growth = result["peak_mb"] - result["rss_before_mb"]
    section.line(f"{size_mb} MiB file, {budget:.0f}-s budget per message, download capped at {rate_mb:.0f} MiB/s: "
                 f"{messages} messages ({', '.join(result['outcomes'])}), {result['seconds']:.0f} s, "
                 f"{size_mb / result['seconds']:.1f} MB/s; bytes downloaded {sent / size:.4f}× the file "
                 f"({len(downloads)} requests), memory growth {growth:.0f} MB; {load_average()}")
    return {"resumed_messages": messages, "resumed_bytes_ratio": sent / size, "resumed_mb_s": size_mb / result["seconds"]}


def load_average() -> str:
    import os

    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _check_mirror(connection_id: str, drive, skipped: tuple[str, ...] = ()) -> None:
    """The figures count only if the mirror holds the drive (but the files it must skip): sizes
    and hashes from the blob listing."""
    from functions import storage

    expected = {path: value for path, value in drive.snapshot().items() if path not in skipped}
    prefix = connection_id + "/"
    found = {}
    for blob in storage.files_container().list_blobs(name_starts_with=prefix, include=["metadata"]):
        found[blob.name[len(prefix):]] = (blob.size, unquote((blob.metadata or {}).get("quickxorhash", "")))
    wrong = [path for path, (size, digest) in expected.items() if found.get(path) != (size, digest)]
    if wrong or len(found) != len(expected):
        extra = sorted(set(found) - set(expected))
        raise RuntimeError(f"the mirror does not match the drive: {len(wrong)} wrong of {len(expected)}, {len(found)} blobs; "
                           f"first wrong: {[(p, expected[p], found.get(p)) for p in wrong[:3]]}; first extra: {extra[:3]}")


def main() -> Section:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--small-files", type=int, default=10_000)
    parser.add_argument("--resumed-mb", type=int, default=4096)
    args = parser.parse_args()
    return run(args.size_mb, args.small_files, args.resumed_mb)


if __name__ == "__main__":
    main()
