"""Copy: file bytes from the emulator into the mirror through the sync worker's copy path.

1. One large file (default 1 GiB): MB/s against a plain azure-storage-blob upload of the same
   bytes into the same Azurite (target ratio ≥ 0.7), and the worker process's peak memory growth
   (resident-set high-water mark during the copy minus before it; target ≤ 64 MB).
2. Many small files (default 10,000): files/s for the initial sync.

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


def run(size_mb: int = 1024, small_files: int = 10_000) -> Section:
    from .environment import environment

    size = size_mb << 20
    section = Section(f"Copy: emulator → mirror through the sync worker (one {size_mb} MiB file; {small_files:,} small files)").start()
    with environment(time_budget_seconds=3600) as env, WorkerProcess() as worker:
        worker.ask(do="warm")
        baseline = worker.ask(do="upload", name="big.bin", size=size, seed=SEED)

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
        section.line(f"plain SDK upload (baseline) {base_mbs:7.1f} MB/s  ({baseline['seconds']:.1f} s, memory growth {base_growth:.0f} MB)")
        section.line(f"sync worker copy            {app_mbs:7.1f} MB/s  ({copy['seconds']:.1f} s, memory growth {growth:.0f} MB, "
                     f"download + hash check + staged blocks)")
        section.line(f"ratio {ratio:.2f} (target ≥ 0.7: {'met' if ratio >= 0.7 else 'MISSED'}); "
                     f"memory growth {growth:.0f} MB (target ≤ 64 MB: {'met' if growth <= 64 else 'MISSED'})")
        section.line(copy_usage)

        small_user = env.emulator.add_user(email="small@example.com", display_name="Small Files")
        small_user.drive.seed(n_files=small_files, seed=SEED)
        small_id = env.connect(small_user)
        cpu = CpuShare(**pids)
        many = worker.ask(do="sync", connection_id=small_id)
        many_usage = cpu.describe()
        _check_mirror(small_id, small_user.drive)
        per_second = small_files / many["seconds"]
        total_kb = sum(size for size, _ in small_user.drive.snapshot().values()) / 1024
        section.line(f"{small_files:,} small files (≤ 4 KiB, {total_kb / 1024:.1f} MiB in all): {many['seconds']:.1f} s, "
                     f"{per_second:.0f} files/s (initial sync, {len(many['outcomes'])} invocation(s))")
        section.line(many_usage)
    section.figures.update({"baseline_mb_s": base_mbs, "copy_mb_s": app_mbs, "ratio": ratio, "memory_growth_mb": growth,
                            "small_files_per_s": per_second})
    return section


def _check_mirror(connection_id: str, drive) -> None:
    """The figures count only if the mirror holds the drive: sizes and hashes from the blob listing."""
    from functions import storage

    expected = drive.snapshot()
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
    args = parser.parse_args()
    return run(args.size_mb, args.small_files)


if __name__ == "__main__":
    main()
