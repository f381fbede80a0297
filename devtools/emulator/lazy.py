"""A drive of N items that exist only as arithmetic: what `Drive.seed_lazily` installs, so that a
1,000,000-item drive costs the emulator no memory per item.

Item number 0 is the root, 1..F the folders (folder k's parent is folder (k - 1) // FANOUT, so a
parent's number is below its children's), F+1..F+N the files (folder k holds a consecutive run of
them). An item's id is its number through an invertible scramble (ids look random and sort in no
useful order, like the service's), so an id is decoded back to its number, never looked up. Names,
sizes and bytes follow from the seed and the number. Nothing here changes: a lazy drive is frozen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from .drive import Item

FANOUT = 10  # subfolders per folder: a million items are five levels deep
_MASK = (1 << 128) - 1
_SCRAMBLE = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: multiplication by it is a bijection mod 2**128
_UNSCRAMBLE = pow(_SCRAMBLE, -1, 1 << 128)


class LazyTree:
    """Who is where in a lazily seeded drive, computed from item numbers."""

    def __init__(self, drive_id: str, root_id: str, n_files: int, n_folders: int, seed: int, max_size: int,
                 created: datetime) -> None:
        self.prefix = f"{drive_id.upper()}!s"
        self.root_id = root_id
        self.files = n_files
        self.folders = max(1, n_folders)
        self.seed = seed
        self.max_size = max_size
        self.created = created
        self.total = 1 + self.folders + self.files  # the root included

    # ----- numbers and ids -----------------------------------------------------------------------

    def id_of(self, number: int) -> str:
        return self.root_id if number == 0 else f"{self.prefix}{(number * _SCRAMBLE + self.seed) & _MASK:032x}"

    def number_of(self, item_id: str) -> int | None:
        if item_id == self.root_id:
            return 0
        if not item_id.startswith(self.prefix) or len(item_id) != len(self.prefix) + 32:
            return None
        try:
            number = ((int(item_id[len(self.prefix):], 16) - self.seed) * _UNSCRAMBLE) & _MASK
        except ValueError:
            return None
        return number if 0 < number < self.total else None

    # ----- the tree ------------------------------------------------------------------------------

    def parent(self, number: int) -> int:
        if number <= self.folders:
            return (number - 1) // FANOUT
        return 1 + (number - self.folders - 1) * self.folders // self.files

    def children(self, number: int) -> range | list[int]:
        """Subfolders, then files (none for a file)."""
        if number > self.folders:
            return []
        subfolders = range(number * FANOUT + 1, min(number * FANOUT + FANOUT, self.folders) + 1)
        if number == 0:
            return subfolders
        # Files j (0-based) with 1 + j * F // N == number: j from ceil((number - 1) * N / F).
        first, last = (-(-(number - 1) * self.files // self.folders), -(-number * self.files // self.folders))
        return [*subfolders, *range(self.folders + 1 + first, self.folders + 1 + last)]

    def name(self, number: int) -> str:
        if number <= self.folders:
            return f"lazy-{self.seed}-folder-{number:07d}"
        return f"lazy-{self.seed}-file-{number - self.folders - 1:07d}.bin"

    def content(self, number: int) -> tuple[int, int]:
        """(size, seed of the bytes) of file `number`."""
        digest = hashlib.blake2b(f"{self.seed}:{number}".encode(), digest_size=16).digest()
        return int.from_bytes(digest[:8], "little") % (self.max_size + 1), int.from_bytes(digest[8:], "little") >> 1


class LazyItems(MutableMapping[str, "Item"]):
    """`Drive.items` of a lazily seeded drive: the items created before the seeding (the root,
    kept as they are) and the tree's, each made anew when asked for."""

    def __init__(self, kept: dict[str, Item], tree: LazyTree, make: Callable[[LazyTree, int], Item]) -> None:
        self.kept = kept
        self.tree = tree
        self._make = make

    def __getitem__(self, item_id: str) -> Item:
        found = self.kept.get(item_id)
        if found is not None:
            return found
        number = self.tree.number_of(item_id)
        if number is None:
            raise KeyError(item_id)
        return self._make(self.tree, number)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.kept or (isinstance(item_id, str) and self.tree.number_of(item_id) is not None)

    def __iter__(self) -> Iterator[str]:
        yield from self.kept
        for number in range(1, self.tree.total):
            yield self.tree.id_of(number)

    def __len__(self) -> int:
        return len(self.kept) + self.tree.total - 1

    def __setitem__(self, item_id: str, item: Item) -> None:
        self.kept[item_id] = item

    def __delitem__(self, item_id: str) -> None:
        del self.kept[item_id]


class LazyOrder(Sequence[str]):
    """A full enumeration's ids in item-number order (parents before children), without a list."""

    def __init__(self, tree: LazyTree) -> None:
        self.tree = tree

    def __len__(self) -> int:
        return self.tree.total

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self.tree.id_of(number) for number in range(*index.indices(self.tree.total))]
        if not -self.tree.total <= index < self.tree.total:
            raise IndexError(index)
        return self.tree.id_of(index % self.tree.total)
