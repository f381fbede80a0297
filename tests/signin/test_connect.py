"""Connecting a OneDrive: the whole flow over HTTP, browsers as cookie jars, Microsoft as the emulator."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC

import pytest

from functions import connections, storage
from functions.settings import reload_settings
from tests.fixtures.connected import Browser, connect_drive, connect_url, create_session, query_of


def token_requests(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token")]


def rows(table: str) -> list[dict]:
    return list(storage.table(table).list_entities())


def state_rows() -> list[dict]:
    """Sign-in states (the table also holds the connect sessions, kept as spent until purged)."""
    return [row for row in rows(storage.Tables.OAUTH_STATES) if row["RowKey"] == "state"]


def queued_syncs() -> list[dict]:
    import json

    return [json.loads(m.content) for m in storage.queue(storage.Queues.SYNC).peek_messages(max_messages=32)]


def callback_url_of(app_server, emulator, browser: Browser, **params: str) -> str:
    """Start a sign-in in `browser` and consent, stopping before the callback: its URL (code + state)."""
    emulator.auto_consent = True
    redirect = browser.open(connect_url(app_server.url, **params), stop_at=f"{app_server.url}/api/oauth/callback")
    assert redirect.status_code == 302
    return redirect.headers["Location"]


def assert_offers_connect_again(page, app_server, return_to: str = "") -> None:
    """Every sign-in error page links to a new start (the product's page when it said where)."""
    import re

    links = re.findall(r'<a class="again" href="([^"]+)">Connect again</a>', page.text)
    assert links == [return_to or f"{app_server.url}/api/connect"], page.text


def test_connect_redirects_to_authorize_with_pkce_and_a_cookie_bound_state(app_server, emulator, app_settings):
    with Browser() as browser:
        response = browser.http.get(connect_url(app_server.url, ref="user-42"))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{emulator.authority}/oauth2/v2.0/authorize?")
    query = query_of(location)
    assert query["client_id"] == emulator.client_id
    assert query["response_type"] == "code"
    assert query["response_mode"] == "query"
    assert query["redirect_uri"] == f"{app_settings['PUBLIC_BASE_URL']}/api/oauth/callback"
    assert query["scope"].split() == ["Files.ReadWrite", "offline_access", "User.Read"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43 and len(query["state"]) >= 43
    assert "prompt" not in query

    cookie = response.headers["Set-Cookie"]
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert {"httponly", "samesite=lax", "path=/api/oauth", "max-age=600"} <= set(attributes)
    assert "secure" not in attributes  # PUBLIC_BASE_URL is http here

    # Server side: the state only as a hash, nothing readable about the verifier.
    [row] = state_rows()
    assert row["PartitionKey"] == hashlib.sha256(query["state"].encode()).hexdigest()
    assert row["ref"] == "user-42"
    assert not any(query["state"] in str(value) for value in row.values())
    assert row["verifier"].startswith("v1.test1.")


def test_prompt_select_account_is_passed_on_and_other_prompts_are_refused(app_server):
    with Browser() as browser:
        chosen = browser.http.get(connect_url(app_server.url, prompt="select_account"))
    refused = create_session(app_server.url, ref="u", prompt="none")
    assert query_of(chosen.headers["Location"])["prompt"] == "select_account"
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_prompt"


def test_full_connect_creates_an_active_connection_and_queues_the_initial_sync(connected_drive, emulator_user):
    page = connected_drive.final_page
    assert page.status_code == 200
    assert "OneDrive connected" in page.text and emulator_user.display_name in page.text
    assert "max-age=0" in page.headers["Set-Cookie"].lower()  # the binding cookie is spent
    assert page.headers["Referrer-Policy"] == "no-referrer"

    connection = connections.require(connected_drive.connection_id)
    assert connection.state == connections.ConnectionState.ACTIVE
    assert connection.account_id == emulator_user.id
    assert connection.drive_id == emulator_user.drive_id.lower().rjust(16, "0")
    assert connection.email == emulator_user.email
    assert connection.display_name == emulator_user.display_name
    assert [row["PartitionKey"] for row in rows(storage.Tables.TOKENS)] == [connected_drive.connection_id]
    assert state_rows() == []  # consumed
    assert {"connection_id": connected_drive.connection_id, "reason": "initial"} in queued_syncs()


def test_return_to_receives_the_browser_with_the_connection_id(app_server, emulator, emulator_user):
    connected = connect_drive(app_server, emulator, emulator_user, return_to="https://product.example/done?tab=files", ref="p-7")
    redirect = connected.final_page
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == f"https://product.example/done?tab=files&connection={connected.connection_id}"
    assert connections.require(connected.connection_id).ref == "p-7"


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/",
        "https://product.example.evil.example/",
        "https://product.example@evil.example/",
        "//evil.example/",
        "javascript:alert(1)",
        "https://product.example\\@evil.example/",
    ],
)
def test_an_open_redirect_attempt_is_refused_before_anything_is_stored(app_server, emulator, return_to):
    response = create_session(app_server.url, ref="u", return_to=return_to)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_return_to"
    assert rows(storage.Tables.OAUTH_STATES) == []


def test_denied_consent_shows_a_clear_page_and_stores_nothing(app_server, emulator, emulator_user):
    emulator.auto_consent = False
    with Browser() as browser:
        consent_page = browser.open(connect_url(app_server.url))
        assert consent_page.status_code == 200 and "access your info" in consent_page.text
        page = browser.answer_consent(consent_page, accept=False)
    assert page.status_code == 200
    assert "chose not to give access" in page.text
    assert_offers_connect_again(page, app_server)
    assert token_requests(emulator) == []
    assert rows(storage.Tables.CONNECTIONS) == [] and rows(storage.Tables.TOKENS) == []
    assert state_rows() == []  # the state is spent all the same
    assert queued_syncs() == []


def test_accepting_on_the_consent_page_connects(app_server, emulator, emulator_user):
    emulator.auto_consent = False
    with Browser() as browser:
        page = browser.answer_consent(browser.open(connect_url(app_server.url)), accept=True)
    assert page.status_code == 200 and "OneDrive connected" in page.text
    assert connections.get(connections.connection_id_for(emulator_user.id)) is not None


def test_a_replayed_state_is_refused_and_exchanges_no_code(app_server, emulator, emulator_user):
    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        first = browser.open(callback)
        replay = browser.open(callback)
    assert first.status_code == 200
    assert replay.status_code == 400 and "already used" in replay.text
    assert_offers_connect_again(replay, app_server)
    assert len(token_requests(emulator)) == 1


def test_two_racing_callbacks_with_one_state_connect_once(app_server, emulator, emulator_user):
    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        cookies = dict(browser.http.cookies.items())
    statuses: list[int] = []
    start = threading.Barrier(2)

    def open_callback() -> None:
        with Browser() as racer:
            for name, value in cookies.items():
                racer.http.cookies.set(name, value, path="/api/oauth")
            start.wait()
            statuses.append(racer.open(callback).status_code)

    threads = [threading.Thread(target=open_callback) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 400]
    assert len(token_requests(emulator)) == 1


def test_login_csrf_someone_elses_callback_in_another_browser_is_refused(app_server, emulator, emulator_user):
    with Browser() as attacker:
        callback = callback_url_of(app_server, emulator, attacker)
    with Browser() as victim:
        page = victim.open(callback)
    assert page.status_code == 400 and "another browser" in page.text
    assert_offers_connect_again(page, app_server)
    assert token_requests(emulator) == []
    assert rows(storage.Tables.CONNECTIONS) == [] and rows(storage.Tables.TOKENS) == []


def test_a_cookie_from_another_flow_does_not_unlock_a_callback(app_server, emulator, emulator_user):
    with Browser() as attacker:
        callback = callback_url_of(app_server, emulator, attacker)
    with Browser() as victim:
        callback_url_of(app_server, emulator, victim)  # the victim has a binding cookie of their own
        page = victim.open(callback)
    assert page.status_code == 400
    assert token_requests(emulator) == []


def test_the_same_account_connecting_twice_is_one_connection(app_server, emulator, emulator_user):
    first = connect_drive(app_server, emulator, emulator_user, ref="product-user-1")
    second = connect_drive(app_server, emulator, emulator_user, ref="product-user-1")
    assert first.connection_id == second.connection_id
    [connection] = rows(storage.Tables.CONNECTIONS)
    assert connection["RowKey"] == first.connection_id
    assert connection["ref"] == "product-user-1"
    assert not connection.get("previous_ref")  # the same product user: not a re-link
    assert len(rows(storage.Tables.TOKENS)) == 1


def test_login_hint_preselects_the_account_to_connect(app_server, emulator, emulator_user):
    other = emulator.add_user(email="grace@example.com", display_name="Grace Hopper")
    connected = connect_drive(app_server, emulator, other, login_hint="grace@example.com")
    assert connected.connection_id == connections.connection_id_for(other.id)
    assert connections.require(connected.connection_id).email == "grace@example.com"


def test_two_accounts_are_two_connections(app_server, emulator, emulator_user):
    other = emulator.add_user(email="grace@example.com", display_name="Grace Hopper")
    first = connect_drive(app_server, emulator, emulator_user)
    emulator.auto_consent = False  # two accounts in the emulator: the person picks one
    with Browser() as browser:
        consent = browser.open(connect_url(app_server.url))
        request_id = consent.text.split("name='request' value='")[1].split("'")[0]
        action = f"{emulator.authority}/oauth2/v2.0/consent"
        redirect = browser.http.post(action, data={"request": request_id, "action": "accept", "user": other.id})
        assert browser.open(redirect.headers["Location"]).status_code == 200
    second = connections.connection_id_for(other.id)
    assert second != first.connection_id
    assert {row["RowKey"] for row in rows(storage.Tables.CONNECTIONS)} == {first.connection_id, second}


def test_sign_in_works_with_the_common_authority(app_server, emulator, emulator_user, monkeypatch):
    monkeypatch.setenv("MICROSOFT_AUTHORITY", f"{emulator.base_url}/common")
    reload_settings()
    connected = connect_drive(app_server, emulator, emulator_user)
    assert connected.final_page.status_code == 200
    assert all("/common/" in r["path"] for r in token_requests(emulator))


@pytest.mark.parametrize(
    "query, message",
    [
        ({}, "no state"),
        ({"state": "never-issued", "code": "M.abc"}, "unknown or was already used"),
        ({"state": "x" * 2049, "code": "M.abc"}, "too long"),
        ({"state": "s", "code": "c" * 3000}, "too long"),
    ],
)
def test_bad_callbacks_get_a_clear_400_and_change_nothing(app_server, emulator, query, message):
    with Browser() as browser:
        response = browser.http.get(f"{app_server.url}/api/oauth/callback", params=query)
    assert response.status_code == 400
    assert message in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert_offers_connect_again(response, app_server)
    assert token_requests(emulator) == []
    assert rows(storage.Tables.CONNECTIONS) == []


def test_a_callback_with_neither_code_nor_error_is_refused(app_server, emulator, emulator_user):
    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        state = query_of(callback)["state"]
        response = browser.open(f"{app_server.url}/api/oauth/callback?state={state}")
    assert response.status_code == 400 and "neither a code nor an error" in response.text
    assert token_requests(emulator) == []


def test_an_expired_state_is_refused(app_server, emulator, emulator_user):
    from datetime import datetime, timedelta

    from azure.data.tables import UpdateMode

    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        [row] = state_rows()
        storage.table(storage.Tables.OAUTH_STATES).update_entity(
            {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "expires_at": datetime.now(UTC) - timedelta(seconds=1)},
            mode=UpdateMode.MERGE,
        )
        response = browser.open(callback)
    assert response.status_code == 400 and "expired" in response.text
    assert_offers_connect_again(response, app_server)
    assert token_requests(emulator) == []


def test_oversized_connect_parameters_are_refused(app_server):
    assert create_session(app_server.url, ref="r" * 513).json()["error"]["code"] == "invalid_ref"
    with Browser() as browser:
        response = browser.http.get(connect_url(app_server.url) + "&padding=" + "p" * 2049)
    assert response.status_code == 400
    assert state_rows() == []


def test_error_pages_escape_what_they_show(app_server, emulator, emulator_user):
    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        state = query_of(callback)["state"]
        page = browser.open(f"{app_server.url}/api/oauth/callback?state={state}&error=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert rows(storage.Tables.CONNECTIONS) == []


def test_expired_states_of_abandoned_sign_ins_are_purged(app_server):
    from datetime import datetime, timedelta

    from functions.signin import flow as signin

    with Browser() as browser:
        browser.http.get(connect_url(app_server.url))
        browser.http.get(connect_url(app_server.url))
    assert signin.purge_expired_states() == 0
    assert signin.purge_expired_states(now=datetime.now(UTC) + timedelta(minutes=11)) == 2
    assert state_rows() == []


def test_microsoft_unavailable_at_the_callback_gives_a_503_page_and_stores_nothing(app_server, emulator, emulator_user, monkeypatch):
    from functions.microsoft import transport

    monkeypatch.setattr(transport, "BASE_BACKOFF_SECONDS", 0.01)  # keep the retries, not their wait
    with Browser() as browser:
        callback = callback_url_of(app_server, emulator, browser)
        emulator.faults.inject(method="POST", path=r"/oauth2/v2.0/token$", status=503)
        page = browser.open(callback)
    assert page.status_code == 503 and "try again" in page.text
    assert len(token_requests(emulator)) == transport.MAX_ATTEMPTS
    assert rows(storage.Tables.CONNECTIONS) == [] and rows(storage.Tables.TOKENS) == []


def test_a_refused_client_secret_shows_a_configuration_page_without_the_secret(app_server, emulator, emulator_user, monkeypatch, caplog):
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "wrong-secret-value")
    reload_settings()
    with Browser() as browser:
        page = browser.open(callback_url_of(app_server, emulator, browser))
    assert page.status_code == 500 and "not set up correctly" in page.text
    assert "wrong-secret-value" not in page.text
    assert any("MICROSOFT_CLIENT_SECRET" in r.getMessage() for r in caplog.records)
    assert not any("wrong-secret-value" in r.getMessage() for r in caplog.records)
    assert rows(storage.Tables.CONNECTIONS) == []


def test_a_refused_subscription_does_not_fail_the_sign_in(app_server, emulator, emulator_user):
    # The maintenance timer creates missing subscriptions later; the user is connected now.
    emulator.faults.inject(method="POST", path=r"/v1.0/subscriptions$", status=403)
    connected = connect_drive(app_server, emulator, emulator_user)
    assert connected.final_page.status_code == 200
    assert connections.require(connected.connection_id).state == connections.ConnectionState.ACTIVE
    assert {"connection_id": connected.connection_id, "reason": "initial"} in queued_syncs()


def test_every_sign_in_page_but_success_offers_connect_again():
    import inspect

    from functions.signin import pages

    made = {name: function for name, function in inspect.getmembers(pages, inspect.isfunction)
            if function.__module__ == pages.__name__ and name not in ("render", "connected")}
    assert {"denied", "bad_request", "unavailable", "misconfigured"} <= set(made)
    for name, function in made.items():
        arguments = {"error": "access_denied", "return_to": "", "message": "m"}
        wanted = {k: v for k, v in arguments.items() if k in inspect.signature(function).parameters}
        html = function(**wanted, again="https://again.example/start")
        assert '<a class="again" href="https://again.example/start">Connect again</a>' in html, name


def test_a_connect_link_on_another_name_of_this_machine_moves_to_the_public_origin_first(app_server, emulator):
    other = app_server.url.replace("127.0.0.1", "localhost")
    with Browser() as browser:
        moved = browser.http.get(f"{other}/api/connect?ref=user-7&return_to=http%3A%2F%2Flocalhost%3A3000%2Fdone")
    assert moved.status_code == 302
    assert moved.headers["Location"] == f"{app_server.url}/api/connect?ref=user-7&return_to=http%3A%2F%2Flocalhost%3A3000%2Fdone"
    assert "set-cookie" not in moved.headers  # nothing started on the wrong host name
    assert rows(storage.Tables.OAUTH_STATES) == []


def test_an_expired_client_secret_at_sign_in_is_recorded_app_wide_and_a_good_sign_in_clears_it(app_server, emulator, emulator_user):
    from functions.tokens import app_credentials

    expired = emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error="client_secret_expired")
    with Browser() as browser:
        page = browser.open(callback_url_of(app_server, emulator, browser))
    assert page.status_code == 500
    ok, detail = app_credentials.health()
    assert not ok and "AADSTS7000222" in detail
    emulator.faults.remove(expired.id)
    connect_drive(app_server, emulator, emulator_user)
    assert app_credentials.health()[0]
