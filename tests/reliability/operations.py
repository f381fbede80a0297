"""Random drive operations, chosen from a seed against the drive as it is now.

The choice depends only on the seed and the drive's state, and the drive's state only on earlier
choices, so a seed replays the same operations every time.
"""

from __future__ import annotations

import random
import unicodedata

from devtools.emulator.drive import Drive, DriveError

# Names a mirror must carry through unchanged (sync-scenarios.md #13), none invalid in OneDrive.
NAMES = [
    "notes.txt", "Report 2024.docx", "a#b.md", "100% done.txt", "c++ & co.txt", "x+y=z.bin", "émile.txt",
    "日本語のファイル.txt", "😀 smile.png", "Case.TXT", "case.txt", "with  two spaces.txt", "semi;colon,comma.csv",
    "very-" + "long-" * 30 + "name.txt", "~tilde", "[brackets] (parens) {braces}.txt", "'quote'.txt", "dot.in.name.tar.gz",
]
FOLDERS = ["Docs", "Photos", "a", "B", "Ünïcödé", "deep", "x y", "#tag", "100%", "sub.folder", "Árvíztűrő", "😀"]
SIZES = [0, 1, 7, 100, 1000, 4096, 5000, 65536, 70000, 300_000]
CONNECTION_ID_LENGTH = 36  # a uuid: the blob name is "{connection id}/{path}", at most 1,024 characters
MAX_BLOB_NAME = 1024
# Identity and ordering (issue 15): names traded between folders with same-named children,
# renames of a parent and its child together, a folder taking its former child's place, kinds
# flipping under one name, Unicode forms, trees 40+ deep, paths at and over the limit, bursts of
# changes that reach the sync as one delta.
IDENTITY_OPERATIONS = ("folder_swap", "folder_cycle", "parent_and_child_rename", "into_former_child",
                       "kind_flip", "unicode_form_rename", "very_deep_tree", "long_path", "burst")


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

    def random(self, *, in_burst: bool = False) -> str:
        weights = {
            self.create: 30, self.change: 12, self.rename: 10, self.move: 10, self.delete: 7,
            self.deep_tree: 5, self.recreate: 7, self.swap: 4, self.case_rename: 4,
            self.folder_swap: 4, self.folder_cycle: 3, self.parent_and_child_rename: 3, self.into_former_child: 3,
            self.kind_flip: 3, self.unicode_form_rename: 3, self.very_deep_tree: 1, self.long_path: 2,
        }
        if not in_burst:
            weights[self.burst] = 2
        operation = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        try:
            return operation()
        except DriveError as refused:  # e.g. a name clash: the real service would refuse it too
            return f"{operation.__name__} refused: {refused}"

    def kind_of(self, description: str) -> str:
        """The operation's kind, from what `random` returned (for the summary's counts)."""
        first = description.split(" ", 1)[0]
        return {"deep": "deep tree", "re-create": "re-create", "case-rename": "case rename"}.get(first, first)

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

    # ----- identity and ordering ---------------------------------------------------------------

    def _sibling_folders(self, count: int) -> tuple[str, list[str]]:
        """`count` folders side by side, each holding a file of the same name (made if need be)."""
        parent = self.rng.choice([""] + [f for f in self.folders() if f.count("/") < 6])
        names = []
        for _ in range(count):
            name = self._fresh_name(parent, FOLDERS)
            self.drive.write_file(self._join(self._join(parent, name), "data.bin"), self._content())
            names.append(name)
        return parent, names

    def _cycle(self, parent: str, names: list[str]) -> None:
        """Each folder takes the next one's name, through a temporary name: one delta."""
        temporary = f"cycle-{self.counter}"
        self.counter += 1
        self.drive.rename(self._join(parent, names[0]), temporary)
        for index in range(len(names) - 1, 0, -1):
            self.drive.rename(self._join(parent, names[index]), names[(index + 1) % len(names)])
        self.drive.rename(self._join(parent, temporary), names[1])

    def folder_swap(self) -> str:
        parent, names = self._sibling_folders(2)
        self._cycle(parent, names)
        return f"folder_swap {self._join(parent, names[0])} <-> {names[1]}"

    def folder_cycle(self) -> str:
        parent, names = self._sibling_folders(3)
        self._cycle(parent, names)
        return f"folder_cycle {self._join(parent, names[0])} -> {names[1]} -> {names[2]}"

    def parent_and_child_rename(self) -> str:
        nested = [f for f in self.folders() if "/" in f]
        if not nested:
            return self.deep_tree()
        child = self.rng.choice(nested)
        parent = child.rpartition("/")[0]
        grand = parent.rpartition("/")[0]
        child_name = self._fresh_name(child.rpartition("/")[0], FOLDERS)
        self.drive.rename(child, child_name)
        parent_name = self._fresh_name(grand, FOLDERS)
        self.drive.rename(parent, parent_name)
        return f"parent_and_child_rename {parent} -> {parent_name}, its {child.rsplit('/', 1)[-1]} -> {child_name}"

    def into_former_child(self) -> str:
        """P/F/C becomes P/C'/F: the child moves up beside its parent, the parent moves into it."""
        nested = [f for f in self.folders() if "/" in f]
        if not nested:
            return self.deep_tree()
        child = self.rng.choice(nested)
        folder = child.rpartition("/")[0]
        outer = folder.rpartition("/")[0]
        name = child.rsplit("/", 1)[-1]
        if any(p.lower() == self._join(outer, name).lower() for p in self.items()):
            name = self._fresh_name(outer, [name])
        self.drive.move(child, self._join(outer, name))
        self.drive.move(folder, self._join(self._join(outer, name), folder.rsplit("/", 1)[-1]))
        return f"into_former_child {folder} -> {self._join(outer, name)}/{folder.rsplit('/', 1)[-1]}"

    def kind_flip(self) -> str:
        """A file replaced by a folder of the same name, or a folder by a file, in one delta."""
        items = self.items()
        if not items:
            return self.create()
        path = self.rng.choice(items)
        if path in self.folders():
            self.drive.delete(path)
            self.drive.write_file(path, self._content())
            return f"kind_flip folder {path} -> file"
        self.drive.delete(path)
        self.drive.write_file(f"{path}/{self.rng.choice(NAMES)}", self._content())
        if self.rng.random() < 0.5:  # and back again, still in the same delta
            self.drive.delete(path)
            self.drive.write_file(path, self._content())
            return f"kind_flip file {path} -> folder -> file"
        return f"kind_flip file {path} -> folder"

    def into_deleted_folder(self) -> str:
        """An item moved into a folder that is then deleted, before any sync: the delete may drop
        the moved item's tombstone, and then no delta tells (seed 37; only the periodic full
        reconciliation removes it). Not in `random`'s weights, so that seeds replay as before:
        the model test (tests/sync/test_model.py) picks it by name."""
        items = self.items()
        folders = self.folders()
        if not items or not folders:
            return self.deep_tree()
        path = self.rng.choice(items)
        targets = [f for f in folders if f != path and not f.startswith(path + "/") and f != path.rpartition("/")[0]]
        if not targets:
            return self.delete()
        target = self.rng.choice(targets)
        name = path.rsplit("/", 1)[-1]
        if any(p.lower() == self._join(target, name).lower() for p in self.items()):
            name = self._fresh_name(target, [name])
        self.drive.move(path, self._join(target, name))
        self.drive.delete(target)
        return f"into_deleted_folder {path} -> {target}, deleted"

    def unicode_form_rename(self) -> str:
        """The same name in the other Unicode normal form: one name to a person, another to a blob."""
        items = [p for p in self.items() if unicodedata.normalize("NFD", p) != unicodedata.normalize("NFC", p)]
        if not items:
            folder = self._folder()
            path = self._join(folder, self._fresh_name(folder, ["émile.txt", "Ünïcödé", "Árvíztűrő.md"]))
            self.drive.write_file(path, self._content())
            return f"create {path}"
        path = self.rng.choice(items)
        name = path.rsplit("/", 1)[-1]
        form = "NFD" if unicodedata.normalize("NFC", name) == name else "NFC"
        self.drive.rename(path, unicodedata.normalize(form, name))
        return f"unicode_form_rename {path} -> {form}"

    def very_deep_tree(self) -> str:
        depth = self.rng.randint(40, 46)
        parts = [self._fresh_name("", FOLDERS)] + [f"d{index}" for index in range(depth - 1)]
        base = "/".join(parts)
        for _ in range(self.rng.randint(1, 3)):
            self.drive.write_file(f"{base}/{self.rng.choice(NAMES)}", self._content())
        if self.rng.random() < 0.5:  # and rename a folder half-way down, in the same delta
            middle = "/".join(parts[: depth // 2])
            self.drive.rename(middle, self._fresh_name(middle.rpartition("/")[0], FOLDERS))
        return f"very_deep_tree {depth} levels under {parts[0]}"

    def long_path(self) -> str:
        """Files whose blob name is exactly at the limit, and one character over (skipped)."""
        room = MAX_BLOB_NAME - CONNECTION_ID_LENGTH - 1
        top = self._fresh_name("", ["long"])
        folder = top + "/" + "/".join(ch * 200 for ch in "fgh")
        at_limit = f"{folder}/{'x' * (room - len(folder) - 1)}"
        over = f"{folder}/{'y' * (room - len(folder))}"
        self.drive.write_file(at_limit, self._content())
        self.drive.write_file(over, self._content())
        if self.rng.random() < 0.5:  # a rename that pushes the mirrored one over the limit, or not
            self.drive.rename(top, top + ("+" if self.rng.random() < 0.5 else ""))
        return f"long_path under {top}"

    def burst(self) -> str:
        """Many changes before the sync hears of them (as after an outage): one delta."""
        done = [self.random(in_burst=True) for _ in range(self.rng.randint(10, 25))]
        return f"burst of {len(done)}: " + "; ".join(done)
