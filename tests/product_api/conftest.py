"""A mirror written the way the sync worker writes it (the contract): connection rows made with
`connections.save_profile`, blobs `{connection_id}/{path}` with item_id, etag, quickxorhash metadata."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
import quickxorhash

from functions import connections, storage
from functions.settings import reload_settings

_accounts = itertools.count(1)


def quick_xor_hash(data: bytes) -> str:
    digest = quickxorhash.quickxorhash()
    digest.update(data)
    return base64.b64encode(digest.digest()).decode()


@dataclass
class MirroredDrive:
    connection_id: str
    ref: str

    def write(self, path: str, data: bytes, *, item_id: str | None = None) -> None:
        """Put a file into this connection's mirror, with the metadata the sync worker sets."""
        storage.files_container().upload_blob(
            f"{self.connection_id}/{path}", data, overwrite=True,
            metadata={"item_id": quote(item_id or f"ITEM!{path}", safe=""), "etag": '"{abc},1"',
                      "quickxorhash": quick_xor_hash(data)},
        )


@pytest.fixture
def connect(app_settings) -> Callable[..., MirroredDrive]:
    """Make a connection (as sign-in would) for product user `ref`; returns its mirror."""
    def make(ref: str = "product-user-1", *, email: str = "ada@example.com") -> MirroredDrive:
        number = next(_accounts)
        connection = connections.save_profile(account_id=f"account{number:06x}", drive_id=f"drive{number:06x}",
                                              display_name=f"User {number}", email=email, ref=ref)
        return MirroredDrive(connection.connection_id, ref)

    return make


@pytest.fixture
def drive(connect) -> MirroredDrive:
    return connect()


@pytest.fixture
def api(app_server) -> Iterator[httpx.Client]:
    """The product API with the function key, as the product calls it."""
    with app_server.client(timeout=30) as client:
        yield client


@pytest.fixture
def download_settings(monkeypatch) -> Callable[..., None]:
    """Change the download settings for this test (the app reads settings lazily, in-process)."""
    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        reload_settings()

    yield apply
    reload_settings()


def all_pages(api, url: str, key: str, **params) -> tuple[list[dict], int]:
    """Follow `nextCursor` through every page of a listing: (the entries under `key`, pages)."""
    entries, pages, cursor = [], 0, None
    while True:
        response = api.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        pages += 1
        entries += response.json()[key]
        cursor = response.json()["nextCursor"]
        if not cursor:
            return entries, pages
