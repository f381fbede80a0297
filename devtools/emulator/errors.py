"""Graph's error body and headers (microsoft.md §5)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse

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
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
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
