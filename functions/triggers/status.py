"""The status page (function key): connections and their health at /api/status, a browser of
each mirror at /api/status/connections/{id}?folder=, and /api/status/connect, which makes an
operator's connect session (no product user) and sends the browser to it. Rendering lives in
`status_page`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from functions.api.status_page import Page

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _html(render: Callable[[], Page]) -> func.HttpResponse:
    from functions.api import status_page

    try:
        page = render()
    except Exception:
        # Storage unreachable or similar: say so without internals; the log has the details.
        log.exception("status page failed")
        page = status_page.error_page("The status can't be read right now (storage unavailable?). Try again shortly.")
    return func.HttpResponse(page.html, status_code=page.status, headers={**status_page.HEADERS,
                             "Content-Type": "text/html; charset=utf-8"})


def _refresh(req: func.HttpRequest) -> bool:
    return str(req.params.get("refresh", "on")) != "off"


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_overview(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import status_page
    from functions.settings import settings

    connect_url = f"{settings().public_base_url}{status_page.Links(req.params.get('code'), True).connect()}"
    return _html(lambda: status_page.overview(key=req.params.get("code"), refresh=_refresh(req), connect_url=connect_url))


@bp.route(route="status/connect", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_connect(req: func.HttpRequest) -> func.HttpResponse:
    """A fresh single-use connect link on every visit: the link `scripts/run` prints keeps working."""
    from functions.api import status_page
    from functions.errors import StorageUnavailable
    from functions.signin import sessions

    try:
        created = sessions.create(sessions.Session(ref=""), require_ref=False)
    except StorageUnavailable:
        page = status_page.error_page("Storage is unavailable, so no connect link could be made. Try again shortly.")
        return func.HttpResponse(page.html, status_code=503, headers={**status_page.HEADERS, "Retry-After": "30",
                                 "Content-Type": "text/html; charset=utf-8"})
    return func.HttpResponse(status_code=302, headers={"Location": created.url, "Cache-Control": "no-store",
                                                       "Referrer-Policy": "no-referrer"})


@bp.route(route="status/connections/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_mirror(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import status_page

    return _html(lambda: status_page.mirror(req.route_params.get("id", ""), folder=req.params.get("folder", ""),
                                            key=req.params.get("code"), refresh=_refresh(req)))
