"""The status page (function key): connections and their health at /api/status, a browser of
each mirror at /api/status/connections/{id}?folder=, and /api/status/connect, which makes an
operator's connect session (no product user) and sends the browser to it. Rendering lives in
`status_page`.

And GET /api/health (anonymous): app-wide faults (settings, storage, ...) as JSON, 200 when healthy
and 503 when not. Anonymous because what probes it (App Service health check, availability tests,
a load balancer) can't carry a function key; it tells no secret: only the names of the checks, the
settings at fault and what they expect (functions/health.py).
"""

from __future__ import annotations

import json
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
    from functions.settings import SettingsError

    try:
        page = render()
    except SettingsError as error:
        # A setting this page needs is wrong: say which, as the health endpoint does.
        log.error("status page: %s", error)
        page = status_page.error_page(f"A setting is not valid: {error}")
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

    def render() -> Page:
        # Inside the render: a bad PUBLIC_BASE_URL is reported on the page, not as a 500.
        connect_url = f"{settings().public_base_url}{status_page.Links(req.params.get('code'), True).connect()}"
        return status_page.overview(key=req.params.get("code"), refresh=_refresh(req), connect_url=connect_url)

    return _html(render)


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


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from functions import health as checks

    report = checks.run()
    for fault in report.faults:
        log.error("health: %s", fault.message, extra={"check": fault.check, "setting": fault.setting})
    return func.HttpResponse(json.dumps(report.to_public(), separators=(",", ":")), status_code=200 if report.healthy else 503,
                             mimetype="application/json", headers={"Cache-Control": "no-store"})
