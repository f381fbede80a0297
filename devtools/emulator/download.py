"""The pre-authenticated download origin (microsoft.md §4).

Served on its own port, so it is another origin than Graph: a client must follow the 302 without
its Authorization header. URLs are signed (HMAC) and expire; the bytes served are the item's
*current* content, so a file changed after its delta answers with bytes that no longer match the
listed hash (sync-scenarios #16). Content is streamed in 64 KiB chunks: memory stays flat.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import TYPE_CHECKING, AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .drive import Drive, Item
from .errors import graph_error

if TYPE_CHECKING:
    from .server import Emulator

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Downloads:
    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu
        self.epoch = 0  # bumped by expire_download_urls(): every URL issued before dies

    def url_for(self, drive: Drive, item: Item) -> str:
        expires = int(time.time() + self.emu.options.download_url_lifetime)
        payload = _b64(json.dumps([drive.id, item.id, expires, self.epoch], separators=(",", ":")).encode())
        return f"{self.emu.download_base_url}/download/{payload}.{self._sign(payload)}/{quote(item.name)}"

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.emu.signing_key, payload.encode(), hashlib.sha256).digest()[:18])

    def routes(self) -> list[Route]:
        return [Route("/download/{token}/{name:path}", self.download, methods=["GET", "HEAD"])]

    async def download(self, request: Request) -> Response:
        payload, _, signature = request.path_params["token"].partition(".")
        try:
            if not hmac.compare_digest(signature, self._sign(payload)):
                raise ValueError("signature")
            drive_id, item_id, expires, epoch = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return JSONResponse({"error": {"code": "unauthenticated", "message": "Invalid URL."}}, status_code=401)
        if epoch != self.epoch or time.time() >= expires:
            return JSONResponse(
                {"error": {"code": "unauthenticated", "message": "The download URL has expired."}}, status_code=401
            )
        if self.emu.options.reject_auth_on_download and request.headers.get("authorization"):
            # The URL is pre-authenticated; a bearer token meant for Graph doesn't belong here.
            return JSONResponse(
                {"error": {"code": "unauthenticated", "message": "Unexpected Authorization header."}}, status_code=401
            )
        drive = self.emu.drive_by_id(drive_id)
        item = drive.get(item_id) if drive is not None else None
        if item is None or item.deleted or item.content is None:
            return graph_error(request, 404, "itemNotFound", "Item not found")
        if item.malware:
            return graph_error(request, 403, "malwareDetected", "Malware detected in this file.")
        content = item.content
        size = content.size
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            "ETag": item.etag,
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item.name)}",
        }
        start, end, status = 0, size, 200
        range_header = request.headers.get("range")
        if range_header and not self.emu.options.ignore_range:
            match = RANGE.match(range_header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start = int(first)
                    end = min(int(last) + 1, size) if last else size
                else:
                    start = max(size - int(last), 0)
                if start >= size or start >= end:
                    return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)

        async def body() -> AsyncIterator[bytes]:
            for chunk in content.chunks(start, end):
                yield chunk

        return StreamingResponse(body(), status_code=status, headers=headers)
