"""The pre-authenticated download origin (microsoft.md §4), on its own port.

Another origin than Graph: a client must follow the 302 without its Authorization header.
Content is streamed in 64 KiB chunks: memory stays flat whatever the file's size.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..drive import Item
from ..errors import DownloadError, GraphError
from ..services import Services
from ..state import State
from .responses import download_error, from_graph_error

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def serve_content(request: Request, item: Item, state: State) -> Response:
    """The item's bytes, with Range (206 + Content-Range, or 200 when ranges are ignored)."""
    content = item.content
    assert content is not None
    size = content.size
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "ETag": item.etag,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item.name)}",
    }
    start, end, status = 0, size, 200
    range_header = request.headers.get("range")
    if range_header and not state.options.ignore_range:
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

    rate = state.options.download_rate

    async def body() -> AsyncIterator[bytes]:
        started, sent = time.monotonic(), 0
        for chunk in content.chunks(start, end):
            yield chunk
            sent += len(chunk)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)

    return StreamingResponse(body(), status_code=status, headers=headers)


def routes(services: Services) -> list[Route]:
    async def download(request: Request) -> Response:
        try:
            item = services.downloads.resolve(request.path_params["token"], request.headers.get("authorization"))
        except DownloadError as error:
            return download_error(error)
        except GraphError as error:
            return from_graph_error(request, error)
        return serve_content(request, item, services.state)

    return [Route("/download/{token}/{name:path}", download, methods=["GET", "HEAD"])]
