"""Table rows, the few ways the core reads and writes them, and the compare-and-swap loop.

Rows come back as `Row` (a dict of plain Python values, with the row's `etag`); entities go in as
plain dicts with `PartitionKey` and `RowKey`. Integers past 32 bits are stored as Int64 without
the caller asking (the service would refuse them as Int32); `Int64(n)` asks for Int64 always.
Failures are the project's: `NotFound`, `Conflict`, `StorageUnavailable`, `StorageError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast

from functions.errors import Conflict, NotFound
from functions.storage import clients, transactions
from functions.storage.faults import translated

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableEntity

T = TypeVar("T")
P_co = TypeVar("P_co", covariant=True)
Entity = Mapping[str, Any]
BATCH = 100  # a table transaction: at most 100 entities, all of one partition


class Pages(Protocol[P_co]):
    """What the SDKs' `by_page()` answers (typed there as a bare iterator of pages)."""

    continuation_token: str | None

    def __next__(self) -> Iterator[P_co]: ...

    def __iter__(self) -> Iterator[Iterator[P_co]]: ...


class Int64(int):
    """An integer stored as Int64 whatever its size (a column where some values pass 2**31)."""


class Row(dict[str, Any]):
    """One table row: its properties as plain values, and the version it was read at."""

    __slots__ = ("etag", "timestamp")

    def __init__(self, values: Mapping[str, Any], etag: str = "", timestamp: datetime | None = None) -> None:
        super().__init__(values)
        self.etag = etag
        self.timestamp = timestamp


@dataclass(frozen=True)
class Op:
    """One step of a batch: `upsert` (insert or merge), `merge` (the row must exist), `delete`."""

    kind: Literal["upsert", "merge", "delete"]
    entity: Entity


def _row(entity: TableEntity) -> Row:
    from azure.data.tables import EntityProperty

    row = Row(entity, entity.metadata.get("etag") or "", entity.metadata.get("timestamp"))
    for name, value in row.items():
        if type(value) is EntityProperty:  # Int64 (and other typed values) come back wrapped
            row[name] = value.value
    return row


def _encoded(entity: Entity) -> dict[str, Any]:
    from azure.data.tables import EdmType, EntityProperty

    encoded = dict(entity)
    for name, value in encoded.items():
        kind = type(value)
        if kind is Int64 or (kind is int and not -(2**31) <= value < 2**31):
            encoded[name] = EntityProperty(int(value), EdmType.INT64)
        elif kind is not str and isinstance(value, str):  # StrEnum and friends: their text
            encoded[name] = str(value)
    return encoded


def _etag_of(metadata: Mapping[str, Any]) -> str:
    return str(metadata.get("etag") or "")


class Table:
    """One table. Cheap to make: the client behind it is built once and shared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _client(self) -> TableClient:
        return clients.table(self.name)

    def get(self, partition: str, row: str, *, quick: bool = False) -> Row | None:
        """The row, or None. `quick`: retry once, briefly (a caller that must answer fast)."""
        options: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2} if quick else {}
        try:
            with translated(f"read of {self.name}"):
                return _row(self._client().get_entity(partition, row, **options))
        except NotFound:
            return None

    def insert(self, entity: Entity) -> str:
        """Create a row that must not exist yet (`Conflict` if it does); its etag."""
        with translated(f"insert into {self.name}"):
            return _etag_of(self._client().create_entity(_encoded(entity)))

    def merge(self, entity: Entity, *, etag: str | None = None) -> str:
        """Merge the named properties into an existing row (`NotFound` if there is none); with
        `etag`, only if the row is still that version (`Conflict` if it changed or went). The new etag."""
        return self._update(entity, "merge", etag)

    def replace(self, entity: Entity, *, etag: str) -> str:
        """Replace the whole row if it is still version `etag` (`Conflict` otherwise). The new etag."""
        return self._update(entity, "replace", etag)

    def _update(self, entity: Entity, mode: str, etag: str | None) -> str:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        conditions: dict[str, Any] = {} if etag is None else {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            with translated(f"update of {self.name}"):
                written = self._client().update_entity(_encoded(entity), mode=UpdateMode(mode), **conditions)
        except NotFound as gone:
            if etag is not None:
                raise Conflict(str(gone), gone.status) from gone
            raise
        return _etag_of(written)

    def upsert(self, entity: Entity, *, replace: bool = False) -> str:
        """Insert the row or merge into it (`replace`: insert or replace it whole). The new etag."""
        from azure.data.tables import UpdateMode

        with translated(f"upsert into {self.name}"):
            written = self._client().upsert_entity(_encoded(entity), mode=UpdateMode.REPLACE if replace else UpdateMode.MERGE)
        return _etag_of(written)

    def delete(self, partition: str, row: str) -> None:
        """Delete the row; one already gone is fine."""
        try:
            with translated(f"delete from {self.name}"):
                self._client().delete_entity(partition, row)
        except NotFound:
            return

    def query(self, where: str, parameters: Mapping[str, Any] | None = None, *, select: list[str] | None = None,
              page_size: int | None = None, quick: bool = False) -> Iterator[Row]:
        """Rows matching an OData filter with `@name` parameters, page after page. `quick`: each
        page retried once, briefly (a caller that must answer fast)."""
        options: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2} if quick else {}
        with translated(f"query of {self.name}"):
            for entity in self._client().query_entities(where, parameters=dict(parameters or {}), select=select,
                                                        results_per_page=page_size, **options):
                yield _row(entity)

    def first_page(self, where: str, parameters: Mapping[str, Any], *, page_size: int) -> tuple[list[Row], bool]:
        """One page of a query, and whether the service has more after it (it may stop a page
        short of `page_size` and still have more)."""
        with translated(f"query of {self.name}"):
            pages = cast("Pages[TableEntity]", self._client().query_entities(
                where, parameters=dict(parameters), results_per_page=page_size).by_page())
            page = [_row(entity) for entity in next(pages, [])]
            return page, pages.continuation_token is not None

    def batch(self, operations: Iterable[Op]) -> None:
        """Run the operations in transactions of at most 100 (all of one partition each)."""
        chunk: list[tuple[transactions.Kind, Entity]] = []

        what = f"batch on {self.name}"

        def submit() -> None:
            with translated(what):  # a refused transaction comes out as the project's error already
                transactions.submit(self._client(), chunk, what)
            chunk.clear()

        for op in operations:
            if op.kind == "delete":
                chunk.append(("delete", {"PartitionKey": op.entity["PartitionKey"], "RowKey": op.entity["RowKey"]}))
            else:
                chunk.append(("upsert" if op.kind == "upsert" else "update", _encoded(op.entity)))
            if len(chunk) == BATCH:
                submit()
        if chunk:
            submit()

    def delete_rows(self, partition: str, rows: Iterable[str]) -> int:
        """Delete these rows of one partition, 100 per transaction; rows already gone are fine.
        Returns how many were asked for."""
        keys = list(dict.fromkeys(rows))
        for start in range(0, len(keys), BATCH):
            chunk = keys[start:start + BATCH]
            try:
                self.batch(Op("delete", {"PartitionKey": partition, "RowKey": key}) for key in chunk)
            except (NotFound, Conflict):
                # One row went meanwhile and the whole transaction failed: go one by one.
                for key in chunk:
                    self.delete(partition, key)
        return len(keys)

    def wipe_partition(self, partition: str) -> int:
        """Delete every row of a partition; how many there were."""
        keys = [row["RowKey"] for row in self.query("PartitionKey eq @pk", {"pk": partition}, select=["RowKey"])]
        return self.delete_rows(partition, keys)


# ----- compare and swap ------------------------------------------------------------------------


@dataclass(frozen=True)
class Write(Generic[T]):
    """Merge `values` into the row as read (insert it when there was none), then answer `result`."""

    values: Mapping[str, Any]
    result: T


@dataclass(frozen=True)
class Keep(Generic[T]):
    """Write nothing; answer `result`."""

    result: T


@dataclass(frozen=True)
class Swapped(Generic[T]):
    result: T
    etag: str | None  # the row's new version; None when nothing was written


def swap(table: Table, partition: str, row: str, decide: Callable[[Row | None], Write[T] | Keep[T]], *,
         attempts: int) -> Swapped[T]:
    """Read the row, let `decide` choose, write only if the row is still the version read; on a
    conflict read again and decide again, up to `attempts` times (then `Conflict`). `decide` may
    raise to stop."""
    for _ in range(attempts):
        current = table.get(partition, row)
        decision = decide(current)
        if isinstance(decision, Keep):
            return Swapped(decision.result, None)
        entity = {**decision.values, "PartitionKey": partition, "RowKey": row}
        try:
            etag = table.merge(entity, etag=current.etag) if current is not None else table.insert(entity)
        except Conflict:
            continue  # written meanwhile: look again
        return Swapped(decision.result, etag)
    raise Conflict(f"{table.name} row kept changing through {attempts} attempts")
