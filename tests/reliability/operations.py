"""Random drive operations, chosen from a seed against the drive as it is now.

The choice depends only on the seed and the drive's state, and the drive's state only on earlier
choices, so a seed replays the same operations every time.
"""

from __future__ import annotations

import random

from devtools.emulator.drive import Drive, DriveError

# Names a mirror must carry through unchanged (sync-scenarios.md #13), none invalid in OneDrive.
NAMES = [
    "notes.txt", "Report 2024.docx", "a#b.md", "100% done.txt", "c++ & co.txt", "x+y=z.bin", "émile.txt",
    "日本語のファイル.txt", "😀 smile.png", "Case.TXT", "case.txt", "with  two spaces.txt", "semi;colon,comma.csv",
    "very-" + "long-" * 30 + "name.txt", "~tilde", "[brackets] (parens) {braces}.txt", "'quote'.txt", "dot.in.name.tar.gz",
]
FOLDERS = ["Docs", "Photos", "a", "B", "Ünïcödé", "deep", "x y", "#tag", "100%", "sub.folder", "Árvíztűrő", "😀"]
SIZES = [0, 1, 7, 100, 1000, 4096, 5000, 65536, 70000, 300_000]


class Operations:
    def __init__(self, drive: Drive, rng: random.Random) -> None:
        self.drive = drive
        self.rng = rng
        self.counter = 0

    # What is in the drive now (sorted: the order of a dict must not leak into the choice).

    def files(self) -> list[str]:
        return sorted(self.drive.snapshot())

    def folders(self) -> list[str]:
        return sorted(self.drive.path_of(item) for item in self.drive.walk() if item.kind == "folder")

    def items(self) -> list[str]:
        return sorted(self.files() + self.folders())

    # One random operation; returns what it did (for the failure report).

    def random(self) -> str:
        weights = {
            self.create: 35, self.change: 15, self.rename: 12, self.move: 12, self.delete: 8,
            self.deep_tree: 6, self.recreate: 8, self.swap: 4, self.case_rename: 4,
        }
        operation = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        try:
            return operation()
        except DriveError as refused:  # e.g. a name clash: the real service would refuse it too
            return f"{operation.__name__} refused: {refused}"

    def _content(self) -> bytes:
        return self.rng.randbytes(self.rng.choice(SIZES))

    def _folder(self) -> str:
        return self.rng.choice([""] + self.folders())

    def _join(self, folder: str, name: str) -> str:
        return f"{folder}/{name}" if folder else name

    def _fresh_name(self, folder: str, choices: list[str]) -> str:
        self.counter += 1
        taken = {p.rsplit("/", 1)[-1].lower() for p in self.items() if p.rpartition("/")[0] == folder}
        name = self.rng.choice(choices)
        if name.lower() in taken:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem} ({self.counter}).{ext}" if dot else f"{name} ({self.counter})"
        return name

    def create(self) -> str:
        folder = self._folder()
        path = self._join(folder, self._fresh_name(folder, NAMES))
        self.drive.write_file(path, self._content())
        return f"create {path}"

    def change(self) -> str:
        files = self.files()
        if not files:
            return self.create()
        path = self.rng.choice(files)
        self.drive.write_file(path, self._content())
        return f"change {path}"

    def rename(self) -> str:
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        parent = path.rpartition("/")[0]
        is_folder = path in self.folders()
        new_name = self._fresh_name(parent, FOLDERS if is_folder else NAMES)
        self.drive.rename(path, new_name)
        return f"rename {path} -> {new_name}"

    def case_rename(self) -> str:
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        name = path.rsplit("/", 1)[-1]
        self.drive.rename(path, name.swapcase())  # same name for OneDrive, another blob path for us
        return f"case-rename {path}"

    def move(self) -> str:
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        targets = [f for f in [""] + self.folders() if f != path and not f.startswith(path + "/")]
        target = self.rng.choice(targets)
        name = path.rsplit("/", 1)[-1]
        clash = any(p.lower() == self._join(target, name).lower() for p in self.items())
        if clash:
            name = self._fresh_name(target, [name])
        self.drive.move(path, self._join(target, name))
        return f"move {path} -> {self._join(target, name)}"

    def delete(self) -> str:
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        self.drive.delete(path)
        return f"delete {path}"

    def deep_tree(self) -> str:
        folder = self._folder()
        depth = self.rng.randint(4, 9)
        parts = [self._fresh_name(folder, FOLDERS)] + [self.rng.choice(FOLDERS) for _ in range(depth - 1)]
        base = self._join(folder, "/".join(parts))
        for _index in range(self.rng.randint(1, 4)):
            self.drive.write_file(f"{base}/{self.rng.choice(NAMES)}", self._content())
        return f"deep tree {base}"

    def recreate(self) -> str:
        """Delete an item and put a new one at the same path: maybe the other kind (file <-> folder)."""
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        was_folder = path in self.folders()
        self.drive.delete(path)
        if self.rng.random() < 0.3:  # the other kind at the same path
            if was_folder:
                self.drive.write_file(path, self._content())
            else:
                self.drive.write_file(f"{path}/{self.rng.choice(NAMES)}", self._content())
        elif was_folder:
            self.drive.write_file(f"{path}/{self.rng.choice(NAMES)}", self._content())
        else:
            self.drive.write_file(path, self._content())
        return f"re-create {path}"

    def swap(self) -> str:
        """Two files trade names through a temporary name (three renames in one delta)."""
        files = self.files()
        if len(files) < 2:
            return self.create()
        first, second = self.rng.sample(files, 2)
        if first.rpartition("/")[0] != second.rpartition("/")[0]:
            return self.change()
        temporary = f"swap-{self.counter}.tmp"
        self.counter += 1
        self.drive.rename(first, temporary)
        self.drive.rename(second, first.rsplit("/", 1)[-1])
        self.drive.rename(self._join(first.rpartition("/")[0], temporary), second.rsplit("/", 1)[-1])
        return f"swap {first} <-> {second}"
