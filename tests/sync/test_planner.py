"""The delta engine's decisions as plain data (no I/O): paths, plans, wire quirks."""

from __future__ import annotations

import pytest

from functions.microsoft.driveitem import ZERO_HASH, DriveItem, Kind
from functions.sync.plan import (
    Delete,
    ItemState,
    Move,
    Resolver,
    blob_name,
    move_waves,
    order_moves,
    path_problem,
    plan_blobs,
    plan_files,
    plan_folder,
    segment_problem,
)

ROOT = ItemState("R", Kind.ROOT)


def rows(*states: ItemState) -> dict[str, ItemState]:
    return {s.id: s for s in (ROOT, *states)}


def folder(item_id, name, parent="R", *, mirrored=True, **kw):
    return ItemState(item_id, Kind.FOLDER, name, parent, m_name=name if mirrored else None,
                     m_parent_id=parent if mirrored else None, **kw)


def file(item_id, name, parent="R", *, size=10, qxh="h1", mirrored_as=None, **kw):
    placed = mirrored_as or {}
    return ItemState(item_id, Kind.FILE, name, parent, size=size, quickxorhash=qxh,
                     m_name=placed.get("name"), m_parent_id=placed.get("parent"), m_content=placed.get("content", ""), **kw)


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "a\\b", "tab\there", "nul\x00", "del\x7f", "c1\x85", "\ud800x"])
def test_dangerous_segments_are_refused(name):
    assert segment_problem(name)


@pytest.mark.parametrize("name", ["a b", "100%", "#tag", "a+b", "😀", "日本語", "...dots", ".hidden", "x" * 255])
def test_ordinary_segments_pass(name):
    assert segment_problem(name) is None


def test_blob_names_stay_under_the_connection_and_within_limits():
    assert blob_name("c1", "a/b.txt") == "c1/a/b.txt"
    for bad in ("../x", "a//b", "a/./b", "ends.", "/lead", "x" * 1100):
        with pytest.raises(ValueError):
            blob_name("c1", bad)
    assert path_problem("/".join(["d"] * 300))


def test_desired_paths_follow_parents_not_the_feed_order():
    state = rows(folder("A", "A"), folder("B", "B", "A"), file("f", "f.txt", "B"))
    assert Resolver(state).desired("f").path == "A/B/f.txt"


def test_items_under_a_deleted_or_unknown_folder_are_dead_and_under_a_package_skipped():
    state = rows(folder("A", "A", deleted=True), file("f", "f.txt", "A"), file("g", "g", "nowhere"),
                 ItemState("P", Kind.PACKAGE, "Notebook", "R"), file("h", "h", "P"))
    resolver = Resolver(state)
    assert resolver.desired("f").dead and resolver.desired("g").dead
    assert resolver.desired("h").path is None and not resolver.desired("h").dead


def test_a_parent_cycle_from_a_broken_server_resolves_to_nothing():
    state = rows(folder("A", "A", "B"), folder("B", "B", "A"), file("f", "f", "A"))
    assert Resolver(state).desired("f").path is None


def test_folder_rename_plans_moves_of_each_blob_to_its_own_items_place():
    state = rows(ItemState("A", Kind.FOLDER, "New", "R", m_name="Old", m_parent_id="R"),
                 file("f", "f.txt", "A", mirrored_as={"name": "f.txt", "parent": "A"}),
                 file("moved-out", "m.txt", "R", mirrored_as={"name": "m.txt", "parent": "A"}),
                 file("dead", "d.txt", "A", deleted=True))
    resolver = Resolver(state)
    change = plan_folder(state["A"], resolver)
    assert (change.old_prefix, change.new_path) == ("Old", "New")
    moves, deletes = plan_blobs([("Old/f.txt", "f"), ("Old/m.txt", "moved-out"), ("Old/d.txt", "dead"),
                                 ("Old/stray.txt", "unknown")], resolver)
    assert set(moves) == {Move("f", "Old/f.txt", "New/f.txt"), Move("moved-out", "Old/m.txt", "m.txt")}
    assert deletes == [Delete("dead", "Old/d.txt")]  # the unknown blob is left to the sweep


def test_file_plans_unchanged_moved_copied_empty_and_deleted():
    content = file("x", "x", size=10, qxh="h1").content_key
    state = rows(
        file("same", "same.txt", mirrored_as={"name": "same.txt", "parent": "R", "content": content}, size=10, qxh="h1"),
        file("renamed", "new.txt", mirrored_as={"name": "old.txt", "parent": "R", "content": content}, size=10, qxh="h1"),
        file("edited", "e.txt", mirrored_as={"name": "e.txt", "parent": "R", "content": "h:old:3"}),
        file("new", "n.txt"),
        file("empty", "z.txt", size=0, qxh=None),
        file("gone", "g.txt", mirrored_as={"name": "g.txt", "parent": "R", "content": content}, deleted=True),
    )
    plan = plan_files([s for s in state.values() if s.kind is Kind.FILE], Resolver(state))
    assert plan.moves == [Move("renamed", "old.txt", "new.txt")]
    assert {c.item_id: (c.path, c.old_path, c.empty) for c in plan.copies} == {
        "edited": ("e.txt", "e.txt", False), "new": ("n.txt", None, False), "empty": ("z.txt", None, True)}
    assert plan.deletes == [Delete("gone", "g.txt")]
    assert {r.item_id for r in plan.records} == {"same", "gone"}
    assert next(r for r in plan.records if r.item_id == "gone").forget


def test_moves_into_a_path_another_move_vacates_wait_for_it():
    chain = [Move("a", "1", "2"), Move("b", "2", "3"), Move("c", "3", "4")]
    assert [m.item_id for m in order_moves(chain)] == ["c", "b", "a"]
    swap = order_moves([Move("a", "1", "2"), Move("b", "2", "1")])
    assert len(swap) == 2  # a cycle keeps both: one source is overwritten and re-copied


def test_moves_run_in_waves_that_never_write_a_path_still_to_be_read():
    independent = [Move(str(n), f"old/{n}", f"new/{n}") for n in range(5)]
    assert move_waves(independent) == [independent]  # a renamed folder: all at once
    chain = order_moves([Move("a", "1", "2"), Move("b", "2", "3"), Move("c", "3", "4")])
    assert [[m.item_id for m in wave] for wave in move_waves(chain)] == [["c"], ["b"], ["a"]]
    same_target = [Move("a", "1", "9"), Move("b", "2", "9")]
    assert move_waves(same_target) == [[same_target[0]], [same_target[1]]]  # never two writers at once
    swap = order_moves([Move("a", "1", "2"), Move("b", "2", "1")])
    assert move_waves(swap) == [[swap[0]], [swap[1]]]  # a cycle: one at a time, in plan order


def test_tombstones_keep_only_their_id():
    item = DriveItem.from_graph({"id": "X!1", "deleted": {"state": "deleted"}, "parentReference": {"id": "ROOT", "driveId": "ABC"},
                                 "file": {"hashes": {"quickXorHash": ZERO_HASH}}})
    assert item.deleted and item.name is None and item.parent_id is None and item.size is None and item.quickxorhash is None


def test_wire_quirks_are_normalised():
    empty = DriveItem.from_graph({"id": "1", "name": "e", "size": 0, "file": {"hashes": {}}, "parentReference": {"id": "R", "driveId": "0123456789ABCDE"}})
    assert empty.quickxorhash == ZERO_HASH and empty.size == 0 and empty.drive_id == "00123456789abcde"
    zero = DriveItem.from_graph({"id": "2", "name": "z", "size": 5, "file": {"hashes": {"quickXorHash": ZERO_HASH}}, "parentReference": {"id": "R"}})
    assert zero.quickxorhash is None
    assert DriveItem.from_graph({"id": "3", "name": "n", "package": {"type": "oneNote"}}).kind is Kind.PACKAGE
    assert DriveItem.from_graph({"id": "4", "name": "s", "remoteItem": {"id": "x"}, "folder": {}}).kind is Kind.REMOTE
    assert DriveItem.from_graph({"id": "5", "name": "m", "file": {}, "malware": {}}).malware
    assert DriveItem.from_graph({"id": "6", "root": {}, "folder": {}, "name": "root"}).kind is Kind.ROOT
