"""Graph's webhooks: change notifications and lifecycle notifications (anonymous: clientState protects them).

Both answer Graph's validation handshake first, without touching storage, then take a JSON batch,
queue the work and answer 202. Graph wants every answer within 3 s.
"""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)

# Real tokens are about 150 characters ("Validation: Testing client application reachability ...").
MAX_VALIDATION_TOKEN = 1024


@bp.route(route="notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _webhook(req, lifecycle=False)


@bp.route(route="lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return _webhook(req, lifecycle=True)


def _webhook(req: func.HttpRequest, *, lifecycle: bool) -> func.HttpResponse:
    token = req.params.get("validationToken")
    if token is not None:
        return _validation(token)
    if _media_type(req.headers.get("Content-Type")) != "application/json":
        return _text("expected Content-Type: application/json", 415)
    from functions.errors import StorageUnavailable
    from functions.notifications import batches as core

    body = req.get_body()
    if len(body) > core.MAX_BODY_BYTES:
        return _text(f"body over {core.MAX_BODY_BYTES} bytes", 413)
    try:
        batch = core.parse_batch(body)
    except core.MalformedBatch as error:
        return _text(str(error), 400)
    try:
        (core.accept_lifecycle if lifecycle else core.accept_changes)(batch)
    except StorageUnavailable as error:
        log.error("webhook: storage unavailable (%s); asking Graph to retry", error)
        return _text("storage unavailable, retry later", 503, headers={"Retry-After": "30"})
    return func.HttpResponse(status_code=202)


def _validation(token: str) -> func.HttpResponse:
    # The host has already URL-decoded the query: echo the decoded token, as text, never as HTML.
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return _text(f"validationToken must be 1 to {MAX_VALIDATION_TOKEN} characters", 400)
    return _text(token, 200)


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
    )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()
