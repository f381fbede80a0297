"""The in-memory model of one user's OneDrive Personal: items by id, paths, and a change log.

Every mutation gives the touched items a new sequence number; a delta query is "every item whose
sequence number is above the token's". Deleted items stay as tombstones (``deleted=True``) so that
delta can report them; when a folder is deleted, some of its descendants' tombstones may be
dropped, as on the real service (sync-scenarios.md #9).
"""

from __future__ import annotations

import base64
import mimetypes
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from .content import BytesContent, Content, GeneratedContent, quick_xor_hash
from .lazy import LazyItems, LazyTree
from .options import Options
from .times import utcnow


class DriveError(Exception):
    """A drive operation that the real service would refuse (missing path, name conflict...)."""


class SeededSmallContent(Content):
    """Small random content made on demand from a seed: what bulk seeding uses (no pattern cache)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self._hash: str | None = None

    def _bytes(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        return BytesContent(self._bytes()).chunks(start, end, chunk_size)

    def quick_xor_hash(self) -> str:
        if self._hash is None:
            self._hash = quick_xor_hash(self._bytes())
        return self._hash


@dataclass(eq=False)
class Item:
    id: str
    name: str
    parent_id: str | None
    kind: str  # "root" | "folder" | "file" | "package" | "remote"
    created: datetime
    modified: datetime
    seq: int = 0
    version: int = 1  # bumps on any change: eTag
    content_version: int = 1  # bumps when content changes: cTag
    content: Content | None = None
    mime_type: str = "application/octet-stream"
    malware: bool = False
    has_hash: bool = True  # False: "old or Office-edited" files listed without any hash
    listed_hash: str | None = None  # a listed hash that disagrees with the bytes (scenario 18)
    listed_size: int | None = None
    deleted: bool = False
    remote: dict | None = None
    children: dict[str, str] = field(default_factory=dict)  # lower-cased name -> id
    moves: list[tuple[int, str]] = field(default_factory=list)  # (seq of the move, parent before it)

    @property
    def is_folder_like(self) -> bool:
        return self.kind in ("root", "folder")

    @property
    def size(self) -> int:
        if self.listed_size is not None:
            return self.listed_size
        return self.content.size if self.content is not None else 0

    @property
    def etag(self) -> str:
        return "a" + base64.b64encode(f"{self.id}.{self.version}".encode()).decode().rstrip("=")

    @property
    def ctag(self) -> str:
        raw = f"c:{{{self.id}}},{self.content_version}"
        return "aY" + base64.b64encode(raw.encode()).decode().rstrip("=")

    def quick_xor_hash(self) -> str | None:
        if not self.has_hash or self.content is None:
            return None
        if self.listed_hash is not None:
            return self.listed_hash
        return self.content.quick_xor_hash()


ChangeListener = Callable[["Drive", set[str]], None]
# Given the name of a shared folder, creates it in the sharing account's drive: -> (drive id, item id).
ShareSource = Callable[[str], tuple[str, str]]


class Drive:
    """One personal drive. Thread-safe: the emulator's servers and the test thread share it."""

    def __init__(
        self,
        drive_id: str,
        owner_id: str,
        owner_name: str,
        lock: threading.RLock,
        on_change: ChangeListener | None = None,
        options: Options | None = None,
        keep_tombstone: Callable[[str], bool] | None = None,
        share_source: ShareSource | None = None,
    ) -> None:
        """``keep_tombstone(path)`` False: the delete leaves no tombstone (a fault); ``share_source``
        makes the folders behind ``add_remote_item`` (None: a remoteItem pointing nowhere)."""
        self.id = drive_id
        self.owner_id = owner_id
        self.owner_name = owner_name
        self.lock = lock
        self.created = utcnow()
        self.items: dict[str, Item] | LazyItems = {}
        self.lazy: LazyTree | None = None  # seeded lazily: its items are made when asked for, and it can't change
        self.delta_epoch = 0  # bumped to expire every delta token of this drive
        self._on_change = on_change
        self.options = options or Options()
        self._keep_tombstone = keep_tombstone or (lambda path: True)
        self._share_source = share_source
        self._changes: dict[str, int] = {}  # item id -> seq, in seq order (pop + re-insert)
        self._seq = 0
        self._next_number = 101
        self._rng = random.Random(drive_id)
        root = self._new_item("root", None, "root")
        self.root_id = root.id

    # ----- reading -------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    def get(self, item_id: str) -> Item | None:
        return self.items.get(item_id)

    def live(self, item_id: str) -> Item | None:
        item = self.items.get(item_id)
        return item if item is not None and not item.deleted else None

    def find(self, path: str, below: str | None = None) -> Item | None:
        """The item at ``path`` from the root, or from the folder with id ``below``."""
        with self.lock:
            item = self.items.get(below or self.root_id)
            if item is None:
                return None
            for part in _split(path):
                child_id = item.children.get(part.lower())
                if child_id is None:
                    return None
                item = self.items[child_id]
            return item

    def _require(self, path: str) -> Item:
        item = self.find(path)
        if item is None or item.deleted:
            raise DriveError(f"no such item: {path!r}")
        return item

    def path_of(self, item: Item) -> str:
        parts: list[str] = []
        with self.lock:
            while item.parent_id is not None:
                parts.append(item.name)
                item = self.items[item.parent_id]
        return "/".join(reversed(parts))

    def ancestors(self, item: Item) -> list[Item]:
        """Parents of an item, nearest first, up to and including the root."""
        chain = []
        while item.parent_id is not None and item.parent_id in self.items:
            item = self.items[item.parent_id]
            chain.append(item)
        return chain

    def parent_at(self, item: Item, seq: int) -> str | None:
        """The item's parent as it was at sequence number ``seq`` (folder-scoped delta needs it)."""
        for moved_at, old_parent in item.moves:
            if moved_at > seq:
                return old_parent
        return item.parent_id

    def was_within(self, item: Item, folder: Item, seq: int) -> bool:
        """Whether ``item`` was inside ``folder`` (or was it) at sequence number ``seq``."""
        current: Item | None = item
        for _ in range(10_000):
            if current is None:
                return False
            if current.id == folder.id:
                return True
            parent_id = self.parent_at(current, seq)
            current = self.items.get(parent_id) if parent_id else None
        return False

    def app_folder(self, name: str) -> Item:
        """``/drive/special/approot``: ``Apps/{name}``, created on first use as OneDrive does."""
        with self.lock:
            found = self.find(f"Apps/{name}")
        if found is not None and not found.deleted:
            return found
        self.create_folder(f"Apps/{name}")
        return self._require(f"Apps/{name}")

    def item_id(self, path: str) -> str:
        return self._require(path).id

    def read(self, path: str) -> bytes:
        item = self._require(path)
        if item.content is None:
            raise DriveError(f"not a file: {path!r}")
        return item.content.read()

    def children_of(self, item: Item) -> list[Item]:
        with self.lock:
            return [self.items[i] for i in item.children.values()]

    def walk(self) -> Iterator[Item]:
        """Live items, parents before children (root first)."""
        with self.lock:
            stack = [self.items[self.root_id]]
            while stack:
                item = stack.pop()
                yield item
                stack.extend(self.items[i] for i in reversed(list(item.children.values())))

    def snapshot(self) -> dict[str, tuple[int, str]]:
        """What a mirror must contain: every plain file, as path -> (size, quickXorHash).

        OneNote packages, remote items and malware-flagged files are excluded. The hash is that
        of the bytes (not a deliberately wrong listed one).
        """
        result: dict[str, tuple[int, str]] = {}
        with self.lock:
            for item in self.walk():
                if item.kind == "file" and not item.malware and item.content is not None:
                    if self._inside_package(item):
                        continue
                    result[self.path_of(item)] = (item.content.size, item.content.quick_xor_hash())
        return result

    def _inside_package(self, item: Item) -> bool:
        return any(a.kind in ("package", "remote") for a in self.ancestors(item))

    def changed_since(self, seq: int) -> list[Item]:
        """Items (live or tombstones) changed after ``seq``, oldest change first."""
        with self.lock:
            changed = []
            for item_id in reversed(self._changes):
                if self._changes[item_id] <= seq:
                    break
                changed.append(self.items[item_id])
            changed.reverse()
            return changed

    def reseed(self, seed: int | str) -> None:
        """Make the drive's own random choices (which descendants of a deleted folder keep a
        tombstone) replayable: by default they follow the drive id, which is random."""
        with self.lock:
            self._rng = random.Random(seed)

    # ----- writing -------------------------------------------------------------------------

    def create_folder(self, path: str) -> str:
        self._writable()
        with self.lock:
            touched: set[str] = set()
            folder = self._ensure_folder(_split(path), touched)
        self._notify(touched)
        return folder.id

    def write_file(
        self,
        path: str,
        data: bytes | str | None = None,
        *,
        size: int | None = None,
        seed: int | None = None,
        mime_type: str | None = None,
        has_hash: bool = True,
        listed_hash: str | None = None,
        listed_size: int | None = None,
    ) -> str:
        """Create or replace a file. ``data`` for literal bytes, or ``size`` (+ ``seed``) for
        generated content that costs no memory. ``has_hash=False`` lists it with no hash;
        ``listed_hash``/``listed_size`` make the metadata disagree with the bytes."""
        if isinstance(data, str):
            data = data.encode()
        if data is not None:
            content: Content = BytesContent(data)
        elif size is not None:
            content = GeneratedContent(size=size, seed=seed if seed is not None else 0)
        else:
            content = BytesContent(b"")
        return self._put_file(path, content, mime_type, has_hash, listed_hash, listed_size)

    def _put_file(
        self,
        path: str,
        content: Content,
        mime_type: str | None = None,
        has_hash: bool = True,
        listed_hash: str | None = None,
        listed_size: int | None = None,
        kind: str = "file",
        notify: bool = True,
    ) -> str:
        self._writable()
        parts = _split(path)
        if not parts:
            raise DriveError("a file needs a name")
        with self.lock:
            touched: set[str] = set()
            parent = self._ensure_folder(parts[:-1], touched)
            existing_id = parent.children.get(parts[-1].lower())
            if existing_id is not None:
                item = self.items[existing_id]
                if item.kind != kind:
                    raise DriveError(f"{path!r} exists and is a {item.kind}")
                item.content_version += 1
            else:
                item = self._new_item(parts[-1], parent.id, kind)
            item.content = content
            item.mime_type = mime_type or mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
            item.has_hash = has_hash
            item.listed_hash = listed_hash
            item.listed_size = listed_size
            self._touch(item, touched)
        if notify:
            self._notify(touched)
        return item.id

    def move(self, src: str, dst: str) -> str:
        """Move and/or rename a file or folder. Only the moved item changes (its descendants
        keep their sequence numbers): the real delta reports a folder move as the folder alone."""
        parts = _split(dst)
        with self.lock:
            item = self._require(src)
            if item.kind == "root" or not parts:
                raise DriveError("the root can't be moved")
            touched: set[str] = set(a.id for a in self.ancestors(item))
            parent = self._ensure_folder(parts[:-1], touched)
            if parent is item or item in self.ancestors(parent):
                raise DriveError("can't move a folder into itself")
            clash = parent.children.get(parts[-1].lower())
            if clash is not None and clash != item.id:
                raise DriveError(f"{dst!r} already exists")
            old_parent = self.items[item.parent_id]  # type: ignore[index]
            del old_parent.children[item.name.lower()]
            self._touch(old_parent, touched, bump_content=False)
            item.name = parts[-1]
            item.parent_id = parent.id
            parent.children[item.name.lower()] = item.id
            self._touch(item, touched, bump_content=False)
            if old_parent.id != parent.id:
                item.moves.append((item.seq, old_parent.id))
        self._notify(touched)
        return item.id

    def rename(self, path: str, new_name: str) -> str:
        parent = "/".join(_split(path)[:-1])
        return self.move(path, f"{parent}/{new_name}" if parent else new_name)

    def delete(self, path: str) -> None:
        """Delete a file or a folder with everything in it. Descendants become tombstones first,
        then the folder; depending on ``tombstones`` mode ("all", "partial", "folder_only") some
        descendants vanish without a tombstone, as the real feed may hold only some of them."""
        self._writable()
        with self.lock:
            item = self._require(path)
            if item.kind == "root":
                raise DriveError("the root can't be deleted")
            touched: set[str] = set(a.id for a in self.ancestors(item))
            mode = self.options.tombstones
            for descendant in self._post_order(item):
                if descendant is item:
                    continue
                keep = mode == "all" or (mode == "partial" and self._rng.random() < 0.5)
                self._bury(descendant, touched, keep_tombstone=keep and self._keep_tombstone(self.path_of(descendant)))
            keep_own = self._keep_tombstone(self.path_of(item))
            parent = self.items[item.parent_id]  # type: ignore[index]
            del parent.children[item.name.lower()]
            self._bury(item, touched, keep_tombstone=keep_own)
            self._touch(parent, touched, bump_content=False)
        self._notify(touched)

    def add_onenote(self, path: str) -> str:
        """A OneNote notebook: a ``package`` item, which can't be downloaded."""
        return self._put_file(path, BytesContent(b""), "application/msonenote", kind="package")

    def add_remote_item(self, path: str) -> str:
        """A folder shared from another account and added to this drive (``remoteItem``): its
        content lives in the sharer's drive, where Graph resolves it."""
        self._writable()
        parts = _split(path)
        with self.lock:
            touched: set[str] = set()
            parent = self._ensure_folder(parts[:-1], touched)
            if parts[-1].lower() in parent.children:
                raise DriveError(f"{path!r} already exists")
            if self._share_source is not None:
                remote_drive_id, remote_id = self._share_source(parts[-1])
            else:
                remote_drive_id, remote_id = "f0e1d2c3b4a59687", f"F0E1D2C3B4A59687!s{uuid.uuid4().hex}"
            item = self._new_item(parts[-1], parent.id, "remote")
            item.remote = {"drive_id": remote_drive_id, "id": remote_id}
            self._touch(item, touched)
        self._notify(touched)
        return item.id

    def mark_malware(self, path: str) -> str:
        """Flag a file as malware (creating a small one if needed): its content answers 403."""
        self._writable()
        with self.lock:
            item = self.find(path)
            if item is None or item.deleted:
                self._put_file(path, BytesContent(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"), notify=False)
                item = self._require(path)
            touched: set[str] = set()
            item.malware = True
            self._touch(item, touched, bump_content=False)
        self._notify(touched)
        return item.id

    def seed(
        self,
        n_files: int = 1000,
        n_folders: int | None = None,
        seed: int = 1,
        folder: str = "",
        max_size: int = 4096,
    ) -> list[str]:
        """Add ``n_files`` small files spread over ``n_folders`` new folders (0: all in
        ``folder`` itself, e.g. one folder with 100,000 children). Returns the file ids."""
        self._writable()
        rng = random.Random(seed)
        if n_folders is None:
            n_folders = max(1, n_files // 100)
        ids: list[str] = []
        with self.lock:
            touched: set[str] = set()
            base = self._ensure_folder(_split(folder), touched)
            folders = [base]
            for index in range(n_folders):
                parent = folders[rng.randrange(len(folders))] if index else base
                name = f"seed-{seed}-folder-{index:05d}"
                existing = parent.children.get(name.lower())
                child = self.items[existing] if existing else self._new_item(name, parent.id, "folder")
                self._touch(child, touched)
                folders.append(child)
            targets = folders[1:] or folders
            for index in range(n_files):
                parent = targets[rng.randrange(len(targets))]
                name = f"seed-{seed}-file-{index:06d}.bin"
                if name.lower() in parent.children:
                    item = self.items[parent.children[name.lower()]]
                    item.content_version += 1
                else:
                    item = self._new_item(name, parent.id, "file")
                item.content = SeededSmallContent(rng.randrange(0, max_size + 1), rng.getrandbits(63))
                self._touch(item, touched)
                ids.append(item.id)
        self._notify(touched)
        return ids

    def seed_lazily(self, n_files: int, n_folders: int | None = None, seed: int = 1, max_size: int = 64) -> None:
        """Make this empty drive one of ``n_files`` small files in ``n_folders`` folders (a tree,
        ``lazy.FANOUT`` subfolders each) that exist only as arithmetic (``lazy.py``): delta, item reads
        and downloads make each item when asked, so a million items cost no memory. The drive
        can't change afterwards (every change raises ``DriveError``): enough for a full
        enumeration's benchmark. A full delta lists it in item-number order, whatever
        ``delta_order`` says. Not kept by ``--data-dir`` persistence."""
        with self.lock:
            if len(self.items) > 1:
                raise DriveError("only an empty drive can be seeded lazily")
            self._writable()
            folders = max(1, n_files // 100) if n_folders is None else n_folders
            tree = LazyTree(self.id, self.root_id, n_files, folders, seed, max_size, utcnow())
            root = self.items[self.root_id]
            root.children = {tree.name(n).lower(): tree.id_of(n) for n in tree.children(0)}
            self._touch(root, set())
            self.items = LazyItems(dict(self.items), tree, _lazy_item)
            self.lazy = tree
        self._notify({self.root_id})

    # ----- saving and restoring (services/persistence.py) ----------------------------------

    @property
    def next_number(self) -> int:
        return self._next_number

    def restore(self, items: list[Item], root_id: str, seq: int, next_number: int, delta_epoch: int) -> None:
        """Replace everything with saved items: children and the change log are rebuilt from them."""
        self._writable()
        with self.lock:
            self.items = {item.id: item for item in items}
            self.root_id = root_id
            self._seq = seq
            self._next_number = next_number
            self.delta_epoch = delta_epoch
            for item in items:
                item.children = {}
            for item in items:
                parent = self.items.get(item.parent_id) if item.parent_id is not None else None
                if parent is not None and not item.deleted and not parent.deleted:
                    parent.children[item.name.lower()] = item.id
            self._changes = {item.id: item.seq for item in sorted(items, key=lambda i: i.seq) if item.seq}
            # A new random stream: the saved one's position is not kept, and reusing it from the
            # start would repeat earlier choices (which descendants of a deleted folder keep a tombstone).
            self._rng = random.Random(f"{self.id}:{seq}")

    # ----- internals -----------------------------------------------------------------------

    def _writable(self) -> None:
        if self.lazy is not None:
            raise DriveError("a lazily seeded drive can't change")

    def _new_item(self, name: str, parent_id: str | None, kind: str) -> Item:
        if self.options.item_id_style == "legacy":
            item_id = f"{self.id.upper()}!{self._next_number}"
        else:
            # Since 2025 (OneDrive/onedrive-api-docs#1890): the drive id in capitals, "!s", 32 hex.
            item_id = f"{self.id.upper()}!s{uuid.uuid4().hex}"
        self._next_number += 1
        now = utcnow()
        item = Item(id=item_id, name=name, parent_id=parent_id, kind=kind, created=now, modified=now)
        if kind == "root":
            item.name = "root"
        self.items[item_id] = item
        if parent_id is not None:
            self.items[parent_id].children[name.lower()] = item_id
        return item

    def _ensure_folder(self, parts: list[str], touched: set[str]) -> Item:
        item = self.items[self.root_id]
        for part in parts:
            child_id = item.children.get(part.lower())
            if child_id is None:
                child = self._new_item(part, item.id, "folder")
                self._touch(child, touched)
                self._touch(item, touched, bump_content=False)
                item = child
            else:
                item = self.items[child_id]
                if not item.is_folder_like:
                    raise DriveError(f"{part!r} is not a folder")
        touched.update(a.id for a in self.ancestors(item))
        touched.add(item.id)
        return item

    def _touch(self, item: Item, touched: set[str], bump_content: bool = True) -> None:
        self._seq += 1
        item.seq = self._seq
        item.version += 1
        item.modified = utcnow()
        self._changes.pop(item.id, None)
        self._changes[item.id] = item.seq
        touched.add(item.id)
        touched.update(a.id for a in self.ancestors(item))

    def _bury(self, item: Item, touched: set[str], keep_tombstone: bool) -> None:
        if keep_tombstone:
            item.deleted = True
            item.children = {}
            self._touch(item, touched)
        else:
            self.items.pop(item.id, None)
            self._changes.pop(item.id, None)

    def _post_order(self, item: Item) -> list[Item]:
        order: list[Item] = []
        stack: list[tuple[Item, bool]] = [(item, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            stack.append((node, True))
            stack.extend((self.items[i], False) for i in node.children.values())
        return order

    def _notify(self, touched: Iterable[str]) -> None:
        if self._on_change is not None:
            self._on_change(self, set(touched))


def _lazy_item(tree: LazyTree, number: int) -> Item:
    folder = number <= tree.folders
    item = Item(id=tree.id_of(number), name=tree.name(number), parent_id=tree.id_of(tree.parent(number)),
                kind="folder" if folder else "file", created=tree.created, modified=tree.created, seq=1)
    if folder:
        item.children = {tree.name(child).lower(): tree.id_of(child) for child in tree.children(number)}
    else:
        item.content = SeededSmallContent(*tree.content(number))
    return item


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part]
