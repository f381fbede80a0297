"""Serve the app's HTTP functions under /api, as the Functions host does, with function keys."""

from __future__ import annotations

import hmac
import html
import logging
from typing import Any

import azure.functions as func
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .bindings import FunctionSpec, starlette_path

log = logging.getLogger(__name__)

# The Functions host caps request bodies at 100 MB; the app applies its own, smaller limits.
MAX_BODY_BYTES = 100 * 1024 * 1024


def build_http_app(specs: list[FunctionSpec], *, function_key: str) -> Starlette:
    http_specs = [spec for spec in specs if spec.trigger == "httpTrigger"]
    routes = [
        Route(starlette_path(spec.route), _endpoint(spec, function_key), methods=spec.methods, name=spec.name)
        for spec in http_specs
    ]
    # What Core Tools answers too: a landing page and the host status (readiness checks use it).
    routes.append(Route("/", lambda request: PlainTextResponse(f"The function app is running: {len(specs)} functions.")))
    routes.append(Route("/admin/host/status", lambda request: JSONResponse({"state": "Running", "functions": len(specs)})))
    return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})


# Where to find the key, for the 401 answers: the key itself is never in them.
KEY_HINT = ("Send the function key in the x-functions-key header or as ?code=. Locally, scripts/run prints it "
            "when it starts (the Status page line carries it) and keeps it in .azurite/function-key; "
            "in Azure: az functionapp keys list -g <resource group> -n <app>.")


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 405:
        return JSONResponse({"error": {"code": "method_not_allowed",
                                       "message": f"{request.method} is not allowed on {request.url.path}."}}, status_code=405)
    return JSONResponse({"error": {"code": "not_found", "message": f"No route {request.url.path}. "
                                   "The app's routes are listed at /api/openapi.json."}}, status_code=404)


def _unauthorized(request: Request) -> Response:
    given = bool(request.headers.get("x-functions-key") or request.query_params.get("code"))
    problem = "The function key is wrong." if given else "This route needs the function key."
    if "text/html" in request.headers.get("accept", ""):  # a person with a browser (the status page)
        page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
                f"content='width=device-width, initial-scale=1'><title>Function key needed</title></head>"
                f"<body style='font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem'>"
                f"<h1>Function key needed</h1><p>{html.escape(problem)}</p><p>{html.escape(KEY_HINT)}</p></body></html>")
        return HTMLResponse(page, status_code=401, headers={"Cache-Control": "no-store"})
    return JSONResponse({"error": {"code": "unauthorized", "message": f"{problem} {KEY_HINT}"}}, status_code=401,
                        headers={"Cache-Control": "no-store"})


def _authorized(request: Request, spec: FunctionSpec, function_key: str) -> bool:
    if spec.auth_level == "ANONYMOUS":
        return True
    given = request.headers.get("x-functions-key") or request.query_params.get("code") or ""
    return hmac.compare_digest(given.encode(), function_key.encode())


def _endpoint(spec: FunctionSpec, function_key: str):
    async def endpoint(request: Request) -> Response:
        if not _authorized(request, spec, function_key):
            return _unauthorized(request)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return PlainTextResponse("Request body too large", status_code=413)
        http_request = func.HttpRequest(
            method=request.method,
            url=_raw_url(request),
            headers=dict(request.headers),
            params=dict(request.query_params),
            route_params={k: str(v) for k, v in request.path_params.items()},
            body=body,
        )
        try:
            if spec.is_async:
                result = await spec.handler(**{spec.arg_name: http_request})
            else:
                result = await run_in_threadpool(spec.handler, **{spec.arg_name: http_request})
        except Exception:
            # As in Azure: a failing invocation is a 500 and a log line, never a dead host.
            log.exception("function %s failed", spec.name)
            return PlainTextResponse("Internal Server Error", status_code=500)
        return _to_starlette(result)

    return endpoint


def _raw_url(request: Request) -> str:
    """The URL as the client sent it, percent-encodings intact, as Azure hands it over: Starlette's
    `request.url` is rebuilt from the decoded path, so `Docs%2FWelcome.txt` would arrive as
    `Docs/Welcome.txt` and checks of the raw form would pass locally and fail in Azure."""
    raw_path = request.scope.get("raw_path")
    if not raw_path:
        return str(request.url)
    query = request.scope.get("query_string") or b""
    url = f"{request.url.scheme}://{request.url.netloc}{raw_path.decode('latin-1')}"
    return url + (f"?{query.decode('latin-1')}" if query else "")


def _to_starlette(result: Any) -> Response:
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return PlainTextResponse(result)
    headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
    content_type = result.headers.get("Content-Type") or (
        f"{result.mimetype}; charset={result.charset}" if result.mimetype and result.mimetype.startswith("text/") else result.mimetype
    )
    if content_type:
        headers["Content-Type"] = content_type
    return Response(content=result.get_body(), status_code=result.status_code, headers=headers)
