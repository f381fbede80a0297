"""GET /api/connections (ref filter, paging), GET and DELETE /api/connections/{id}, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from functions import connections, storage
from tests.product_api.conftest import all_pages


def list_all(api: httpx.Client, **params) -> tuple[list[dict], int]:
    return all_pages(api, "/api/connections", "connections", **params)


def test_listing_by_ref_pages_through_exactly_that_users_connections(api, connect):
    alices = {connect("alice").connection_id for _ in range(5)}
    bobs = {connect("bob").connection_id for _ in range(2)}

    found, pages = list_all(api, ref="alice", limit=2)

    assert pages == 3
    assert {c["id"] for c in found} == alices
    assert all(c["ref"] == "alice" for c in found)
    assert [c["id"] for c in found] == sorted(alices)
    everyone, _ = list_all(api)
    assert {c["id"] for c in everyone} == alices | bobs


def test_a_connection_cursor_only_continues_the_listing_it_came_from(api, connect):
    for _ in range(3):
        connect("alice")
    cursor = api.get("/api/connections", params={"ref": "alice", "limit": 1}).json()["nextCursor"]
    assert cursor
    refused = api.get("/api/connections", params={"ref": "bob", "limit": 1, "cursor": cursor})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_cursor"


def test_a_connection_shows_state_account_sync_counts_and_expiry_but_never_a_token(api, drive):
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    connections.update(drive.connection_id, connections.Update(subscription_expires_at=expiry, items_copied=12, bytes_copied=3456,
                       last_sync_error="Graph HTTP 503"))

    response = api.get(f"/api/connections/{drive.connection_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == drive.connection_id
    assert body["state"] == "active"
    assert body["account"]["email"] == "ada@example.com"
    assert body["ref"] == drive.ref
    assert datetime.fromisoformat(body["subscriptionExpiresAt"]) == expiry
    assert body["lastSync"]["itemsCopied"] == 12 and body["lastSync"]["bytesCopied"] == 3456
    assert body["lastSync"]["error"] == "Graph HTTP 503"
    assert body["failedItems"] == [] and body["failedItemsTruncated"] is False
    assert "token" not in response.text.lower()


def test_a_connection_lists_its_failed_items_with_their_errors(api, connect):
    drive, other = connect(), connect()
    failed = storage.table(storage.Tables.FAILED_ITEMS)
    failed.create_entity({"PartitionKey": drive.connection_id, "RowKey": "ITEM1", "item_id": "ITEM1",
                          "path": "Photos/live.heic", "error": "size mismatch: listed 10, got 12", "attempts": 4})
    failed.create_entity({"PartitionKey": other.connection_id, "RowKey": "ITEM2", "item_id": "ITEM2",
                          "path": "elsewhere.txt", "error": "boom", "attempts": 1})

    body = api.get(f"/api/connections/{drive.connection_id}").json()

    assert [(f["itemId"], f["path"], f["error"], f["attempts"]) for f in body["failedItems"]] == [
        ("ITEM1", "Photos/live.heic", "size mismatch: listed 10, got 12", 4)]
    assert body["failedItems"][0]["updatedAt"]


def test_a_parked_item_shows_where_it_lives_in_the_drive(api, drive):
    # Written by the sync engine's own functions: the id map from a delta page, then the park.
    from functions.microsoft.driveitem import DriveItem
    from functions.sync import itemrows

    page = [
        {"id": "ROOT", "name": "root", "root": {}, "folder": {}},
        {"id": "F1", "name": "Photos", "folder": {}, "parentReference": {"id": "ROOT"}},
        {"id": "I1", "name": "live.heic", "file": {"hashes": {}}, "size": 10, "parentReference": {"id": "F1"}},
    ]
    itemrows.record_delta_page(drive.connection_id, [DriveItem.from_graph(item) for item in page], epoch=None)
    itemrows.park(drive.connection_id, "I1", "size mismatch")
    itemrows.park(drive.connection_id, "I1", "size mismatch again")

    failed = api.get(f"/api/connections/{drive.connection_id}").json()["failedItems"]

    assert [(f["itemId"], f["path"], f["error"], f["attempts"]) for f in failed] == [
        ("I1", "Photos/live.heic", "size mismatch again", 2)]


def test_disconnecting_keeps_the_mirror_unless_asked(api, connect):
    kept, dropped = connect(), connect()
    kept.write("a.txt", b"keep me")
    dropped.write("b.txt", b"drop me")

    assert api.delete(f"/api/connections/{kept.connection_id}").status_code == 204
    assert api.delete(f"/api/connections/{dropped.connection_id}", params={"deleteMirror": "true"}).status_code == 204

    assert api.get(f"/api/connections/{kept.connection_id}").json()["state"] == "disconnected"
    assert api.get(f"/api/connections/{kept.connection_id}/files/a.txt").content == b"keep me"
    assert api.get(f"/api/connections/{dropped.connection_id}/files").json()["files"] == []
    # Idempotent: a second DELETE finds it disconnected and says so again.
    assert api.delete(f"/api/connections/{kept.connection_id}").status_code == 204


def test_a_bad_delete_mirror_value_is_refused_and_changes_nothing(api, drive):
    response = api.delete(f"/api/connections/{drive.connection_id}", params={"deleteMirror": "yes please"})
    assert response.status_code == 400
    assert api.get(f"/api/connections/{drive.connection_id}").json()["state"] == "active"


@pytest.mark.parametrize("connection_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "'; drop"])
def test_an_unknown_connection_is_404(api, app_settings, connection_id):
    assert api.get(f"/api/connections/{connection_id}").status_code == 404
    assert api.delete(f"/api/connections/{connection_id}").status_code == 404
    assert api.get(f"/api/connections/{connection_id}/files").status_code == 404


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "201"}, {"limit": "²"}, {"cursor": "%%%"}, {"ref": "a\x00b"}])
def test_bad_listing_parameters_are_400(api, app_settings, params):
    assert api.get("/api/connections", params=params).status_code == 400


ROUTES = [
    ("GET", "/api/connections"),
    ("GET", "/api/connections/{id}"),
    ("DELETE", "/api/connections/{id}"),
    ("GET", "/api/connections/{id}/files"),
    ("GET", "/api/connections/{id}/files/a.txt"),
]


@pytest.mark.parametrize("method,route", ROUTES)
def test_no_access_without_the_function_key(app_server, drive, method, route):
    drive.write("a.txt", b"private")
    url = app_server.url + route.format(id=drive.connection_id)
    for headers in ({}, {"x-functions-key": "wrong"}):
        response = httpx.request(method, url, headers=headers, timeout=30)
        assert response.status_code == 401
        assert b"private" not in response.content
    assert api_state(app_server, drive.connection_id) == "active"  # the refused DELETE changed nothing


def api_state(app_server, connection_id: str) -> str:
    with app_server.client() as client:
        return client.get(f"/api/connections/{connection_id}").json()["state"]


def test_the_openapi_document_is_public_and_describes_every_route(app_server):
    response = httpx.get(f"{app_server.url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) == {"/connect-sessions", "/connections", "/connections/{id}", "/connections/{id}/files",
                          "/connections/{id}/files/{path}", "/connections/{id}/content",
                          "/connections/{id}/selection", "/connections/{id}/picker-sessions"}
    assert set(paths["/connections/{id}"]) == {"get", "delete"}
