"""GET /api/connections/{id}/files (listing) and /files/{*path} (download), over real HTTP."""

from __future__ import annotations

import http.client
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from tests.product_api.conftest import all_pages, quick_xor_hash


def files_url(connection_id: str, path: str = "") -> str:
    return f"/api/connections/{connection_id}/files" + (f"/{quote(path)}" if path else "")


def list_all(api: httpx.Client, connection_id: str, **params) -> tuple[list[dict], int]:
    """Every page of a listing; returns the files and the number of pages it took."""
    return all_pages(api, files_url(connection_id), "files", **params)


# ---- listing ---------------------------------------------------------------------------------

def test_listing_pages_through_every_file_in_path_order_with_its_metadata(api, drive):
    contents = {f"Docs/report-{n}.txt": os.urandom(10 + n) for n in range(7)}
    contents["Photos/été 🌞.jpg"] = b"\xff\xd8 jpeg"
    for path, data in contents.items():
        drive.write(path, data, item_id=f"ID!{len(path)}")

    files, pages = list_all(api, drive.connection_id, limit=3)

    assert pages == 3
    assert [f["path"] for f in files] == sorted(contents)
    for entry in files:
        data = contents[entry["path"]]
        assert entry["size"] == len(data)
        assert entry["quickXorHash"] == quick_xor_hash(data)
        assert entry["itemId"] == f"ID!{len(entry['path'])}"  # stored URL-quoted, shown as OneDrive gave it
        assert abs(datetime.fromisoformat(entry["lastModified"]) - datetime.now(UTC)) < timedelta(minutes=5)


def test_listing_with_a_prefix_shows_only_that_folder(api, drive):
    for path in ("Docs/a.txt", "Docs/sub/b.txt", "Docsxyz.txt", "Photos/c.jpg"):
        drive.write(path, b"x")

    files, _ = list_all(api, drive.connection_id, prefix="Docs/")

    assert [f["path"] for f in files] == ["Docs/a.txt", "Docs/sub/b.txt"]


def test_listing_shows_only_the_named_connections_files(api, connect):
    mine, theirs = connect("alice"), connect("bob")
    mine.write("mine.txt", b"1")
    theirs.write("theirs.txt", b"2")

    files, _ = list_all(api, mine.connection_id)

    assert [f["path"] for f in files] == ["mine.txt"]


def test_a_cursor_only_continues_the_listing_it_came_from(api, connect):
    first, second = connect(), connect()
    for n in range(3):
        first.write(f"A/{n}.txt", b"x")
        second.write(f"A/{n}.txt", b"x")
    cursor = api.get(files_url(first.connection_id), params={"limit": 1, "prefix": "A/"}).json()["nextCursor"]
    assert cursor

    other_prefix = api.get(files_url(first.connection_id), params={"limit": 1, "prefix": "B/", "cursor": cursor})
    other_connection = api.get(files_url(second.connection_id), params={"limit": 1, "prefix": "A/", "cursor": cursor})
    garbage = api.get(files_url(first.connection_id), params={"cursor": "not a cursor"})

    for refused in (other_prefix, other_connection, garbage):
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("prefix", ["../", "Docs/../..", "a\\b", "//", "a\x01"])
def test_listing_refuses_a_prefix_that_is_not_a_path(api, drive, prefix):
    response = api.get(files_url(drive.connection_id), params={"prefix": prefix})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_prefix"


@pytest.mark.parametrize("limit", ["0", "1001", "ten", "-1"])
def test_listing_refuses_a_limit_out_of_bounds(api, drive, limit):
    assert api.get(files_url(drive.connection_id), params={"limit": limit}).status_code == 400


# ---- download --------------------------------------------------------------------------------

def test_download_answers_the_bytes_with_caching_and_naming_headers(api, drive):
    data = os.urandom(5000)
    drive.write("Reports/Résumé été.pdf", data)

    response = api.get(files_url(drive.connection_id, "Reports/Résumé été.pdf"))

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["ETag"] == f'"qx-{quick_xor_hash(data)}"'
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Accept-Ranges"] == "bytes"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Resume ete.pdf"')
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "Résumé été.pdf"
    modified = parsedate_to_datetime(response.headers["Last-Modified"])
    assert abs(modified - datetime.now(UTC)) < timedelta(minutes=5)


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(api, drive):
    drive.write("a.txt", b"version 1")
    etag = api.get(files_url(drive.connection_id, "a.txt")).headers["ETag"]

    unchanged = api.get(files_url(drive.connection_id, "a.txt"), headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == etag

    drive.write("a.txt", b"version 2")
    changed = api.get(files_url(drive.connection_id, "a.txt"), headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.content == b"version 2"
    assert changed.headers["ETag"] != etag


def test_if_modified_since_answers_304_until_the_file_changes(api, drive):
    drive.write("a.txt", b"x")
    last_modified = api.get(files_url(drive.connection_id, "a.txt")).headers["Last-Modified"]
    assert api.get(files_url(drive.connection_id, "a.txt"), headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(seconds=10), usegmt=True)
    assert api.get(files_url(drive.connection_id, "a.txt"), headers={"If-Modified-Since": earlier}).status_code == 200


@pytest.mark.parametrize("range_header,start,end", [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-", 1000, 4095),
    ("bytes=-10", 4086, 4095),
    ("bytes=4000-999999", 4000, 4095),
])
def test_a_range_answers_206_with_exactly_those_bytes(api, drive, range_header, start, end):
    data = os.urandom(4096)
    drive.write("blob.bin", data)

    response = api.get(files_url(drive.connection_id, "blob.bin"), headers={"Range": range_header})

    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/4096"
    assert response.content == data[start:end + 1]


def test_a_range_past_the_end_answers_416_with_the_size(api, drive):
    drive.write("blob.bin", b"x" * 100)
    response = api.get(files_url(drive.connection_id, "blob.bin"), headers={"Range": "bytes=100-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */100"


def test_if_range_with_an_old_etag_answers_the_whole_new_file(api, drive):
    drive.write("a.txt", b"old contents")
    old_etag = api.get(files_url(drive.connection_id, "a.txt")).headers["ETag"]
    drive.write("a.txt", b"new contents")

    response = api.get(files_url(drive.connection_id, "a.txt"), headers={"Range": "bytes=4-", "If-Range": old_etag})

    assert response.status_code == 200
    assert response.content == b"new contents"


def test_an_empty_file_downloads_as_zero_bytes(api, drive):
    drive.write("empty.txt", b"")
    response = api.get(files_url(drive.connection_id, "empty.txt"))
    assert response.status_code == 200
    assert response.content == b""


def test_a_missing_file_is_404(api, drive):
    drive.write("here.txt", b"x")
    response = api.get(files_url(drive.connection_id, "not-here.txt"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "file_not_found"


# Raw request targets, sent byte for byte (http.client does not normalise `..` as httpx would).
CLIMBING = [
    "../{other}/secret.txt",
    "%2e%2e/{other}/secret.txt",
    "%2E%2E/%2e%2e/onedrive-files/{other}/secret.txt",
    "..%2F{other}%2Fsecret.txt",
    "a/..%2F..%2F{other}%2Fsecret.txt",
    "..%5C{other}%5Csecret.txt",
    "..\\{other}\\secret.txt",
    "./secret.txt",
    "a//b.txt",
    "a/b.txt/",
    "%00secret.txt",
    "a%01b.txt",
    "a%7Fb.txt",
    "%252e%252e/{other}/secret.txt",
]


@pytest.mark.parametrize("raw_path", CLIMBING)
def test_a_path_that_tries_to_leave_the_connection_is_refused(app_server, connect, raw_path):
    mine, other = connect("alice"), connect("mallory-target")
    other.write("secret.txt", b"TOP SECRET")
    mine.write("a/b.txt", b"fine")
    target = f"/api/connections/{mine.connection_id}/files/" + raw_path.format(other=other.connection_id)
    parts = urlsplit(app_server.url)

    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.putheader("x-functions-key", app_server.function_key)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 400, (raw_path, response.status, body)
    assert b"TOP SECRET" not in body
    assert b"invalid_path" in body


def test_unknown_or_malformed_connection_ids_are_404(api, drive):
    drive.write("a.txt", b"x")
    for connection_id in ("00000000-0000-0000-0000-000000000000", "nope", drive.connection_id.upper()):
        assert api.get(files_url(connection_id)).status_code == 404
        assert api.get(files_url(connection_id, "a.txt")).status_code == 404


# ---- large files and signed URLs -------------------------------------------------------------

def test_a_file_above_the_inline_limit_redirects_to_a_short_lived_read_only_url(api, drive, download_settings):
    download_settings(DOWNLOAD_REDIRECT="large", DOWNLOAD_INLINE_MAX_BYTES="65536")
    data = os.urandom(200_000)
    drive.write("Videos/clip one.mp4", data)

    response = api.get(files_url(drive.connection_id, "Videos/clip one.mp4"))

    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "no-store"
    signed = response.headers["Location"]
    fetched = httpx.get(signed, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Content-Type"] == "video/mp4"
    assert "filename*=UTF-8''clip%20one.mp4" in fetched.headers["Content-Disposition"]
    # Read-only: the same URL can't overwrite the file.
    assert httpx.put(signed, content=b"evil", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30).status_code >= 400
    assert httpx.get(signed, timeout=30).content == data
    # A small range of the same file is still served by the function itself.
    ranged = api.get(files_url(drive.connection_id, "Videos/clip one.mp4"), headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]


def test_always_redirect_sends_even_small_files_to_a_signed_url(api, drive, download_settings):
    download_settings(DOWNLOAD_REDIRECT="always")
    drive.write("small.txt", b"tiny")
    response = api.get(files_url(drive.connection_id, "small.txt"))
    assert response.status_code == 302
    assert httpx.get(response.headers["Location"], timeout=30).content == b"tiny"


def test_without_redirects_a_large_file_is_served_in_bounded_ranges(api, drive, download_settings):
    download_settings(DOWNLOAD_REDIRECT="never", DOWNLOAD_INLINE_MAX_BYTES="65536")
    data = os.urandom(150_000)
    drive.write("big.bin", data)

    whole = api.get(files_url(drive.connection_id, "big.bin"))
    assert whole.status_code == 413
    assert whole.json()["error"]["code"] == "file_too_large_for_inline_download"

    received, start = b"", 0
    while start < len(data):
        part = api.get(files_url(drive.connection_id, "big.bin"), headers={"Range": f"bytes={start}-"})
        assert part.status_code == 206
        assert len(part.content) <= 65536
        first, last = part.headers["Content-Range"].split(" ")[1].split("/")[0].split("-")
        assert int(first) == start
        received += part.content
        start = int(last) + 1
    assert received == data
