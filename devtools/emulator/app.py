"""Starlette apps for the two origins."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from .errors import graph_error
from .faults import FaultMiddleware

if TYPE_CHECKING:
    from .server import Emulator


async def _not_found(request: Request, exc: Exception) -> Response:
    return graph_error(request, 404, "itemNotFound", "Not found")


def build_api_app(emu: "Emulator"):
    from . import control, pages

    routes = [
        *emu.identity.routes(),
        *emu.graph.routes(),
        *control.routes(emu),
        *pages.routes(emu),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    return FaultMiddleware(app, emu.faults, emu.request_log, host="api")


def build_download_app(emu: "Emulator"):
    app = Starlette(routes=emu.downloads.routes(), exception_handlers={404: _not_found})
    return FaultMiddleware(app, emu.faults, emu.request_log, host="download")
