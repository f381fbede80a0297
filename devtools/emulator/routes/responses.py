"""Graph's error body and headers (microsoft.md §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import DownloadError, GraphError, TokenError

WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


def request_ids(request: Request | None) -> dict[str, str]:
    client_request_id = (request.headers.get("client-request-id") if request else None) or str(uuid.uuid4())
    return {"request-id": str(uuid.uuid4()), "client-request-id": client_request_id}


def graph_error(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    inner_code: str | None = None,
) -> JSONResponse:
    ids = request_ids(request)
    inner: dict[str, str] = {}
    if inner_code:
        inner["code"] = inner_code
    inner.update(
        {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": ids["request-id"],
            "client-request-id": ids["client-request-id"],
        }
    )
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return JSONResponse(body, status_code=status, headers={**ids, **(headers or {})})


def unauthenticated(request: Request, message: str) -> JSONResponse:
    return graph_error(
        request, 401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": WWW_AUTHENTICATE}
    )


def from_graph_error(request: Request | None, error: GraphError) -> JSONResponse:
    if error.status == 401 and "WWW-Authenticate" not in error.headers:
        error.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return graph_error(request, error.status, error.code, error.message, error.headers, error.inner_code)


def token_error(error: TokenError) -> JSONResponse:
    """The v2 token endpoint's error shape (microsoft.md §1)."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{error.code}: {error.message} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {timestamp}"
    )
    body = {
        "error": error.error,
        "error_description": description,
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={error.code}",
    }
    return JSONResponse(body, status_code=error.status)


def download_error(error: DownloadError) -> JSONResponse:
    return JSONResponse({"error": {"code": error.code, "message": error.message}}, status_code=error.status)
