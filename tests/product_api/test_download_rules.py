"""The download rules on their own (no I/O): ranges, conditions, redirects, names, path checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.api.downloads import UNSATISFIABLE, ByteRange, StoredFile, content_disposition, parse_range, plan
from functions.api.files import validate_path, validate_prefix
from functions.api.support import ApiError

MODIFIED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FILE = StoredFile(path="Docs/report.pdf", size=1000, etag='"qx-abc="', last_modified=MODIFIED)


def decide(headers=None, *, mode="large", limit=10_000, file=FILE):
    return plan(file, {k.lower(): v for k, v in (headers or {}).items()}, redirect_mode=mode, inline_max_bytes=limit)


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-0", ByteRange(0, 0)),
    ("bytes=10-19", ByteRange(10, 19)),
    ("bytes=990-", ByteRange(990, 999)),
    ("bytes=-5", ByteRange(995, 999)),
    ("bytes=-5000", ByteRange(0, 999)),
    ("bytes=900-5000", ByteRange(900, 999)),
    ("BYTES = 1 - 2", ByteRange(1, 2)),
])
def test_single_ranges_are_clamped_to_the_file(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=", "bytes=-", "bytes=a-b"])
def test_ranges_that_cannot_be_understood_are_ignored(header):
    assert parse_range(header, 1000) is None
    assert decide({"Range": header}).status == 200


@pytest.mark.parametrize("header,size", [("bytes=1000-", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)])
def test_ranges_outside_the_file_are_unsatisfiable(header, size):
    assert parse_range(header, size) is UNSATISFIABLE


@given(size=st.integers(1, 10_000), first=st.integers(0, 20_000), length=st.integers(1, 20_000))
def test_a_satisfiable_range_always_lies_inside_the_file(size, first, length):
    found = parse_range(f"bytes={first}-{first + length - 1}", size)
    if first >= size:
        assert found is UNSATISFIABLE
    else:
        assert 0 <= found.start <= found.end < size and found.start == first


def test_if_none_match_wins_over_if_modified_since_and_accepts_lists_and_weak_tags():
    old = format_datetime(MODIFIED - timedelta(days=1), usegmt=True)
    assert decide({"If-None-Match": 'W/"qx-abc="'}).status == 304
    assert decide({"If-None-Match": '"other", "qx-abc="'}).status == 304
    assert decide({"If-None-Match": "*"}).status == 304
    assert decide({"If-None-Match": '"other"', "If-Modified-Since": format_datetime(MODIFIED, usegmt=True)}).status == 200
    assert decide({"If-Modified-Since": old}).status == 200
    assert decide({"If-Modified-Since": "garbage"}).status == 200


def test_if_range_needs_a_strong_match_to_keep_the_range():
    assert decide({"Range": "bytes=0-9", "If-Range": '"qx-abc="'}).status == 206
    assert decide({"Range": "bytes=0-9", "If-Range": 'W/"qx-abc="'}).status == 200
    assert decide({"Range": "bytes=0-9", "If-Range": format_datetime(MODIFIED, usegmt=True)}).status == 206
    assert decide({"Range": "bytes=0-9", "If-Range": format_datetime(MODIFIED - timedelta(1), usegmt=True)}).status == 200


def test_redirects_follow_the_mode_and_the_size_of_what_would_be_sent():
    assert decide(mode="always").status == 302
    assert decide(limit=999).status == 302
    assert decide(limit=1000).status == 200
    assert decide({"Range": "bytes=0-99"}, limit=999).status == 206  # a small part of a large file: inline
    assert decide(mode="never", limit=999).status == 413
    capped = decide({"Range": "bytes=0-"}, mode="never", limit=300)
    assert (capped.status, capped.body, capped.headers["Content-Range"]) == (206, ByteRange(0, 299), "bytes 0-299/1000")


def test_conditions_are_answered_before_redirecting():
    assert decide({"If-None-Match": '"qx-abc="'}, mode="always").status == 304
    assert decide({"Range": "bytes=5000-"}, mode="always").status == 416


@pytest.mark.parametrize("name,fallback", [
    ("report.pdf", "report.pdf"),
    ("Résumé.pdf", "Resume.pdf"),
    ('quote" and \\ back.txt', "quote_ and _ back.txt"),
    ("日本語.txt", ".txt"),
    ("🌞", "download"),
])
def test_content_disposition_has_a_safe_ascii_name_and_the_exact_utf8_name(name, fallback):
    header = content_disposition(name)
    assert header.startswith(f'attachment; filename="{fallback}"; ')
    assert unquote(header.split("filename*=UTF-8''")[1]) == name
    assert "\r" not in header and "\n" not in header


@pytest.mark.parametrize("path", [
    "..", "../x", "a/../../x", "a/./b", "/a", "a/", "a//b", "a\\b", "a\x00b", "a\nb", "a\x7fb", "a\x85b",
    "a%2Fb", "a%2fb", "a%5Cb", "%2e%2e/x", "a/%2E/b", "",
])
def test_paths_that_are_not_plain_drive_paths_are_refused(path):
    with pytest.raises(ApiError) as refused:
        validate_path(path, connection_id="c")
    assert refused.value.status == 400


@pytest.mark.parametrize("path", ["a.txt", "Docs/Résumé été.pdf", "a b/c#d%e+f.txt", "...hidden", "x..y/z..", "日本/🌞.png"])
def test_ordinary_names_are_accepted_as_they_are(path):
    assert validate_path(path, connection_id="c") == path


def test_the_raw_url_is_checked_too():
    # A host that decoded %2F before routing hands over a harmless-looking "a/b".
    with pytest.raises(ApiError):
        validate_path("a/b", request_url="https://app.example/api/connections/c/files/a%2Fb", connection_id="c")
    with pytest.raises(ApiError):
        validate_path("x/y", request_url="https://app.example/api/connections/c/files/x/%2e%2e/y", connection_id="c")
    assert validate_path("a/b c.txt", request_url="https://app.example/api/connections/c/files/a/b%20c.txt", connection_id="c")


def test_an_overlong_path_is_refused():
    with pytest.raises(ApiError):
        validate_path("a" * 1100, connection_id="c")
    with pytest.raises(ApiError):
        validate_path("a/" * 254 + "b", connection_id="c")
    assert validate_path("a/" * 252 + "b", connection_id="c")


@pytest.mark.parametrize("prefix,ok", [("", True), ("Docs/", True), ("Do", True), ("Docs/sub", True),
                                       ("/Docs", False), ("a//b", False), ("../", False), ("a\\", False)])
def test_prefixes_are_path_starts(prefix, ok):
    if ok:
        assert validate_prefix(prefix) == prefix
    else:
        with pytest.raises(ApiError):
            validate_prefix(prefix)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_an_accepted_path_never_climbs_or_hides_a_separator(text):
    try:
        accepted = validate_path(text, connection_id="c")
    except ApiError:
        return
    segments = accepted.split("/")
    assert all(segment and segment not in (".", "..") for segment in segments)
    assert "\\" not in accepted and all(ord(ch) >= 0x20 for ch in accepted)
