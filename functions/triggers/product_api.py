"""The product API (function key): connect sessions, connections, file listings, downloads; and its OpenAPI document.

Thin: parse the request, call `connections_api` / `files_api`, shape the reply. Core modules are
imported inside the handlers (cold start).
"""

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)

_JSON = "application/json"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, separators=(",", ":")), status_code=status, mimetype=_JSON,
                             headers={"Cache-Control": "no-store", **(headers or {})})


def _answer(work: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    from functions.api.support import ApiError
    from functions.errors import StorageUnavailable

    try:
        return work()
    except ApiError as refused:
        return _json(refused.status, refused.to_body())
    except StorageUnavailable as error:
        log.error("product API: storage unavailable (%s)", error)
        return _json(503, {"error": {"code": "storage_unavailable", "message": "Storage is unavailable; retry later."}},
                     {"Retry-After": "30"})


@bp.route(route="connect-sessions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_connect_session(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import connect_sessions

    return _answer(lambda: _json(201, connect_sessions.create(req.get_body())))


@bp.route(route="connections", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_connections(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import connections as connections_api

    return _answer(lambda: _json(200, connections_api.list_connections(
        ref=req.params.get("ref"), cursor=req.params.get("cursor"), limit=req.params.get("limit"))))


@bp.route(route="connections/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_connection(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import connections as connections_api

    return _answer(lambda: _json(200, connections_api.get_connection(req.route_params.get("id", ""))))


@bp.route(route="connections/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_connection(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import connections as connections_api

    def work() -> func.HttpResponse:
        connections_api.delete_connection(req.route_params.get("id", ""), delete_mirror=req.params.get("deleteMirror"))
        return func.HttpResponse(status_code=204)

    return _answer(work)


@bp.route(route="connections/{id}/selection", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_selection(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import selection as selection_api

    return _answer(lambda: _json(200, selection_api.get_selection(req.route_params.get("id", ""))))


@bp.route(route="connections/{id}/selection", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
def put_selection(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import selection as selection_api

    return _answer(lambda: _json(200, selection_api.put_selection(req.route_params.get("id", ""), req.get_body())))


@bp.route(route="connections/{id}/files", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_files(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import files as files_api

    return _answer(lambda: _json(200, files_api.list_files(
        req.route_params.get("id", ""), prefix=req.params.get("prefix"),
        cursor=req.params.get("cursor"), limit=req.params.get("limit"))))


@bp.route(route="connections/{id}/files/{*path}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def download_file(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import files as files_api

    def work() -> func.HttpResponse:
        answer = files_api.download(
            req.route_params.get("id", ""), req.route_params.get("path", ""),
            request_headers={name.lower(): value for name, value in req.headers.items()}, request_url=req.url)
        # Content-Type travels as a header: `mimetype` would add a charset to text/* bytes.
        return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)

    return _answer(work)


@bp.route(route="connections/{id}/content", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def download_content(req: func.HttpRequest) -> func.HttpResponse:
    """The same download, the path in `?path=`: unambiguous for any name (a literal %2F, %5C, %2e%2e)."""
    from functions.api import files as files_api

    def work() -> func.HttpResponse:
        answer = files_api.download(
            req.route_params.get("id", ""), req.params.get("path", ""),
            request_headers={name.lower(): value for name, value in req.headers.items()}, exact=True)
        return func.HttpResponse(answer.body, status_code=answer.status, headers=answer.headers)

    return _answer(work)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api import openapi

    return func.HttpResponse(openapi.render(), mimetype=_JSON, headers={"Cache-Control": "public, max-age=300"})
