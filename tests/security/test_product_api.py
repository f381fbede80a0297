"""The product API, tried as an attacker would: key bypasses on every FUNCTION route, traversal
out of a connection's prefix, header injection through names, hostile Range headers, and what
every listed name must still allow (a download). Each family prints how many variants it tried."""

from __future__ import annotations

import http.client
import itertools
import time
from urllib.parse import quote, urlsplit

import httpx
import pytest

from devtools.azurite import Azurite
from functions import storage
from tests.fixtures.app import function_specs
from tests.security.report import tried


def raw_get(app_server, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """GET a request target byte for byte (httpx would normalise `..` and re-encode)."""
    parts = urlsplit(app_server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True, skip_host="host" in {k.lower() for k in headers})
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def function_routes() -> list[tuple[str, str]]:
    return [(method, "/api/" + spec.route.replace("{*path}", "a.txt").replace("{id}", "00000000-0000-0000-0000-000000000000"))
            for spec in function_specs() if spec.trigger == "httpTrigger" and spec.auth_level != "ANONYMOUS"
            for method in spec.methods]


def test_no_function_route_answers_without_the_key(app_server):
    key = app_server.function_key
    wrong = [None, "", " ", key + " ", " " + key, key.upper(), key[:-1], key + "x", "null", "undefined", "*",
             key.encode().hex(), quote(key) + "%00"]
    routes = function_routes()
    assert len(routes) >= 10
    tried_count = 0
    for (method, route), given in itertools.product(routes, wrong):
        for place in ("header", "query", "both-wrong"):
            headers = {"x-functions-key": given} if given is not None and place != "query" else {}
            params = {"code": given} if given is not None and place != "header" else {}
            try:
                response = httpx.request(method, app_server.url + route, headers=headers, params=params, timeout=30,
                                         content=b'{"ref":"eve"}' if method == "POST" else None)
            except httpx.LocalProtocolError:
                continue  # a header value httpx refuses to send (surrounding spaces): the query form covers it
            assert response.status_code == 401, (method, route, given, place, response.status_code)
            tried_count += 1
    tried("function-key bypasses (routes x keys x places)", tried_count)
    assert list(storage.table(storage.Tables.OAUTH_STATES).list_entities()) == []


CLIMB = ["..", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%252e%252e", "..%00", "..\\", "%5c..", "..%5C", "%c0%ae%c0%ae",
         "\u2025", "%E2%80%A5", "．．", "%EF%BC%8E%EF%BC%8E"]
SEPARATORS = ["/", "%2F", "%2f", "%5C", "\\", "%252F", "//"]


def test_no_path_leaves_the_connection_whatever_the_encoding(app_server, connect):
    mine, other = connect("alice"), connect("target")
    other.write("secret.txt", b"TOP SECRET")
    mine.write("a/b.txt", b"fine")
    headers = {"x-functions-key": app_server.function_key}
    count = 0
    for climb, separator in itertools.product(CLIMB, SEPARATORS):
        for depth in (1, 2, 3):
            climbing = separator.join([climb] * depth)
            for tail in (f"{other.connection_id}{separator}secret.txt", f"onedrive-files{separator}{other.connection_id}{separator}secret.txt"):
                escaped = quote(climbing + separator + tail, safe="/%\\")
                targets = [f"/api/connections/{mine.connection_id}/files/{escaped}",
                           f"/api/connections/{mine.connection_id}/files/a/{escaped}",
                           f"/api/connections/{mine.connection_id}/content?path={quote(climbing + '/' + tail, safe='')}",
                           f"/api/connections/{mine.connection_id}/files?prefix={quote(climbing + '/', safe='')}"]
                for target in targets:
                    status, _, body = raw_get(app_server, target, headers)
                    assert status < 500 and b"TOP SECRET" not in body, (target, status)
                    assert status in (400, 404) or (status == 200 and b"files" in body), (target, status, body[:200])
                    count += 1
    tried("traversal targets (encodings x separators x depths x routes)", count)


HOSTILE_NAMES = ['quote".txt', "semi;colon.txt", "comma,name.txt", "new\u2028line.txt", "tab\u00a0name.txt",
                 "é t é.txt", "日本語.txt", "emoji🙂.txt", "a=b.txt", "%0d%0aSet-Cookie: x=1.txt", "x%2Fy.txt",
                 "x%5Cy.txt", "%2e%2e", "%2e%2e%2Fsecret", "100%.txt", "%", "%%2F", "percent%25.txt", "  lead.txt",
                 "trail .txt", "<script>.html", "CON.txt", "x" * 200 + ".txt", "\ufeffbom.txt"]


def test_every_listed_name_downloads_with_its_bytes_and_a_safe_header(app_server, drive, api):
    for position, name in enumerate(HOSTILE_NAMES):
        drive.write(f"Docs/{name}", f"body {position}".encode())
    listed = api.get(f"/api/connections/{drive.connection_id}/files", params={"limit": 1000}).json()["files"]
    assert len(listed) == len(HOSTILE_NAMES)
    for entry in listed:
        response = api.get(f"/api/connections/{drive.connection_id}/content", params={"path": entry["path"]})
        position = HOSTILE_NAMES.index(entry["path"].removeprefix("Docs/"))
        assert response.status_code == 200 and response.content == f"body {position}".encode(), (entry["path"], response.text)
        for value in response.headers.values():
            assert "\r" not in value and "\n" not in value
        disposition = response.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="') and "filename*=UTF-8''" in disposition
        assert "set-cookie" not in response.headers
    tried("hostile names downloaded by ?path=", len(listed))


def test_the_local_host_hands_the_raw_path_over_as_azure_does(app_server, drive):
    """`Docs%2FWelcome.txt` must not reach the mirror as `Docs/Welcome.txt` locally when Azure
    would see the raw `%2F` (issue 16 #8)."""
    drive.write("Docs/Welcome.txt", b"welcome")
    headers = {"x-functions-key": app_server.function_key}
    status, _, body = raw_get(app_server, f"/api/connections/{drive.connection_id}/files/Docs%2FWelcome.txt", headers)
    assert status == 400 and b"invalid_path" in body
    status, _, body = raw_get(app_server, f"/api/connections/{drive.connection_id}/files/Docs/Welcome.txt", headers)
    assert status == 200 and body == b"welcome"


RANGES = ["bytes=0-" + "9" * 5000, "bytes=" + "9" * 5000 + "-", "bytes=-" + "9" * 5000, "bytes=" + "1" * 5000 + "-" + "2" * 5000,
          "bytes=0-" + "9" * 19, "bytes=-0", "bytes=5-1", "bytes=--1", "bytes=0-1,2-3", "bytes=0-1," * 1000,
          "bytes=\u0660-\u0661", "bytes=０-１", "bytes= 0 - 1 ", "items=0-1", "bytes=0x10-", "bytes=1e3-", "bytes=+1-2",
          "bytes=-", "bytes=", "", "bytes=0-1\x00"]
DATES = ["Mon, 99999999999999999999 Jan 2020 00:00:00 GMT", "Mon, 01 Jan 2020 99999999999999999999:00:00 GMT",
         "Mon, 01 Jan 2020 00:00:00 +99999999999999", "Mon, 01 Jan 9" + "9" * 5000 + " 00:00:00 GMT", "0", "\u0660"]


def test_hostile_range_and_date_headers_never_fail(app_server, drive):
    drive.write("f.bin", bytes(range(256)) * 4)
    target = f"/api/connections/{drive.connection_id}/files/f.bin"
    count = 0
    for value in RANGES:
        for extra in ({}, {"If-Range": DATES[0]}, {"If-Range": '"qx-x"'}):
            try:
                response = httpx.get(app_server.url + target, headers={"x-functions-key": app_server.function_key,
                                                                       "Range": value.encode(), **extra}, timeout=30)
            except httpx.LocalProtocolError:
                continue  # a header httpx itself refuses to send (NUL)
            assert response.status_code in (200, 206, 416), (value[:40], extra, response.status_code, response.text[:200])
            count += 1
    for value, name in itertools.product(DATES, ("If-Modified-Since", "If-Range")):
        response = httpx.get(app_server.url + target, headers={"x-functions-key": app_server.function_key, name: value.encode(),
                                                               "Range": "bytes=0-1"}, timeout=30)
        assert response.status_code in (200, 206, 304), (name, value[:40], response.status_code, response.text[:200])
        count += 1
    tried("hostile Range / date headers", count)


def test_hostile_query_values_and_host_headers_are_4xx(app_server, drive):
    drive.write("a.txt", b"x")
    key = {"x-functions-key": app_server.function_key}
    base = f"/api/connections/{drive.connection_id}"
    queries = [f"{base}/files?limit=" + "9" * 5000, f"{base}/files?cursor=" + "W" * 5000, "/api/connections?limit=-1",
               "/api/connections?cursor=" + "WwoK" * 2000, "/api/connections?ref=%00", f"{base}/content?path=",
               f"{base}/content?path=%00", f"{base}/files?prefix=%2e%2e/", f"{base}?deleteMirror=maybe"]
    count = 0
    for target in queries:
        status, _, body = raw_get(app_server, target, key)
        assert 400 <= status < 500 or status == 200, (target[:80], status, body[:200])
        count += 1
    for host in ("[::1", "localhost:1]", "evil.example:99999", "a" * 300, "[::1]x"):
        status, _, body = raw_get(app_server, f"{base}/files/a.txt", {**key, "Host": host})
        assert status < 500, (host, status, body[:200])
        count += 1
    tried("hostile query values and Host headers", count)


def test_storage_down_answers_a_prompt_503_with_retry_after(app_settings, app_server, monkeypatch, tmp_path):
    """Issue 16 #5: a bare 500 after 15 s before."""
    with Azurite(location=tmp_path, in_memory=True) as doomed:
        monkeypatch.setenv(storage.CONNECTION, doomed.connection_string)
        storage.reset_clients()
        with app_server.client(timeout=30) as api:
            assert api.get("/api/connections").status_code == 200
            doomed.stop()
            for method, route, body in [("GET", "/api/connections", None), ("POST", "/api/connect-sessions", {"ref": "u"}),
                                        ("GET", "/api/connections/00000000-0000-0000-0000-000000000000", None)]:
                started = time.monotonic()
                response = api.request(method, route, json=body)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (route, response.status_code, response.text[:200])
                assert response.json()["error"]["code"] == "storage_unavailable"
                assert int(response.headers["retry-after"]) > 0
                assert elapsed < 5, f"{route} took {elapsed:.1f} s"
        started = time.monotonic()
        page = httpx.get(f"{app_server.url}/api/connect", params={"session": "some-token"}, timeout=30)
        assert page.status_code == 503 and "try again" in page.text.lower() and page.headers["retry-after"]
        assert page.headers["content-type"].startswith("text/html")
        assert time.monotonic() - started < 5
    storage.reset_clients()


@pytest.mark.parametrize("route", ["/api/connect", "/api/oauth/callback"])
def test_storage_down_gives_the_browser_a_friendly_page(app_settings, app_server, monkeypatch, tmp_path, route):
    with Azurite(location=tmp_path, in_memory=True) as doomed:
        monkeypatch.setenv(storage.CONNECTION, doomed.connection_string)
        storage.reset_clients()
        storage.table(storage.Tables.OAUTH_STATES)  # exists, then goes away
        doomed.stop()
        params = {"session": "s"} if route == "/api/connect" else {"state": "s", "code": "c"}
        page = httpx.get(app_server.url + route, params=params, cookies={"x": "y"}, timeout=30)
    storage.reset_clients()
    assert page.status_code == 503 and "<html" in page.text and page.headers["retry-after"]
