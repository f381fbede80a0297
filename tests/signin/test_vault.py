"""The token vault against the emulator's token endpoint, with Azurite as the table store."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from devtools.keys import new_key_entry
from functions import connections, storage
from functions.errors import ReauthRequired
from functions.microsoft.graph import GraphClient
from functions.microsoft.identity import CredentialsRejected
from functions.settings import reload_settings
from functions.tokens import keyring, vault
from tests.fixtures.connected import Browser, connect_drive, connect_url, query_of


def token_requests(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token")]


def stored(connection_id: str) -> dict:
    """The raw token row, and what it holds once opened (as the vault would)."""
    row = storage.table(storage.Tables.TOKENS).get_entity(connection_id, "current")
    return {"row": row, **json.loads(keyring.open_sealed(row["sealed"], connection_id))}


def use_keys(monkeypatch, *entries: str) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", ",".join(entries))
    reload_settings()
    vault.forget_cached_tokens()  # as a freshly started process would


def test_the_access_token_is_reused_while_it_has_more_than_five_minutes(connected_drive, emulator):
    exchanges = len(token_requests(emulator))
    vault.forget_cached_tokens()
    first = vault.access_token(connected_drive.connection_id)
    assert vault.access_token(connected_drive.connection_id) == first
    assert len(token_requests(emulator)) == exchanges
    assert first == stored(connected_drive.connection_id)["access_token"]


def test_a_token_within_five_minutes_of_expiry_is_refreshed_and_the_refresh_token_rotated(app_server, emulator, emulator_user):
    emulator.access_token_lifetime = 240  # already inside the 5-minute margin when issued
    connected = connect_drive(app_server, emulator, emulator_user)
    before, asked = stored(connected.connection_id), len(token_requests(emulator))
    token = vault.access_token(connected.connection_id)
    after = stored(connected.connection_id)
    assert token != before["access_token"] and token == after["access_token"]
    assert after["refresh_token"] != before["refresh_token"]
    assert len(token_requests(emulator)) == asked + 1
    assert connections.require(connected.connection_id).last_token_refresh_at is not None


def test_graph_refusing_a_token_gets_a_fresh_one_once(connected_drive, emulator, emulator_user):
    emulator.expire_access_tokens(emulator_user)
    asked = len(token_requests(emulator))
    graph = GraphClient(connected_drive.connection_id, vault.token_source(connected_drive.connection_id))
    assert graph.me().id == emulator_user.id
    assert len(token_requests(emulator)) == asked + 1


def test_two_concurrent_refreshes_keep_one_chain_and_the_stored_token_still_works(connected_drive, emulator, caplog):
    connection_id = connected_drive.connection_id
    original, asked = stored(connection_id)["refresh_token"], len(token_requests(emulator))
    # Both refreshes read the row before either writes: the token endpoint answers slowly.
    emulator.faults.inject(method="POST", path=r"/oauth2/v2.0/token$", kind="latency", latency=0.5, times=2)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def refresh() -> None:
        start.wait()
        try:
            vault.refresh(connection_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    with caplog.at_level(logging.INFO, logger="functions.tokens.vault"):
        threads = [threading.Thread(target=refresh) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert len(token_requests(emulator)) == asked + 2
    assert any("concurrently" in r.getMessage() for r in caplog.records), "the ETag conflict did not happen"

    winner = stored(connection_id)
    assert winner["refresh_token"] != original
    vault.forget_cached_tokens()
    assert vault.access_token(connection_id) == winner["access_token"]  # the loser did not overwrite it
    vault.refresh(connection_id)  # the stored refresh token is accepted by Microsoft
    assert stored(connection_id)["refresh_token"] != winner["refresh_token"]


@pytest.mark.parametrize("break_it", ["revoke_consent", "expire_refresh_tokens"])
def test_a_refused_refresh_token_needs_a_new_sign_in_and_reconnecting_fixes_it(app_server, connected_drive, emulator, emulator_user, break_it):
    connection_id = connected_drive.connection_id
    getattr(emulator, break_it)(emulator_user)
    with pytest.raises(ReauthRequired):
        vault.refresh(connection_id)
    connection = connections.require(connection_id)
    assert connection.state == connections.ConnectionState.REAUTH_REQUIRED
    assert "/api/connect" in connection.last_sync_error

    asked = len(token_requests(emulator))
    with pytest.raises(ReauthRequired):
        vault.access_token(connection_id, force_refresh=True)
    assert len(token_requests(emulator)) == asked  # no more asking Microsoft with a dead token

    connect_drive(app_server, emulator, emulator_user)
    assert connections.require(connection_id).state == connections.ConnectionState.ACTIVE
    vault.refresh(connection_id)
    assert GraphClient(connection_id, vault.token_source(connection_id)).me().id == emulator_user.id


@pytest.mark.parametrize("refusal", ["interaction_required", "consent_required", "login_required"])
def test_a_refresh_that_needs_the_user_marks_the_connection_for_sign_in(app_server, connected_drive, emulator, emulator_user, refusal):
    connection_id = connected_drive.connection_id
    fault = emulator.faults.inject(method="POST", path="/oauth2/v2.0/token$", token_error=refusal)
    with pytest.raises(ReauthRequired):
        vault.refresh(connection_id)
    assert connections.require(connection_id).state == connections.ConnectionState.REAUTH_REQUIRED
    emulator.faults.remove(fault.id)
    connect_drive(app_server, emulator, emulator_user)
    assert connections.require(connection_id).state == connections.ConnectionState.ACTIVE


def test_a_refused_client_secret_is_a_configuration_error_not_a_reauth(connected_drive, monkeypatch):
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "not-the-secret")
    reload_settings()
    with pytest.raises(CredentialsRejected) as raised:
        vault.refresh(connected_drive.connection_id)
    assert "MICROSOFT_CLIENT_SECRET" in str(raised.value) and "not-the-secret" not in str(raised.value)
    assert connections.require(connected_drive.connection_id).state == connections.ConnectionState.ACTIVE


def test_transient_token_endpoint_failures_are_retried(connected_drive, emulator):
    emulator.faults.inject(method="POST", path=r"/oauth2/v2.0/token$", status=503, times=2)
    vault.refresh(connected_drive.connection_id)
    assert [r["status"] for r in token_requests(emulator)][-3:] == [503, 503, 200]


def test_key_rotation_keeps_connections_readable_and_reseals_on_the_next_write(connected_drive, app_settings, monkeypatch):
    connection_id = connected_drive.connection_id
    old = app_settings["TOKEN_ENCRYPTION_KEYS"]
    assert stored(connection_id)["row"]["key_id"] == "test1"

    new = new_key_entry("test2")
    use_keys(monkeypatch, new, old)
    token = vault.access_token(connection_id)  # read with the old key
    assert token == stored(connection_id)["access_token"]
    assert stored(connection_id)["row"]["key_id"] == "test1"  # reading does not rewrite

    vault.refresh(connection_id)  # the next write seals with the newest key
    assert stored(connection_id)["row"]["key_id"] == "test2"

    use_keys(monkeypatch, new)  # the old key retired
    assert vault.access_token(connection_id) == stored(connection_id)["access_token"]


def test_raw_table_rows_contain_no_token_or_code_text(connected_drive, emulator):
    vault.refresh(connected_drive.connection_id)
    secrets = list(emulator.identity.access_tokens) + list(emulator.identity.refresh_tokens) + list(emulator.identity.codes)
    assert len(secrets) >= 5
    for table in storage.Tables.ALL:
        for row in storage.table(table).list_entities():
            text = json.dumps(row, default=str)
            assert not any(secret in text for secret in secrets), f"a token or code in table {table}"


def test_no_token_code_state_or_secret_reaches_the_logs(app_server, emulator, emulator_user, caplog):
    main_thread = threading.get_ident()
    emulator.auto_consent = True
    with caplog.at_level(logging.DEBUG):
        with Browser() as browser:
            page = browser.open(connect_url(app_server.url, ref="someone"))
            assert page.status_code == 200
            state = query_of(browser.hops[0].headers["Location"])["state"]
            cookie = browser.hops[0].headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        connection_id = connections.connection_id_for(emulator_user.id)

        def app_work() -> None:  # on another thread, so its lines are told apart from the browser's
            vault.refresh(connection_id)
            emulator.expire_access_tokens(emulator_user)
            GraphClient(connection_id, vault.token_source(connection_id)).drive()

        worker = threading.Thread(target=app_work)
        worker.start()
        worker.join(30)
    secrets = [emulator.client_secret, state, cookie]
    secrets += list(emulator.identity.access_tokens) + list(emulator.identity.refresh_tokens) + list(emulator.identity.codes)
    secrets += [row["sealed"] for row in storage.table(storage.Tables.TOKENS).list_entities()]
    assert len(secrets) >= 9
    # Lines the test's own browser logged (httpx prints the URLs it opens) are not the app's.
    app_lines = [r for r in caplog.records if not (r.name.startswith(("httpx", "httpcore")) and r.thread == main_thread)]
    assert any(r.name == "functions.tokens.vault" for r in app_lines), "the capture missed the app's lines"
    for record in app_lines:
        text = record.getMessage() + " " + json.dumps(vars(record), default=str)
        leaked = [s for s in secrets if s and s in text]
        assert not leaked, f"{record.name}: {record.getMessage()[:200]}"


def test_a_dropped_connection_to_the_token_endpoint_is_retried(connected_drive, emulator):
    emulator.faults.inject(method="POST", path=r"/oauth2/v2.0/token$", kind="reset", times=1)
    before = stored(connected_drive.connection_id)["refresh_token"]
    vault.refresh(connected_drive.connection_id)
    assert stored(connected_drive.connection_id)["refresh_token"] != before


def test_temporarily_unavailable_from_the_token_endpoint_is_retried(monkeypatch):
    """Microsoft can answer 400 `temporarily_unavailable`; the emulator's faults send it only with 5xx,
    so a minimal token endpoint over real HTTP stands in for this one behaviour."""
    from urllib.parse import parse_qs

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from devtools.serving import ServerThread
    from functions.microsoft import identity, transport

    answers = [
        JSONResponse({"error": "temporarily_unavailable", "error_codes": [90033]}, status_code=400),
        JSONResponse({"error": "temporarily_unavailable", "error_codes": [90033]}, status_code=400),
        JSONResponse({"token_type": "Bearer", "access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3599}),
    ]
    seen: list[str] = []

    async def token(request):
        seen.append(parse_qs((await request.body()).decode())["grant_type"][0])
        return answers.pop(0)

    monkeypatch.setattr(transport, "BASE_BACKOFF_SECONDS", 0.01)
    with ServerThread(Starlette(routes=[Route("/consumers/oauth2/v2.0/token", token, methods=["POST"])])) as server:
        for name, value in {
            "MICROSOFT_AUTHORITY": f"{server.url}/consumers",
            "MICROSOFT_CLIENT_ID": "client",
            "MICROSOFT_CLIENT_SECRET": "secret",
            "TOKEN_ENCRYPTION_KEYS": new_key_entry("k1"),
        }.items():
            monkeypatch.setenv(name, value)
        reload_settings()
        try:
            tokens = identity.refresh("rt-1")
        finally:
            reload_settings()
    assert seen == ["refresh_token"] * 3
    assert (tokens.access_token, tokens.refresh_token) == ("at-2", "rt-2")
