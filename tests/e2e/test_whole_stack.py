"""End to end, over HTTP only, with the stack the README starts: connect a OneDrive through the
emulator's consent page, change the drive every way a person can, watch the mirror follow, then
disconnect."""

from __future__ import annotations

import base64

from tests.e2e.conftest import DEMO_USER, RunningStack
from tests.fixtures.connected import Browser
from tests.fixtures.waiting import eventually


def connect(stack: RunningStack) -> str:
    """A person's browser: /api/connect → Microsoft (the emulator) → consent → callback."""
    with Browser() as browser:
        consent = browser.open(stack.connect_url)
        assert consent.status_code == 200 and "consent" in consent.text.lower(), consent.text[:300]
        final = browser.answer_consent(consent, accept=True)
        assert final.status_code == 200, final.text[:500]
        assert "OneDrive connected" in final.text
    with stack.api() as api:
        [connection] = [c for c in api.get("/api/connections").json()["connections"] if c["account"]["email"] == DEMO_USER]
    return connection["id"]


def mirror_of(stack: RunningStack, connection_id: str) -> dict[str, tuple[int, str]]:
    """The mirror as the product API lists it: path -> (size, quickXorHash)."""
    files: dict[str, tuple[int, str]] = {}
    cursor = None
    with stack.api() as api:
        while True:
            page = api.get(f"/api/connections/{connection_id}/files", params={"cursor": cursor} if cursor else {}).json()
            files.update({f["path"]: (f["size"], f["quickXorHash"]) for f in page["files"]})
            cursor = page.get("nextCursor")
            if not cursor:
                return files


def drive_of(stack: RunningStack) -> dict[str, tuple[int, str]]:
    return {path: tuple(entry) for path, entry in stack.control("GET", "/drive/snapshot").items()}


def wait_until_mirrored(stack: RunningStack, connection_id: str, what: str) -> dict[str, tuple[int, str]]:
    def equal():
        drive = drive_of(stack)
        return drive if mirror_of(stack, connection_id) == drive else None

    try:
        return eventually(equal, timeout=120, interval=0.3, message=f"mirror equals drive after {what}")
    except AssertionError:
        raise AssertionError(f"after {what}:\n drive  {sorted(drive_of(stack).items())}\n mirror "
                             f"{sorted(mirror_of(stack, connection_id).items())}\n--- stack output ---\n{stack.text[-6000:]}") from None


def write(stack: RunningStack, path: str, text: str) -> None:
    stack.control("POST", "/drive/files", {"path": path, "content_base64": base64.b64encode(text.encode()).decode()})


def test_connect_change_everything_watch_the_mirror_follow_then_disconnect(stack: RunningStack):
    connection_id = connect(stack)
    initial = wait_until_mirrored(stack, connection_id, "the initial sync")
    assert "Documents/Welcome.txt" in initial  # the demo drive

    # Add, change, rename, move and delete files and folders.
    write(stack, "Projects/plan.txt", "v1")
    write(stack, "Projects/Drafts/idea #1 + ü.md", "an idea")
    stack.control("POST", "/drive/folders", {"path": "Empty/Nested"})
    wait_until_mirrored(stack, connection_id, "adding files and folders")

    write(stack, "Projects/plan.txt", "version two, longer")
    stack.control("POST", "/drive/rename", {"path": "Documents/Welcome.txt", "name": "Hello.txt"})
    stack.control("POST", "/drive/move", {"from": "Documents/Notes/ideas.md", "to": "Projects/ideas.md"})
    wait_until_mirrored(stack, connection_id, "changing, renaming and moving files")

    stack.control("POST", "/drive/rename", {"path": "Projects", "name": "Work"})
    stack.control("POST", "/drive/move", {"from": "Work/Drafts", "to": "Documents/Drafts"})
    mirrored = wait_until_mirrored(stack, connection_id, "renaming and moving folders")
    assert "Work/plan.txt" in mirrored and "Documents/Drafts/idea #1 + ü.md" in mirrored

    stack.control("POST", "/drive/delete", {"path": "Work/ideas.md"})
    stack.control("POST", "/drive/delete", {"path": "Documents"})
    mirrored = wait_until_mirrored(stack, connection_id, "deleting a file and a folder")
    assert not any(path.startswith("Documents/") for path in mirrored)

    with stack.api() as api:
        download = api.get(f"/api/connections/{connection_id}/files/Work/plan.txt")
        assert download.content == b"version two, longer"
        status = api.get("/api/status")
        assert status.status_code == 200, stack.text[-6000:]
        assert "Ada Lovelace" in status.text and connection_id in status.text

        assert api.delete(f"/api/connections/{connection_id}").status_code == 204
        after = api.get(f"/api/connections/{connection_id}")
        assert after.status_code == 404 or after.json()["state"] == "disconnected"
