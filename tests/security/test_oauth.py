"""Sign-in, tried as an attacker would: account-linking CSRF through `ref`, replay, login CSRF,
state burning, mix-up and open redirects. Each family prints how many variants it tried."""

from __future__ import annotations

import httpx

from functions import connections, storage
from tests.fixtures.connected import Browser, connect_drive, connect_url, create_session, query_of
from tests.security.report import tried


def sessions_and_states() -> list[dict]:
    return list(storage.table(storage.Tables.OAUTH_STATES).list_entities())


def refs(app_server, ref: str) -> list[dict]:
    with app_server.client() as api:
        response = api.get("/api/connections", params={"ref": ref})
    assert response.status_code == 200
    return response.json()["connections"]


def test_another_users_connect_link_cannot_take_over_a_connection(app_server, emulator, emulator_user):
    """Issue 16 #1: Bob connects as bob-42; Eve makes a link for eve-666 and gets Bob to open it."""
    bob = connect_drive(app_server, emulator, emulator_user, ref="bob-42")
    eve_link = connect_url(app_server.url, ref="eve-666")  # the product made it for Eve, Eve forwards it
    emulator.auto_consent = True  # Microsoft's silent sign-in: one click for Bob
    with Browser() as bobs_browser:
        page = bobs_browser.open(eve_link)
    assert page.status_code == 409 and "connected to another account" in page.text
    assert refs(app_server, "eve-666") == []
    [mine] = refs(app_server, "bob-42")
    assert mine["id"] == bob.connection_id and mine["previousRef"] is None


def test_the_bare_ref_link_is_gone_and_writes_nothing(app_server, emulator, emulator_user):
    """The old `/api/connect?ref=` form: anyone could mint it, and every request wrote a row."""
    connect_drive(app_server, emulator, emulator_user, ref="bob-42")
    before = len(sessions_and_states())
    variants = [{"ref": "eve-666"}, {"ref": "eve-666", "return_to": "http://localhost:3000/"}, {},
                {"session": ""}, {"session": "forged-session-token"}, {"session": "x" * 300}, {"state": "eve"}]
    with Browser() as browser:
        for params in variants:
            response = browser.http.get(f"{app_server.url}/api/connect", params=params)
            assert response.status_code == 400, params
            assert "Set-Cookie" not in response.headers
    tried("connect links without a product-made session", len(variants))
    assert len(sessions_and_states()) == before  # no row per anonymous request
    assert refs(app_server, "eve-666") == []


def test_relinking_needs_the_product_to_say_so_and_is_recorded(app_server, emulator, emulator_user):
    bob = connect_drive(app_server, emulator, emulator_user, ref="bob-42")
    moved = connect_drive(app_server, emulator, emulator_user, ref="bob-new-account", relink=True)
    assert moved.connection_id == bob.connection_id
    [connection] = refs(app_server, "bob-new-account")
    assert connection["previousRef"] == "bob-42" and connection["refChangedAt"]
    assert refs(app_server, "bob-42") == []
    assert connections.require(bob.connection_id).previous_ref == "bob-42"


def test_a_connect_session_is_single_use_and_expires(app_server, emulator, emulator_user, monkeypatch):
    from datetime import timedelta

    from functions.signin import sessions

    link = connect_url(app_server.url, ref="u-1", return_to="https://product.example/back")
    with Browser() as first, Browser() as second:
        assert first.http.get(link).status_code == 302
        replay = second.http.get(link)
    assert replay.status_code == 400 and "already used" in replay.text
    assert 'href="https://product.example/back"' in replay.text  # a way back to the product

    monkeypatch.setattr(sessions, "SESSION_LIFETIME", timedelta(seconds=-1))
    expired = connect_url(app_server.url, ref="u-1")
    with Browser() as browser:
        page = browser.http.get(expired)
    assert page.status_code == 400 and "expired" in page.text
    tried("connect session replays", 2)


def test_creating_a_session_needs_the_function_key(app_server):
    attempts = [{}, {"x-functions-key": ""}, {"x-functions-key": "wrong"}, {"x-functions-key": app_server.function_key + "x"}]
    for headers in attempts:
        response = httpx.post(f"{app_server.url}/api/connect-sessions", json={"ref": "eve"}, headers=headers)
        assert response.status_code == 401, headers
    assert httpx.post(f"{app_server.url}/api/connect-sessions?code=wrong", json={"ref": "eve"}).status_code == 401
    tried("connect-session key bypasses", len(attempts) + 1)
    assert sessions_and_states() == []


def test_session_requests_with_bad_fields_are_refused_and_store_nothing(app_server):
    bad = [
        ({}, "invalid_ref"), ({"ref": ""}, "invalid_ref"), ({"ref": 42}, "invalid_ref"), ({"ref": "r" * 513}, "invalid_ref"),
        ({"ref": "a\nb"}, "invalid_ref"), ({"ref": " padded"}, "invalid_ref"), ({"ref": "u", "relink": "yes"}, "invalid_relink"),
        ({"ref": "u", "prompt": "none"}, "invalid_prompt"), ({"ref": "u", "login_hint": "a\u0000b"}, "invalid_login_hint"),
        ({"ref": "u", "return_to": "https://evil.example/"}, "invalid_return_to"), ({"ref": "u", "extra": 1}, "unknown_field"),
    ]
    for body, code in bad:
        response = create_session(app_server.url, **body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, (body, response.text)
    for raw in (b"", b"[]", b"null", b"{", b"\xff", b"[" * 100_000):
        response = httpx.post(f"{app_server.url}/api/connect-sessions", content=raw,
                              headers={"x-functions-key": app_server.function_key, "content-type": "application/json"})
        assert response.status_code in (400, 413), raw[:10]
    tried("bad connect-session bodies", len(bad) + 6)
    assert sessions_and_states() == []


def test_a_session_link_carries_only_a_random_token_and_the_row_only_its_hash(app_server):
    import hashlib

    created = create_session(app_server.url, ref="user-42", return_to="https://product.example/x").json()
    token = query_of(created["url"])["session"]
    assert created["url"].startswith(f"{app_server.url}/api/connect?session=") and len(token) >= 43
    [row] = sessions_and_states()
    assert row["PartitionKey"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(dict(row))


def callback_of(app_server, emulator, browser: Browser, **fields) -> str:
    emulator.auto_consent = True
    redirect = browser.open(connect_url(app_server.url, **fields), stop_at=f"{app_server.url}/api/oauth/callback")
    assert redirect.status_code == 302
    return redirect.headers["Location"]


def test_a_carried_callback_url_cannot_burn_the_real_browsers_sign_in(app_server, emulator, emulator_user):
    """Issue 16 #3: the state was spent before the cookie was checked."""
    with Browser() as victim:
        callback = callback_of(app_server, emulator, victim)
        attempts = 0
        for cookie in (None, "wrong", "", "a" * 5000):
            with Browser() as holder:  # anyone holding the URL: a proxy log, a shoulder, a Referer
                if cookie is not None:
                    for name in victim.http.cookies:
                        holder.http.cookies.set(name, cookie, path="/api/oauth")
                assert holder.open(callback).status_code == 400
                attempts += 1
        page = victim.open(callback)
    assert page.status_code == 200 and "OneDrive connected" in page.text
    tried("carried callback URLs before the real browser", attempts)


def test_callbacks_with_forged_replayed_or_mixed_up_parameters_connect_nothing(app_server, emulator, emulator_user):
    with Browser() as browser:
        callback = callback_of(app_server, emulator, browser)
        query = query_of(callback)
        base = f"{app_server.url}/api/oauth/callback"
        variants = [
            {**query, "state": query["state"] + "x"}, {**query, "state": query["state"][:-1]}, {"code": query["code"]},
            {**query, "iss": "https://evil.example/"}, {**query, "iss": "http://[::1"},  # mix-up: another issuer (RFC 9207)
            {**query, "code": "forged-code"},  # spends the state: the real code can't be used after this
        ]
        statuses = []
        for params in variants:
            statuses.append(browser.http.get(base, params=params).status_code)
        assert all(400 <= status < 500 for status in statuses), statuses
        replay = browser.open(callback)
    assert replay.status_code == 400  # the state was spent by the forged code: one state, one code
    assert connections.get(connections.connection_id_for(emulator_user.id)) is None
    tried("forged, mixed-up and replayed callbacks", len(variants) + 1)
