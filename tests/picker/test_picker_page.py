"""The picker page over real HTTP: a single-use link, a cookie-bound session, the drive browsed on
the server, the selection saved by a plain form (no script)."""

from __future__ import annotations

import html
import re

import httpx
import pytest


@pytest.fixture
def api(app_server):
    with app_server.client(timeout=30) as client:
        yield client


@pytest.fixture
def seeded(connected_drive):
    drive = connected_drive.drive
    drive.write_file("Work/Project/a.txt", b"a" * 1500)
    drive.write_file("Work/notes.txt", b"notes")
    drive.write_file("Photos/p.jpg", size=3 * 1024 * 1024, seed=1)
    drive.write_file("top.txt", b"top")
    return connected_drive


def picker_link(api, connection_id: str, **body) -> str:
    response = api.post(f"/api/connections/{connection_id}/picker-sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["url"]


def form_of(page: httpx.Response) -> dict:
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    folder = re.search(r'name="folder" value="([^"]+)"', page.text).group(1)
    shown = [html.unescape(v) for v in re.findall(r'name="shown" value="([^"]+)"', page.text)]
    return {"csrf": html.unescape(csrf), "folder": html.unescape(folder), "shown": shown}


def test_pick_a_folder_through_the_page(seeded, api):
    drive = seeded.drive
    url = picker_link(api, seeded.connection_id, return_to="http://localhost:8000/done")
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(url)
        assert page.status_code == 200 and str(page.url).endswith("/api/picker"), "the token must leave the URL"
        csp = page.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "form-action 'self'" in csp
        assert "<script" not in page.text.lower()
        assert 'aria-label="Share Folder Work"' in page.text and "3.0 MB" in page.text  # sizes, labels
        assert 'name="viewport"' in page.text and "http://localhost:8000/done" in page.text
        # Into Work: tick Project.
        work = browser.get(f"{seeded.app.url}/api/picker", params={"folder": drive.item_id("Work")})
        form = form_of(work)
        saved = browser.post(f"{seeded.app.url}/api/picker", data={
            **form, "item": [drive.item_id("Work/Project")], "action": "save"})
        assert saved.status_code == 200 and 'role="status"' in saved.text
    shown = api.get(f"/api/connections/{seeded.connection_id}/selection").json()
    assert shown["mode"] == "items" and [i["path"] for i in shown["items"]] == ["Work/Project"]


def test_a_picker_link_works_once_and_only_with_its_session(seeded, api):
    url = picker_link(api, seeded.connection_id)
    with httpx.Client(follow_redirects=True, timeout=30) as first:
        assert first.get(url).status_code == 200
        form = form_of(first.get(f"{seeded.app.url}/api/picker"))
    with httpx.Client(follow_redirects=True, timeout=30) as second:
        replay = second.get(url)
        assert replay.status_code == 400 and "already used" in replay.text
        # No session cookie: nothing is shown and nothing can be saved, even with the form's fields.
        assert second.get(f"{seeded.app.url}/api/picker").status_code == 401
        assert second.post(f"{seeded.app.url}/api/picker", data={**form, "action": "whole"}).status_code == 401
    with httpx.Client(follow_redirects=True, timeout=30) as forged:
        forged.get(picker_link(api, seeded.connection_id))
        assert forged.post(f"{seeded.app.url}/api/picker", data={**form, "csrf": "nope", "action": "whole"}).status_code == 403
    assert api.get(f"/api/connections/{seeded.connection_id}/selection").json()["mode"] == "drive"


@pytest.mark.parametrize("body, code", [({"return_to": "https://evil.example/x"}, "invalid_return_to"), ([1], "invalid_body")])
def test_bad_picker_session_requests_are_refused(seeded, api, body, code):
    response = api.post(f"/api/connections/{seeded.connection_id}/picker-sessions", json=body)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_unknown_connection_and_missing_key(app_server, api):
    assert api.post("/api/connections/00000000-0000-0000-0000-000000000000/picker-sessions", json={}).status_code == 404
    assert httpx.post(f"{app_server.url}/api/connections/00000000-0000-0000-0000-000000000000/picker-sessions").status_code == 401
    assert httpx.get(f"{app_server.url}/api/picker?s=" + "x" * 40).status_code == 400


def test_a_connect_session_with_choose_opens_the_picker_right_after_consent(app_server, emulator, emulator_user, api):
    """"Choose what to share" as part of connecting: consent, then the picker (token out of the
    URL, bound to this browser), and its way back is return_to with the new connection's id."""
    from functions import connections
    from functions.tokens import vault
    from tests.fixtures.connected import Browser, connect_url

    vault.forget_cached_tokens()
    emulator_user.drive.write_file("Work/a.txt", b"a")
    emulator.auto_consent = True
    link = connect_url(app_server.url, return_to="http://localhost:8000/done", choose=True,
                       login_hint=emulator_user.email)
    with Browser() as browser:
        page = browser.open(link, stop_at="http://localhost:8000/")
        assert page.status_code == 200 and str(page.url) == f"{app_server.url}/api/picker", page.text[:300]
        connection_id = connections.connection_id_for(emulator_user.id)
        assert f"http://localhost:8000/done?connection={connection_id}" in html.unescape(page.text)
        assert 'aria-label="Share Folder Work"' in page.text
        form = form_of(page)
        saved = browser.http.post(f"{app_server.url}/api/picker", data={
            **form, "item": [emulator_user.drive.item_id("Work")], "action": "save"})
        assert saved.status_code in (200, 303), saved.text[:300]
    shown = api.get(f"/api/connections/{connection_id}/selection").json()
    assert shown["mode"] == "items" and [i["path"] for i in shown["items"]] == ["Work"]


def test_choose_must_be_a_boolean(app_server):
    from tests.fixtures.connected import create_session

    answer = create_session(app_server.url, ref="u", choose="yes")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_choose"
