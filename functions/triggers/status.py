"""The status page (function key): connections and their health at /api/status, and a browser of
each mirror at /api/status/connections/{id}?folder=. Rendering lives in `status_page`."""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _html(render) -> func.HttpResponse:
    from functions.api import status_page

    try:
        page = render(status_page)
    except Exception:
        # Storage unreachable or similar: say so without internals; the log has the details.
        log.exception("status page failed")
        page = status_page.error_page("The status can't be read right now (storage unavailable?). Try again shortly.")
    return func.HttpResponse(page.html, status_code=page.status, headers={**status_page.HEADERS,
                             "Content-Type": "text/html; charset=utf-8"})


def _refresh(req: func.HttpRequest) -> bool:
    return req.params.get("refresh", "on") != "off"


@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_overview(req: func.HttpRequest) -> func.HttpResponse:
    from functions.settings import settings

    return _html(lambda page: page.overview(key=req.params.get("code"), refresh=_refresh(req),
                                            connect_url=f"{settings().public_base_url}/api/connect"))


@bp.route(route="status/connections/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_mirror(req: func.HttpRequest) -> func.HttpResponse:
    return _html(lambda page: page.mirror(req.route_params.get("id", ""), folder=req.params.get("folder", ""),
                                          key=req.params.get("code"), refresh=_refresh(req)))
