"""The planner with a selection (plan.Scope): pure, no I/O. Only the selected items and what is
under them have a place in the mirror; the folders above them keep a path but never content."""

from __future__ import annotations

from functions.microsoft.driveitem import Kind
from functions.sync.plan import ItemState, Resolver, Scope, plan_blobs, plan_files


def tree() -> dict[str, ItemState]:
    rows = [
        ItemState("root", Kind.ROOT),
        ItemState("work", Kind.FOLDER, "Work", "root", m_name="Work", m_parent_id="root"),
        ItemState("project", Kind.FOLDER, "Project", "work", m_name="Project", m_parent_id="work"),
        ItemState("deep", Kind.FOLDER, "Deep", "project", m_name="Deep", m_parent_id="project"),
        ItemState("a", Kind.FILE, "a.txt", "project", size=1, quickxorhash="h1"),
        ItemState("b", Kind.FILE, "b.txt", "deep", size=1, quickxorhash="h2"),
        ItemState("beside", Kind.FILE, "beside.txt", "work", size=1, quickxorhash="h3"),
        ItemState("single", Kind.FILE, "single.txt", "work", size=1, quickxorhash="h4"),
    ]
    return {row.id: row for row in rows}


SCOPE = Scope(frozenset({"project", "single"}), frozenset({"work", "root"}))


def test_selected_folders_and_files_keep_their_drive_paths():
    resolver = Resolver(tree(), scope=SCOPE)
    assert resolver.desired("a").path == "Work/Project/a.txt"
    assert resolver.desired("b").path == "Work/Project/Deep/b.txt"
    assert resolver.desired("single").path == "Work/single.txt"
    assert resolver.desired("work").path == "Work"  # an ancestor: a path for the items below it


def test_a_file_beside_the_selection_is_unselected_and_dead():
    resolved = Resolver(tree(), scope=SCOPE).desired("beside")
    assert resolved.path is None and resolved.reason == "unselected" and resolved.dead


def test_a_mirrored_file_that_left_the_selection_is_deleted_and_forgotten():
    rows = tree()
    rows["a"] = ItemState("a", Kind.FILE, "a.txt", "work", size=1, quickxorhash="h1",
                          m_name="a.txt", m_parent_id="project", m_content="h:h1:1")
    plan = plan_files([rows["a"]], Resolver(rows, scope=SCOPE))
    assert [d.path for d in plan.deletes] == ["Work/Project/a.txt"]
    assert plan.records[0].forget


def test_blobs_under_a_folder_moved_out_of_the_selection_are_deleted():
    rows = tree()
    rows["deep"] = ItemState("deep", Kind.FOLDER, "Deep", "work", m_name="Deep", m_parent_id="project")  # moved out
    moves, deletes = plan_blobs([("Work/Project/Deep/b.txt", "b")], Resolver(rows, scope=SCOPE))
    assert moves == [] and [d.path for d in deletes] == ["Work/Project/Deep/b.txt"]


def test_without_a_scope_everything_has_its_place():
    resolver = Resolver(tree())
    assert resolver.desired("beside").path == "Work/beside.txt"
