"""Random changes to the files of an emulated drive, in fixed shares: what the cost tests and the
change benchmarks make a drive go through (each picks its own files and folders)."""

from __future__ import annotations

import random

from devtools.emulator.drive import Drive

# Of every 20 file changes: 8 modified, 4 created, 3 renamed, 3 moved, 2 deleted, interleaved so
# that a few changes have every kind (the first 10: 3, 2, 2, 2, 1).
FILE_CHANGES = ("modified", "created", "renamed", "moved", "deleted", "modified", "modified", "created", "renamed",
                "moved", "modified", "modified", "created", "renamed", "moved", "deleted", "modified", "modified",
                "created", "modified")


def change_files(drive: Drive, rng: random.Random, count: int, files: list[str], folders: list[str], *,
                 start: int = 0) -> dict[str, int]:
    """`count` changes, each to a file of `files` picked at random (and taken off the list, so no
    file changes twice); created and moved files go into one of `folders`; the shares go on from
    change number `start` (changes made a few at a time). How many of each kind."""
    applied: dict[str, int] = {}
    for index in range(start, start + count):
        kind, path = FILE_CHANGES[index % len(FILE_CHANGES)], files.pop(rng.randrange(len(files)))
        name = path.rsplit("/", 1)[-1]
        if kind == "modified":
            drive.write_file(path, rng.randbytes(rng.randrange(1, 64)))
        elif kind == "created":
            drive.write_file(f"{rng.choice(folders)}/new-{index}-{rng.random():.6f}.txt", rng.randbytes(32))
        elif kind == "renamed":
            drive.rename(path, f"renamed-{index}-{name}")
        elif kind == "moved":
            drive.move(path, f"{rng.choice(folders)}/moved-{index}-{name}")
        else:
            drive.delete(path)
        applied[kind] = applied.get(kind, 0) + 1
    return applied
