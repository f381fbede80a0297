"""rclone 1.60 reads a drive that has seen folders, renames and deletes, through the emulator.

Each check is what rclone does against the real service; a failure here is the emulator's."""

from __future__ import annotations

import base64
import json
import ssl
import time

import httpx
import pytest

from devtools.emulator.content import GeneratedContent

BIG = 6_000_000  # several download chunks; generated, so it costs no memory


@pytest.fixture(scope="module")
def drive(world):
    """The drive as rclone will find it: folders, literal and generated files, renames, deletes,
    a OneNote notebook and a folder shared by another account."""
    drive = world.user.drive
    drive.write_file("Documents/report.txt", b"quarterly figures\n")
    drive.write_file("Documents/Drafts/old.txt", b"to be deleted")
    drive.write_file("Documents/Drafts/keep.md", b"# keep\n")
    drive.write_file("Pictures/2024/beach.jpg", size=BIG, seed=7)
    drive.write_file("Pictures/2024/empty.bin", b"")
    drive.write_file("Music/été à Paris.txt", b"accents\n")
    drive.seed(n_files=40, n_folders=4, seed=3, folder="Archive")
    drive.rename("Documents/Drafts", "Working")
    drive.move("Music", "Pictures/Music")
    drive.delete("Documents/Working/old.txt")
    drive.write_file("Documents/report.txt", b"quarterly figures, revised\n")
    drive.delete(next(drive.path_of(i) for i in drive.walk() if i.name == "seed-3-folder-00002"))
    drive.add_onenote("Notebooks/Ada")
    drive.add_remote_item("Shared with me")
    return drive


def expected_files(world, drive) -> dict[str, tuple[int, str]]:
    """path -> (size, quickXorHash as rclone writes it: hex) for every file rclone should list,
    the shared folder's files included (they live in the sharer's drive)."""
    files = dict(drive.snapshot())
    shortcut = drive.find("Shared with me")
    sharer = world.emulator.drive_by_id(shortcut.remote["drive_id"])
    folder = sharer.get(shortcut.remote["id"])
    base = sharer.path_of(folder)
    for path, entry in sharer.snapshot().items():
        if path.startswith(base + "/"):
            files["Shared with me/" + path[len(base) + 1:]] = entry
    # Zero-byte files are listed with "hashes": {} (microsoft.md §3): rclone shows no hash for them.
    return {path: (size, base64.b64decode(digest).hex() if size else "") for path, (size, digest) in files.items()}


def listed_files(world) -> dict[str, tuple[int, str]]:
    entries = json.loads(world.rclone.run("lsjson", "-R", "--hash", "--files-only", "od:").stdout)
    return {e["Path"]: (e["Size"], e.get("Hashes", {}).get("quickxor", "")) for e in entries}


@pytest.fixture(autouse=True)
def clean_faults(world):
    world.emulator.faults.clear()
    world.emulator.request_log.clear()
    yield
    world.emulator.faults.clear()


def test_lsjson_lists_every_file_with_its_size_and_quickxorhash(world, drive):
    assert listed_files(world) == expected_files(world, drive)


def test_lsjson_lists_folders_including_renamed_and_moved_ones(world, drive):
    entries = json.loads(world.rclone.run("lsjson", "-R", "--dirs-only", "od:").stdout)
    folders = {e["Path"] for e in entries}
    assert {"Documents/Working", "Pictures/Music", "Shared with me"} <= folders
    assert "Documents/Drafts" not in folders and "Music" not in folders
    assert not any(path.endswith("seed-3-folder-00002") for path in folders)


def test_check_download_matches_a_local_copy(world, drive, tmp_path):
    copy = tmp_path / "copy"
    for path in drive.snapshot():
        target = copy / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(drive.read(path))
    # The shared folder and the notebook are not in the local copy: check only what is.
    world.rclone.run("check", "--download", "--one-way", str(copy), "od:", timeout=300)
    (copy / "Documents" / "report.txt").write_bytes(b"tampered")
    failed = world.rclone.run("check", "--download", "--one-way", str(copy), "od:", timeout=300, check=False)
    assert failed.returncode != 0 and "report.txt" in failed.stderr


def test_a_ranged_read(world, drive):
    expected = GeneratedContent(size=BIG, seed=7).read_range(1_000_000, 1_000_500)
    raw = world.rclone.run_bytes("cat", "--offset", "1000000", "--count", "500", "od:Pictures/2024/beach.jpg")
    assert raw == expected
    ranges = [r for r in world.emulator.requests if r["host"] == "download"]
    assert ranges and all(r["status"] == 206 for r in ranges)


def test_429_with_retry_after_is_waited_out(world, drive):
    fault = world.emulator.faults.inject(method="GET", path=r"/children$", status=429, retry_after="2", times=1)
    started = time.monotonic()
    assert listed_files(world) == expected_files(world, drive)
    assert fault.fired == 1 and time.monotonic() - started >= 2


def test_a_download_cut_by_a_reset_resumes_with_a_range(world, drive, tmp_path):
    fault = world.emulator.faults.inject(host="download", path="^/download/", after_bytes=1_500_000, times=1)
    target = tmp_path / "beach.jpg"
    world.rclone.run("copyto", "od:Pictures/2024/beach.jpg", str(target))
    assert fault.fired == 1
    assert target.read_bytes() == GeneratedContent(size=BIG, seed=7).read()
    downloads = [r for r in world.emulator.requests if r["host"] == "download"]
    assert downloads[0]["fault"] == "reset after 1500000 bytes"
    assert downloads[-1]["status"] == 206  # reopened from where the bytes stopped


def test_an_expired_token_is_refreshed(world, drive):
    before = world.rclone.token()
    world.emulator.expire_access_tokens()
    world.rclone.expire_stored_token()
    assert listed_files(world) == expected_files(world, drive)
    after = world.rclone.token()
    assert after["access_token"] != before["access_token"] and after["refresh_token"] != before["refresh_token"]
    refreshes = [r for r in world.emulator.requests if r["path"].endswith("/oauth2/v2.0/token")]
    assert refreshes and refreshes[0]["status"] == 200


def test_the_proxy_sends_only_microsofts_hosts_to_the_emulator(world):
    proxy = f"http://127.0.0.1:{world.rclone.proxy.port}"
    trust = ssl.create_default_context(cafile=str(world.rclone.proxy.ca_cert))
    with httpx.Client(proxy=proxy, verify=trust, timeout=30) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get("https://example.com/")  # CONNECT refused: never fetched
        assert client.get("https://graph.microsoft.com/v1.0/me").status_code == 401  # the emulator's answer
    assert [r["path"] for r in world.emulator.requests] == ["/v1.0/me"]
