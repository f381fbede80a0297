"""Scenario 15 (sync-scenarios.md: 100,000+ items, one folder with 100,000 children) at a size CI
can afford: one folder with 600 children mirrored, renamed and deleted with a time budget that
runs out in the middle. The 100,000-item figure is `scripts/bench --only delta` (README)."""

from __future__ import annotations

import pytest

from functions.microsoft.driveitem import DriveItem
from functions.microsoft.graph import GraphClient
from functions.sync import engine, itemrows
from functions.sync.mirror import Mirror, metadata
from functions.sync.plan import Copy
from functions.tokens import vault
from tests.fixtures.mirror import assert_mirror_equals_drive
from tests.sync.conftest import content_requests, sync_in_budgets

CHILDREN = 600


def test_a_folder_with_many_children_is_mirrored_renamed_and_deleted_across_budgets(connected_drive, emulator, drive,
                                                                                    sync_until_done, monkeypatch):
    connection_id = connected_drive.connection_id
    drive.seed(n_files=CHILDREN, n_folders=1, seed=15)
    (folder,) = [item for item in drive.walk() if item.kind == "folder"]
    folder_path = drive.path_of(folder)
    assert sync_until_done().outcome == "done"
    assert_mirror_equals_drive(connection_id, drive)
    downloads = len(content_requests(emulator))
    assert downloads == CHILDREN  # each child once: nothing was probed into a second download

    monkeypatch.setattr(engine, "BUDGET_MARGIN_SECONDS", 0.0)
    drive.rename(folder_path, "renamed")
    outcomes = sync_in_budgets(connection_id, 0.5, emulator)
    assert outcomes[0] == "continued" and outcomes[-1] == "done"  # the move outlasted one budget, then resumed
    assert_mirror_equals_drive(connection_id, drive)
    assert len(content_requests(emulator)) == downloads  # moved server-side, never downloaded again

    drive.delete("/renamed")
    outcomes = sync_in_budgets(connection_id, 0.5, emulator)
    assert outcomes[-1] == "done"
    assert_mirror_equals_drive(connection_id, drive)
    assert list(Mirror(connection_id).list("")) == []


def test_rows_read_by_range_are_the_rows_point_reads_find(storage):
    ids = [f"ITEM!{n:05d}" for n in range(0, 1200, 2)]  # every other key exists
    for connection_id in ("conn-a", "conn-b"):  # a neighbouring partition must not leak in
        items = [DriveItem.from_graph({"id": i, "name": f"{connection_id}-{i}.txt", "size": 3, "parentReference": {"id": "R"},
                                       "file": {"hashes": {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}) for i in ids]
        itemrows.record_delta_page(connection_id, items, epoch=None)
    dense = [f"ITEM!{n:05d}" for n in range(100, 400)]  # half of them missing, inside the range
    sparse = [f"ITEM!{n:05d}" for n in range(0, 1200, 40)] + ["ITEM!99999"]  # a page can't cover the range

    for wanted in (dense, sparse):
        cache = itemrows.RowCache("conn-a")
        cache.load(wanted)
        expected = {i: itemrows._read("conn-a", i) for i in wanted}
        assert {i: cache.get(i) for i in wanted} == expected
        assert all(cache.get(i).name.startswith("conn-a-") for i in wanted if cache.get(i))
        assert sum(1 for row in expected.values() if row) == len([i for i in wanted if i in ids])


@pytest.mark.parametrize("listed, downloads", [(None, 0), ("with the path", 0), ("without the path", 1)])
def test_a_copy_trusts_a_listing_only_to_skip_a_probe(connected_drive, emulator, drive, sync_until_done, listed, downloads):
    connection_id = connected_drive.connection_id
    drive.write_file("/Docs/a.txt", b"hello mirror")
    sync_until_done()
    (row,) = [r for r in itemrows.all_rows(connection_id) if r.name == "a.txt"]
    plan = Copy(row.id, "Docs/a.txt", "Docs/a.txt", row.size, row.quickxorhash)
    snapshot = {None: None, "with the path": frozenset({"Docs/a.txt"}), "without the path": frozenset()}[listed]
    before = len(content_requests(emulator))

    graph = GraphClient(connection_id, vault.token_source(connection_id))
    result = Mirror(connection_id).copy(graph, plan, metadata(row.id, row.etag, row.quickxorhash, row.ctag), snapshot)

    # Not in the listing: downloaded again (the blob "appeared since"), and the mirror is still exact.
    assert result.outcome == ("copied" if downloads else "unchanged")
    assert len(content_requests(emulator)) - before == downloads
    assert_mirror_equals_drive(connection_id, drive)
