"""The status page: connections and their health, a browser of each mirror, escaped, never a token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from functions import connections, storage

HOSTILE = '<script>alert("x")</script>'


def add_connection(account_id: str, name: str, email: str, **fields) -> str:
    connection = connections.save_profile(account_id=account_id, drive_id=f"d{account_id}", display_name=name,
                                          email=email, ref="")
    state = fields.pop("state", None)
    if fields:
        connections.update(connection.connection_id, connections.Update(**fields))
    if state:
        connections.set_state(connection.connection_id, connections.ConnectionState(state))
    return connection.connection_id


def put_blob(connection_id: str, path: str, data: bytes, quick_xor: str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") -> None:
    storage.files_container().upload_blob(f"{connection_id}/{path}", data, overwrite=True,
                                          metadata={"item_id": "ID" + str(len(path)), "etag": "e", "quickxorhash": quick_xor})


@pytest.fixture
def status(app_server):
    with app_server.client(timeout=30) as client:
        yield client


def test_status_needs_the_function_key(app_server):
    assert httpx.get(f"{app_server.url}/api/status").status_code == 401
    assert httpx.get(f"{app_server.url}/api/status", params={"code": "wrong"}).status_code == 401


def test_status_shows_each_connection_with_state_sync_counts_errors_and_subscription(status):
    now = datetime.now(UTC)
    ada = add_connection("a1", "Ada Lovelace", "ada@example.com", items_copied=12, items_failed=2, bytes_copied=3 * 1024 * 1024,
                         last_sync_started_at=now - timedelta(minutes=3), last_sync_finished_at=now - timedelta(minutes=2),
                         subscription_id="sub-1", subscription_expires_at=now + timedelta(days=2),
                         last_sync_error="Graph said <b>503</b>")
    add_connection("b2", HOSTILE, "bob@example.com", state="reauth_required",
                   subscription_id="sub-2", subscription_expires_at=now - timedelta(hours=1))

    page = status.get("/api/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer" and "script-src" not in page.headers["content-security-policy"]
    text = page.text
    assert "Ada Lovelace" in text and "ada@example.com" in text and ada in text
    assert "12 copied" in text and "2 failed" in text and "3.0 MB copied" in text
    assert "Graph said &lt;b&gt;503&lt;/b&gt;" in text  # errors shown, escaped
    assert "Sign-in needed" in text and "Active" in text
    assert re.search(r"expires <time[^>]*>in 1 d", text)
    assert "expired 1 h ago" in text
    assert HOSTILE not in text and "&lt;script&gt;" in text
    assert '<meta http-equiv="refresh"' in text


def test_status_never_shows_a_token(status):
    from functions.tokens import vault

    connection_id = add_connection("c3", "Carol", "carol@example.com")
    vault.store(connection_id, vault.TokenSet("ACCESS-TOKEN-VALUE-123", "REFRESH-TOKEN-VALUE-456",
                                              datetime.now(UTC) + timedelta(hours=1), "Files.Read"))
    pages = [status.get("/api/status").text, status.get(f"/api/status/connections/{connection_id}").text]
    for text in pages:
        assert "Carol" in text
        assert "TOKEN-VALUE" not in text


def test_queue_depths_and_poison_messages_are_visible(status):
    storage.queue(storage.Queues.SYNC).send_message("{}")
    storage.queue(storage.poison_queue(storage.Queues.SYNC)).send_message("{}")
    storage.queue(storage.poison_queue(storage.Queues.SYNC)).send_message("{}")
    text = status.get("/api/status").text
    assert re.search(r'sync-requests</div><div class="figure">1</div><div class="sub warn">2 in sync-requests-poison', text)


def test_mirror_browser_lists_folders_then_files_and_links_downloads(status, app_server):
    connection_id = add_connection("d4", "Dora", "dora@example.com")
    put_blob(connection_id, "top.txt", b"top")
    put_blob(connection_id, "Docs/a b#%.txt", b"hello docs")
    put_blob(connection_id, "Docs/Sub/deep.bin", b"\x00" * 2048)

    root = status.get(f"/api/status/connections/{connection_id}", params={"code": app_server.function_key}).text
    assert root.index("Docs/</a>") < root.index("top.txt</a>")
    assert "deep.bin" not in root  # one folder at a time

    docs = status.get(f"/api/status/connections/{connection_id}", params={"folder": "Docs", "code": app_server.function_key}).text
    assert "Sub/</a>" in docs and "a b#%.txt</a>" in docs and "10 B" in docs
    link = re.search(r'<a href="([^"]+)">a b#%.txt</a>', docs).group(1).replace("&amp;", "&")
    assert link.startswith(f"/api/connections/{connection_id}/content?path=Docs%2Fa%20b%23%25.txt&code=")
    assert httpx.get(app_server.url + link).content == b"hello docs"  # the key rides along in the link
    # Names holding what looks like an encoded separator are listed, so their links must work too.
    for name in ("x%2Fy.txt", "x%5Cy.txt", "%2e%2e", "%2e%2e%2Fsecret", "100%.txt"):
        put_blob(connection_id, f"Docs/{name}", name.encode())
        page = status.get(f"/api/status/connections/{connection_id}", params={"folder": "Docs", "code": app_server.function_key}).text
        link = re.search(rf'<a href="([^"]+)">{re.escape(name)}</a>', page).group(1).replace("&amp;", "&")
        answer = httpx.get(app_server.url + link)
        assert answer.status_code == 200 and answer.content == name.encode(), (name, answer.text)

    sub = status.get(f"/api/status/connections/{connection_id}", params={"folder": "Docs/Sub/"}).text
    assert "deep.bin" in sub and "2.0 KB" in sub
    assert ">Docs</a>" in sub  # breadcrumbs lead back up


@pytest.mark.parametrize("folder", ["../other", "a//b", "x\\y", "Docs/\x01"])
def test_mirror_browser_refuses_unsafe_folders(status, folder):
    connection_id = add_connection("e5", "Eve", "eve@example.com")
    response = status.get(f"/api/status/connections/{connection_id}", params={"folder": folder})
    assert response.status_code == 400
    assert "Invalid prefix" in response.text


@pytest.mark.parametrize("connection_id", ["00000000-0000-0000-0000-000000000000", "not-an-id", "%2e%2e"])
def test_unknown_connection_is_a_404_page(status, connection_id):
    response = status.get(f"/api/status/connections/{connection_id}")
    assert response.status_code == 404
    assert "No connection with this id" in response.text


def test_auto_refresh_can_be_paused(status):
    paused = status.get("/api/status", params={"refresh": "off"}).text
    assert 'http-equiv="refresh"' not in paused
    assert re.search(r'<a href="/api/status[^"]*">Resume auto-refresh</a>', paused)


def test_empty_status_offers_the_connect_link(status, app_settings):
    text = status.get("/api/status").text
    assert "No OneDrive connected yet." in text
    link = re.search(r'href="([^"]*/api/status/connect[^"]*)"', text).group(1)
    assert link.startswith(app_settings["PUBLIC_BASE_URL"])
    # The link makes a fresh connect session on every visit, so it never goes stale.
    for _ in range(2):
        redirect = status.get(link.replace("&amp;", "&"), follow_redirects=False)
        assert redirect.status_code == 302 and "/api/connect?session=" in redirect.headers["location"]
        assert httpx.get(redirect.headers["location"], follow_redirects=False).status_code == 302


def test_mirror_page_lists_items_that_could_not_be_mirrored(status):
    connection_id = add_connection("f6", "Fay", "fay@example.com", items_failed=1)
    storage.table(storage.Tables.FAILED_ITEMS).upsert_entity({
        "PartitionKey": connection_id, "RowKey": "ITEM1", "item_id": "ITEM1", "path": "Photos/live.heic",
        "error": "size <mismatch> after 3 tries", "attempts": 3})
    text = status.get(f"/api/status/connections/{connection_id}").text
    assert "Items that could not be mirrored" in text
    assert "Photos/live.heic" in text and "(3 attempts)" in text and "size &lt;mismatch&gt; after 3 tries" in text


def test_one_wording_per_state_on_the_badges_and_in_the_summary(status):
    add_connection("r1", "Rita", "rita@example.com", state="reauth_required")
    add_connection("a2", "Abe", "abe@example.com")
    text = status.get("/api/status").text
    assert "1 sign-in needed" in text and "1 active" in text and "Sign-in needed" in text
    words = re.sub(r"<style>.*?</style>|<[^>]+>", " ", text, flags=re.S)
    assert "reauth" not in words  # the state's code name stays out of what a person reads


def test_a_disconnected_connection_shows_no_expired_subscription(status):
    past = datetime.now(UTC) - timedelta(minutes=6)
    add_connection("x1", "Xena", "xena@example.com", state="disconnected", subscription_id="sub-x",
                   subscription_expires_at=past)
    text = status.get("/api/status").text
    assert "Disconnected" in text and "expired" not in text and "none (disconnected)" in text


def test_each_connection_links_to_its_mirror_as_a_visible_link(status, app_server):
    connection_id = add_connection("m1", "Mo", "mo@example.com")
    text = status.get("/api/status", params={"code": app_server.function_key}).text
    assert re.search(rf'<a class="browse" href="/api/status/connections/{connection_id}\?code=[^"]+">Browse the mirror', text)
    assert ".account{font-weight:600;text-decoration:underline}" in text


def test_a_bad_setting_is_named_on_the_status_page_which_still_works(status, monkeypatch):
    from functions.settings import reload_settings

    add_connection("s1", "Sam", "sam@example.com")
    monkeypatch.setenv("DOWNLOAD_REDIRECT", "sometimes")
    reload_settings()
    page = status.get("/api/status")
    assert page.status_code == 200 and "Sam" in page.text
    assert "Settings need fixing" in page.text and "DOWNLOAD_REDIRECT" in page.text and "affects downloads" in page.text


def test_a_setting_the_page_itself_needs_is_reported_as_a_setting_not_as_storage(status, monkeypatch):
    from functions.settings import reload_settings

    monkeypatch.setenv("FILES_CONTAINER", "Bad_Name")
    reload_settings()
    connection_id = add_connection("f1", "Fay", "fay@example.com")
    page = status.get(f"/api/status/connections/{connection_id}")
    assert "FILES_CONTAINER" in page.text and "storage unavailable" not in page.text


def test_health_is_anonymous_and_healthy_with_good_settings_and_storage(app_server):
    response = httpx.get(f"{app_server.url}/api/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "healthy", "checks": {"settings": "ok", "storage": "ok", "client_secret": "ok"},
                               "faults": []}


def test_health_reports_a_client_secret_microsoft_refuses_until_it_is_accepted_again(app_server):
    from functions.tokens import app_credentials

    app_credentials.rejected("Microsoft refused the app's credentials (invalid_client, AADSTS7000222)")
    response = httpx.get(f"{app_server.url}/api/health")
    assert response.status_code == 503, response.text
    [fault] = response.json()["faults"]
    assert fault["check"] == "client_secret" and fault["setting"] == "MICROSOFT_CLIENT_SECRET"
    assert "AADSTS7000222" in fault["message"] and "sync" in fault["features"]
    app_credentials.accepted()
    assert httpx.get(f"{app_server.url}/api/health").status_code == 200


@pytest.mark.parametrize("name,value,features", [
    ("DOWNLOAD_REDIRECT", "sometimes", ["downloads"]),
    ("SYNC_TIME_BUDGET_SECONDS", "eight minutes", ["sync"]),
    ("MAINTENANCE_SCHEDULE", "every 30 minutes", ["maintenance"]),
])
def test_health_names_a_bad_setting_and_the_features_it_stops(app_server, monkeypatch, name, value, features):
    from functions.settings import reload_settings

    monkeypatch.setenv(name, value)
    reload_settings()
    response = httpx.get(f"{app_server.url}/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "faulty" and body["checks"] == {"settings": "fault", "storage": "ok", "client_secret": "ok"}
    [fault] = body["faults"]
    assert fault["setting"] == name and fault["features"] == features and name in fault["message"]


def test_health_never_shows_a_secret(app_server, monkeypatch):
    from functions.settings import reload_settings

    secret = "k1:" + "A" * 40
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", secret)
    monkeypatch.delenv("MICROSOFT_CLIENT_SECRET")
    reload_settings()
    response = httpx.get(f"{app_server.url}/api/health")
    assert response.status_code == 503
    assert {f["setting"] for f in response.json()["faults"]} == {"TOKEN_ENCRYPTION_KEYS", "MICROSOFT_CLIENT_SECRET"}
    assert "A" * 40 not in response.text and "AccountKey" not in response.text


def test_health_reports_unreachable_storage_quickly(app_server, monkeypatch):
    from devtools.serving import free_port
    from functions.storage import development_connection_string

    dead = free_port()
    monkeypatch.setenv(storage.CONNECTION, development_connection_string(dead, dead, dead))
    response = httpx.get(f"{app_server.url}/api/health", timeout=20)
    assert response.status_code == 503
    [fault] = response.json()["faults"]
    assert fault["check"] == "storage" and "did not answer" in fault["message"] and "AccountKey" not in response.text
