"""Table transactions written by `storage/transactions.py` (not the SDK's multipart path): the rows
they leave are the rows the SDK's own transaction leaves, for hostile keys and every value type
the app stores, and a failed operation fails the whole transaction with the project's error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions import storage as app_storage
from functions.errors import Conflict, NotFound, StorageError

# Keys as the app may meet them (row keys are item ids and escaped paths): quotes, percent signs,
# spaces, non-ASCII, characters OData and URLs give meaning to (the service refuses / \ # ? in keys).
KEYS = ["plain", "it's", "''", "100%", "a b", "éü", "ключ", "😀", "a+b=c&d", "x(y)", "semi;colon", "~!@$*,"]
VALUES = {"text": "naïve 'quoted' \"double\"", "empty": "", "small": 7, "negative": -3, "big": 5 * 1024**3,
          "int64": app_storage.Int64(12), "flag": True, "off": False, "ratio": 0.25,
          "when": datetime(2026, 12, 3, 18, 0, tzinfo=UTC)}


def _rows(name: str) -> dict[str, dict]:
    rows = {}
    for entity in app_storage.table(name).query_entities("PartitionKey eq 'p'"):
        rows[entity["RowKey"]] = {key: (value.value, value.edm_type) if hasattr(value, "edm_type") else value
                                  for key, value in entity.items()}
    return rows


def test_a_transaction_leaves_the_rows_the_sdks_own_transaction_leaves(storage):
    ours, theirs = app_storage.Table(app_storage.Tables.DRIVE_ITEMS), app_storage.Table(app_storage.Tables.PENDING_ITEMS)
    for table in (ours, theirs):
        table.upsert({"PartitionKey": "p", "RowKey": "gone", "x": 1})
        table.upsert({"PartitionKey": "p", "RowKey": "kept", "x": 1, "y": "stays"})
    operations = [app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": key, **VALUES}) for key in KEYS]
    operations += [app_storage.Op("merge", {"PartitionKey": "p", "RowKey": "kept", "x": 2}),
                   app_storage.Op("delete", {"PartitionKey": "p", "RowKey": "gone"})]
    ours.batch(operations)
    sdk_operations = [(("upsert" if op.kind == "upsert" else "update"), app_storage.tables._encoded(op.entity), {"mode": "merge"})
                      if op.kind != "delete" else ("delete", op.entity) for op in operations]
    app_storage.table(theirs.name).submit_transaction(sdk_operations)

    written, expected = _rows(ours.name), _rows(theirs.name)
    assert set(written) == set(KEYS) | {"kept"}  # every key, none mangled, "gone" gone
    assert written == expected
    assert written["kept"]["y"] == "stays" and written["kept"]["x"] == 2  # merged, not replaced
    assert ours.get("p", "it's")["big"] == 5 * 1024**3


def test_a_failed_operation_fails_the_whole_transaction_with_the_projects_error(storage):
    table = app_storage.Table(app_storage.Tables.DRIVE_ITEMS)
    table.upsert({"PartitionKey": "p", "RowKey": "there", "x": 1})
    with pytest.raises(NotFound):  # a merge needs the row
        table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": "new", "x": 1}),
                     app_storage.Op("merge", {"PartitionKey": "p", "RowKey": "missing", "x": 1}),
                     app_storage.Op("merge", {"PartitionKey": "p", "RowKey": "there", "x": 2})])
    assert table.get("p", "new") is None and table.get("p", "there")["x"] == 1  # all or nothing
    with pytest.raises(StorageError) as refused:  # a key the service refuses
        table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": "a"}),
                     app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": "no/slash"})])
    assert not isinstance(refused.value, NotFound | Conflict) and refused.value.status == 400
    with pytest.raises(ValueError):  # one partition a transaction: refused before anything is sent
        table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": "a"}),
                     app_storage.Op("upsert", {"PartitionKey": "q", "RowKey": "b"})])
    assert table.get("p", "a") is None and table.get("q", "b") is None


def test_rows_already_gone_are_deleted_one_by_one(storage):
    table = app_storage.Table(app_storage.Tables.DRIVE_ITEMS)
    table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": key}) for key in ("a", "b", "c")])
    assert table.delete_rows("p", ["a", "missing", "c"]) == 3  # the transaction fails, the fallback doesn't
    assert [row["RowKey"] for row in table.query("PartitionKey eq 'p'")] == ["b"]
