"""The benchmarks' Azurite (RowKey-indexed lookups, devtools/azurite_rowkey_lookup.js) answers
exactly as Azurite as shipped does: same rows, same misses, same conflicts."""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from devtools.azurite import ROW_KEY_LOOKUP, Azurite


def table_story(connection_string: str) -> list:
    """Reads, writes, batches and conditional updates over two partitions; what each returned."""
    table = TableServiceClient.from_connection_string(connection_string).create_table_if_not_exists("lookups")
    seen: list = []
    for pk in ("a", "b"):
        table.submit_transaction([("upsert", {"PartitionKey": pk, "RowKey": f"r{n:03d}", "n": n, "pk": pk}) for n in range(50)])
    table.submit_transaction([("upsert", {"PartitionKey": "a", "RowKey": f"r{n:03d}", "m": n * 2}, {"mode": "merge"})
                              for n in range(0, 50, 5)])
    for pk, rk in (("a", "r007"), ("b", "r007"), ("a", "r010"), ("a", "zzz"), ("c", "r001")):
        try:
            seen.append(dict(table.get_entity(pk, rk)))
        except ResourceNotFoundError:
            seen.append(("missing", pk, rk))
    entity = table.get_entity("b", "r020")
    table.update_entity({"PartitionKey": "b", "RowKey": "r020", "x": 1}, mode=UpdateMode.MERGE,
                        etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    try:
        table.update_entity({"PartitionKey": "b", "RowKey": "r020", "x": 2}, mode=UpdateMode.MERGE,
                            etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        seen.append("stale etag refused")
    table.delete_entity("a", "r003")
    seen.append(sorted(e["RowKey"] for e in table.query_entities("PartitionKey eq 'a' and RowKey le 'r005'")))
    seen.append(dict(table.get_entity("b", "r020")))
    return [{k: v for k, v in item.items() if k != "Timestamp"} if isinstance(item, dict) else item for item in seen]


def test_indexed_lookups_change_nothing_but_speed(storage, tmp_path):
    with Azurite(location=tmp_path, in_memory=True, indexed_lookups=True) as indexed:
        environ = open(f"/proc/{indexed.process.pid}/environ", "rb").read().decode(errors="replace")
        assert f"--require {ROW_KEY_LOOKUP}" in environ  # node really loads the lookup
        assert table_story(indexed.connection_string) == table_story(storage.connection_string)
