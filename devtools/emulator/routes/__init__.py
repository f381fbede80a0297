"""HTTP: the Starlette apps of the two origins, built from the services."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from ..services import Services
from . import control, downloads, pages, signin
from .graph import Graph
from .middleware import FaultMiddleware
from .responses import graph_error


async def _not_found(request: Request, exc: Exception) -> Response:
    return graph_error(request, 404, "itemNotFound", "Not found")


def build_api_app(services: Services) -> FaultMiddleware:
    """Sign-in, Graph, the control API and the pages."""
    routes = [
        *signin.routes(services),
        *Graph(services).routes(),
        *control.routes(services),
        *pages.routes(services),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found})
    return FaultMiddleware(app, services.faults, services.request_log, host="api", state=services.state)


def build_download_app(services: Services) -> FaultMiddleware:
    """The pre-authenticated content host."""
    app = Starlette(routes=downloads.routes(services), exception_handlers={404: _not_found})
    return FaultMiddleware(app, services.faults, services.request_log, host="download", state=services.state)
