"""The delta engine: decides WHAT to do to the mirror, as plain data, from item rows. No I/O here.

Every item row holds two states: *desired* (the drive's latest state, written by delta collect)
and *mirrored* (the name and parent under which the mirror holds it, written after each applied
change). Paths are never stored: both are derived by walking parent chains, so a folder rename
changes one row, and a path can never be trusted from the wire (`parentReference.path`).

- Folders: when a folder's mirrored path differs from its desired one (renamed, moved, deleted,
  became unmirrorable), the blobs under its old prefix are listed and each blob goes where *its own
  item* must be (`plan_blobs`): moved server-side, or deleted. Nothing is clobbered by prefix alone.
- Files: unchanged (same place, same content), moved (same content, new place), copied (new
  content), written empty (zero bytes), deleted or skipped (`plan_file`).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from functions.microsoft.driveitem import Kind
from functions.storage.names import mirror_blob

MAX_BLOB_NAME = 1024  # characters, Azure's limit on a blob name
MAX_SEGMENTS = 254  # Azure: at most 254 path segments in a blob name
MAX_DEPTH = 1000  # a parent chain longer than this is a cycle from a broken server

log = logging.getLogger(__name__)


def case_variants(item_id: str) -> list[str]:
    """Spellings of an id the service may use for the same item: since 2025 the drive-id part of
    `<DRIVEID>!s<hex>` ids comes in varying case (OneDrive/onedrive-api-docs#1902)."""
    drive, sep, rest = item_id.partition("!")
    found = dict.fromkeys((drive.upper() + sep + rest, drive.lower() + sep + rest, item_id.upper(), item_id.lower()))
    found.pop(item_id, None)
    return list(found)


@dataclass(frozen=True, slots=True)
class ItemState:
    """One row of the id map (Tables.DRIVE_ITEMS), as the planner sees it. Slots: a run holds
    thousands (a chunk's rows and every folder's), each a third smaller without a __dict__."""

    id: str
    kind: Kind
    name: str | None = None
    parent_id: str | None = None
    size: int | None = None
    quickxorhash: str | None = None
    ctag: str = ""
    etag: str = ""
    deleted: bool = False
    malware: bool = False
    # What the mirror holds for this item: (m_name, m_parent_id) place it; m_content says which bytes.
    m_name: str | None = None
    m_parent_id: str | None = None
    m_content: str = ""
    skipped: str = ""  # why the apply phase left it out of the mirror ("": it didn't)

    @property
    def content_key(self) -> str:
        """Identifies the bytes: the hash when listed, else the cTag (changes only with content)."""
        if self.quickxorhash:
            return f"h:{self.quickxorhash}:{self.size}"
        if self.ctag:
            return f"c:{self.ctag}:{self.size}"
        return f"e:{self.etag}:{self.size}"

    @property
    def mirrored(self) -> bool:
        return self.m_name is not None


# ----- path rules ------------------------------------------------------------------------------


def segment_problem(name: str | None) -> str | None:
    """Why an item name can't be a blob path segment, or None if it can.

    Names come from a server we don't control: a `..` segment could be normalised by an HTTP
    client into another connection's prefix, `\\` is a separator to some tools, control characters
    and lone surrogates break headers and encodings.
    """
    if not name:
        return "empty name"
    if name in (".", ".."):
        return "dot segment"
    if "/" in name or "\\" in name:
        return "separator in name"
    for ch in name:
        category = unicodedata.category(ch)
        if category == "Cc":
            return "control character in name"
        if category == "Cs":
            return "lone surrogate in name"
    return None


def path_problem(path: str) -> str | None:
    """Why a relative mirror path (`a/b/c.txt`) is unusable as a blob name, or None."""
    segments = path.split("/")
    for segment in segments:
        problem = segment_problem(segment)
        if problem:
            return problem
    if len(segments) >= MAX_SEGMENTS:
        return "too deep"
    if path.endswith("."):
        return "name ends with a dot"  # Azure: clients may strip a trailing dot from a blob name
    return None


def blob_name(connection_id: str, path: str) -> str:
    """The blob holding `path` of a connection's drive. Raises ValueError on an unusable path."""
    problem = path_problem(path) or segment_problem(connection_id)
    full = mirror_blob(connection_id, path)
    if problem is None and len(full) > MAX_BLOB_NAME:
        problem = "path too long"
    if problem:
        raise ValueError(problem)
    return full


# ----- resolving paths -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    path: str | None  # relative to the connection's prefix; None: the item has no place in the mirror
    reason: str = ""  # why not: "deleted" or "orphan" (dead), else why it is skipped ("malware", "path too long", ...)

    @property
    def dead(self) -> bool:
        # "unselected": outside the connection's selection; nothing will report it again.
        return self.reason in ("deleted", "orphan", "unselected")


@dataclass(frozen=True)
class Scope:
    """A selection, as the planner sees it: the selected items (folders and files) and the folders
    above them (kept in the id map only to give the selected items their drive paths)."""

    roots: frozenset[str]
    ancestors: frozenset[str] = frozenset()


class Resolver:
    """Desired and mirrored paths through parent chains, memoised per planning round.

    `connection_id`: the blob name prefix, so that a path too long for a blob name is skipped
    like any other unmirrorable item (its length counts against Azure's 1,024 characters).
    With a `scope`, only the selected items and what is under them have a desired path."""

    def __init__(self, rows: Mapping[str, ItemState], connection_id: str = "", scope: Scope | None = None) -> None:
        self.rows = rows
        self.scope = scope
        self._desired: dict[str, Resolved] = {}
        self._covered: dict[str, bool] = {}
        self.max_path = MAX_BLOB_NAME - (len(connection_id) + 1 if connection_id else 0)
        self._by_casefold: dict[str, str] | None = None
        self._aliases: dict[str, str | None] = {}

    def row(self, item_id: str | None) -> ItemState | None:
        """The row of `item_id`, or of the same id in another case: ids are opaque, but a parent
        spelt differently is not an unknown parent (never delete a subtree as orphaned for that)."""
        if not item_id:
            return None
        found = self.rows.get(item_id)
        if found is not None:
            return found
        if item_id not in self._aliases:
            self._aliases[item_id] = self._alias(item_id)
        alias = self._aliases[item_id]
        return self.rows.get(alias) if alias else None

    def _alias(self, item_id: str) -> str | None:
        loaded = getattr(self.rows, "aliases", None)  # RowCache: found by reading the variants
        alias = loaded.get(item_id) if isinstance(loaded, dict) else None
        if alias is None:
            if self._by_casefold is None:
                self._by_casefold = {key.casefold(): key for key in self.rows}
            alias = self._by_casefold.get(item_id.casefold())
        if alias is not None and alias != item_id:
            log.info("parent id matched an item id only ignoring case", extra={"item_id": item_id, "matched": alias})
            return alias
        return None

    def desired(self, item_id: str) -> Resolved:
        resolved = self._chain(item_id)
        scope = self.scope
        if scope is None or resolved.path is None or item_id in scope.roots:
            return resolved
        if item_id in scope.ancestors:
            return resolved  # a folder above the selection: a path, never content (no blob is under it alone)
        return resolved if self._in_scope(item_id) else Resolved(None, "unselected")

    def _in_scope(self, item_id: str) -> bool:
        assert self.scope is not None
        seen: list[str] = []
        current = self.rows.get(item_id)
        answer = False
        for _ in range(MAX_DEPTH):
            if current is None:
                break
            known = self._covered.get(current.id)
            if known is not None:
                answer = known
                break
            if current.id in self.scope.roots:
                answer = True
                break
            if current.kind is Kind.ROOT or current.id in self.scope.ancestors:
                break
            seen.append(current.id)
            current = self.row(current.parent_id)
        for link in seen:
            self._covered[link] = answer
        return answer

    def _chain(self, item_id: str) -> Resolved:
        known = self._desired.get(item_id)
        if known is not None:
            return known
        chain: list[ItemState] = []
        current = self.rows.get(item_id)
        result: Resolved | None = None
        while result is None:
            if current is None:
                result = Resolved(None, "orphan")  # a parent we never saw (or already forgot): dead
                break
            cached = self._desired.get(current.id)
            if cached is not None:
                result = cached
                break
            if current.kind is Kind.ROOT and not current.deleted:
                result = Resolved("")
                break
            chain.append(current)
            if len(chain) > MAX_DEPTH:
                result = Resolved(None, "orphan")
                break
            current = self.row(current.parent_id)
        # Unwind: each link gets its own answer, nearest the root first.
        for link in reversed(chain):
            result = _step(result, link, self.max_path)
            self._desired[link.id] = result
        return self._desired.get(item_id, result)

    def drive_path(self, item_id: str) -> str | None:
        """The item's path in the drive by its names, whatever the mirror's rules say (for people
        reading why it was skipped); None if its chain doesn't reach the root."""
        return self._walk(item_id, mirrored=False)

    def mirrored(self, item_id: str) -> str | None:
        """Where the mirror holds the item now (a file's blob, a folder's prefix), or None."""
        return self._walk(item_id, mirrored=True)

    def _walk(self, item_id: str, *, mirrored: bool) -> str | None:
        """The path up the chain of desired (name, parent_id) or mirrored (m_name, m_parent_id)
        places; None when a link is missing or has no such place, or the chain never ends."""
        parts: list[str] = []
        current = self.rows.get(item_id)
        for _ in range(MAX_DEPTH):
            if current is None:
                return None
            if current.kind is Kind.ROOT:
                return "/".join(reversed(parts))
            name, parent_id = (current.m_name, current.m_parent_id) if mirrored else (current.name or "", current.parent_id)
            if name is None or parent_id is None:
                return None
            parts.append(name)
            current = self.row(parent_id)
        return None


SKIPPED_FOLDER = "in a skipped folder: "


def _step(parent: Resolved, item: ItemState, max_path: int = MAX_BLOB_NAME) -> Resolved:
    if item.deleted:
        return Resolved(None, "deleted")
    if parent.path is None:
        # Under a dead folder the item is dead too; under a skipped one it is skipped for the same reason.
        if parent.dead:
            return Resolved(None, parent.reason)
        reason = parent.reason if parent.reason.startswith(SKIPPED_FOLDER) else SKIPPED_FOLDER + parent.reason
        return Resolved(None, reason)
    if item.kind is Kind.PACKAGE:
        return Resolved(None, "OneNote notebook")
    if item.kind is Kind.REMOTE:
        return Resolved(None, "shared with me (another drive)")
    if item.malware:
        return Resolved(None, "malware")
    problem = segment_problem(item.name)
    if problem:
        return Resolved(None, problem)
    path = f"{parent.path}/{item.name}" if parent.path else str(item.name)
    problem = path_problem(path)
    if problem:
        return Resolved(None, problem)
    if len(path) > max_path:
        return Resolved(None, "path too long")
    return Resolved(path)


# ----- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    item_id: str
    source: str
    target: str


@dataclass(frozen=True)
class Delete:
    item_id: str
    path: str


@dataclass(frozen=True)
class Copy:
    item_id: str
    path: str
    old_path: str | None  # where the previous version is, deleted once the new one is committed
    size: int
    quickxorhash: str | None
    empty: bool = False  # zero bytes: written without a download


@dataclass(frozen=True)
class Record:
    """Nothing to do to blobs, but the row changes: mirrored values, skip reason, or forget it."""

    item_id: str
    path: str | None  # the new mirrored place (None: not in the mirror)
    skipped: str = ""  # reason when the item can't be mirrored (package, remote, malware, name)
    forget: bool = False  # the item is dead: remove its row


@dataclass(frozen=True)
class FolderChange:
    folder_id: str
    old_prefix: str | None  # where the subtree's blobs are now (None: nothing mirrored there)
    new_path: str | None  # where they go (None: dead or unmirrorable)
    resolved: Resolved


@dataclass
class FilePlan:
    """What one planning round does to files, in the order it must be done."""

    deletes: list[Delete] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


def plan_folder(folder: ItemState, resolver: Resolver) -> FolderChange:
    resolved = resolver.desired(folder.id)
    return FolderChange(folder.id, resolver.mirrored(folder.id), resolved.path, resolved)


def plan_blobs(blobs: list[tuple[str, str | None]], resolver: Resolver) -> tuple[list[Move], list[Delete]]:
    """Blobs under a changed folder's old prefix, as (path, item id): each goes where its item must
    be, or is deleted when its item is dead or unmirrorable. Blobs of unknown items are left for
    the resync sweep (they are not ours to judge here)."""
    moves: list[Move] = []
    deletes: list[Delete] = []
    for path, item_id in blobs:
        if not item_id or item_id not in resolver.rows:
            continue
        row = resolver.rows[item_id]
        resolved = resolver.desired(item_id)
        if row.kind is not Kind.FILE or resolved.path is None:
            deletes.append(Delete(item_id, path))
        elif resolved.path != path:
            moves.append(Move(item_id, path, resolved.path))
    return order_moves(moves), deletes


def plan_files(items: list[ItemState], resolver: Resolver) -> FilePlan:
    plan = FilePlan()
    for item in items:
        if item.kind.holds_children:
            continue
        mirrored = resolver.mirrored(item.id)
        resolved = resolver.desired(item.id)
        if resolved.path is None:
            if mirrored is not None:
                plan.deletes.append(Delete(item.id, mirrored))
            plan.records.append(Record(item.id, None, skipped="" if resolved.dead else resolved.reason, forget=resolved.dead))
            continue
        same_content = item.mirrored and item.m_content == item.content_key
        if mirrored == resolved.path and same_content:
            plan.records.append(Record(item.id, resolved.path))
        elif mirrored is not None and same_content:
            plan.moves.append(Move(item.id, mirrored, resolved.path))
        else:
            size = item.size or 0
            plan.copies.append(Copy(item.id, resolved.path, mirrored, size, item.quickxorhash, empty=size == 0))
    plan.moves = order_moves(plan.moves)
    return plan


def order_moves(moves: list[Move]) -> list[Move]:
    """A move whose target is another move's source goes after it (so it doesn't overwrite a blob
    that still has to move). Cycles (swaps) keep their order: one of them overwrites the other's
    source, and that item, no longer found where the mirror had it, is copied again."""
    by_source = {m.source: m for m in moves}
    done: set[str] = set()
    ordered: list[Move] = []
    visiting: set[str] = set()

    def visit(move: Move) -> None:
        if move.source in done or move.source in visiting:
            return
        visiting.add(move.source)
        blocker = by_source.get(move.target)
        if blocker is not None and blocker is not move:
            visit(blocker)
        visiting.discard(move.source)
        done.add(move.source)
        ordered.append(move)

    for move in moves:
        visit(move)
    return ordered


def move_waves(moves: list[Move]) -> list[list[Move]]:
    """`order_moves`' order in groups that may run at once: a move joins a wave only when no move
    still to run reads its target and no other move of the wave writes it. A cycle (nothing can
    go) runs one move at a time, in order, as `order_moves` describes."""
    waves: list[list[Move]] = []
    remaining = moves
    while remaining:
        sources = {m.source for m in remaining}
        wave: list[Move] = []
        later: list[Move] = []
        targets: set[str] = set()
        for move in remaining:
            if move.target in sources or move.target in targets:
                later.append(move)
            else:
                wave.append(move)
                targets.add(move.target)
        if not wave:
            wave, later = later[:1], later[1:]
        waves.append(wave)
        remaining = later
    return waves
