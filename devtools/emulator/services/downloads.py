"""Pre-authenticated download URLs (microsoft.md §4): issued for an item, checked when used.

URLs are signed (HMAC with the state's key) and expire; what they serve is the item's *current*
content, so a file changed after its delta answers with bytes that no longer match the listed
hash (sync-scenarios #16). ``routes/downloads.py`` serves the bytes (ranges, streaming).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from urllib.parse import quote

from ..drive import Drive, Item
from ..errors import DownloadError, GraphError
from ..state import State


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(state: State, payload: str) -> str:
    return _b64(hmac.new(state.signing_key, payload.encode(), hashlib.sha256).digest()[:18])


def signed_url(state: State, drive: Drive, item: Item) -> str:
    expires = int(time.time() + state.options.download_url_lifetime)
    payload = _b64(json.dumps([drive.id, item.id, expires, state.download_epoch], separators=(",", ":")).encode())
    return f"{state.download_base_url}/download/{payload}.{_sign(state, payload)}/{quote(item.name)}"


class Downloads:
    def __init__(self, state: State) -> None:
        self.state = state

    def url_for(self, drive: Drive, item: Item) -> str:
        return signed_url(self.state, drive, item)

    def expire_urls(self) -> None:
        self.state.download_epoch += 1
        self.state.changed()

    def resolve(self, token: str, authorization: str | None) -> Item:
        """The item a download URL names, or ``DownloadError`` / ``GraphError`` as the host answers."""
        state = self.state
        payload, _, signature = token.partition(".")
        try:
            if not hmac.compare_digest(signature, _sign(state, payload)):
                raise ValueError("signature")
            drive_id, item_id, expires, epoch = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            raise DownloadError(401, "unauthenticated", "Invalid URL.") from None
        if epoch != state.download_epoch or time.time() >= expires:
            raise DownloadError(401, "unauthenticated", "The download URL has expired.")
        if authorization and not state.options.allow_auth_on_download:
            # The URL is pre-authenticated; a bearer token meant for Graph doesn't belong here.
            raise DownloadError(401, "unauthenticated", "Unexpected Authorization header.")
        drive = state.drive_by_id(drive_id)
        item = drive.get(item_id) if drive is not None else None
        if item is None or item.deleted or item.content is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        if item.malware:
            raise GraphError(403, "malwareDetected", "Malware detected in this file.")
        return item
