"""The picker: POST /api/connections/{id}/picker-sessions (function key) makes a single-use link;
GET/POST /api/picker (anonymous: the link's token, then a cookie-bound session) is the page."""

import json

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure.functions ships untyped (as in every trigger)


def _reply(status: int, body: str, headers: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(body, status_code=status, headers=headers)


@bp.route(route="connections/{id}/picker-sessions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_picker_session(req: func.HttpRequest) -> func.HttpResponse:
    from functions.api.support import ApiError
    from functions.picker import views

    try:
        answer = views.create_link(req.route_params.get("id", ""), req.get_body())
    except ApiError as refused:
        return func.HttpResponse(json.dumps(refused.to_body()), status_code=refused.status, mimetype="application/json")
    return func.HttpResponse(json.dumps(answer), status_code=201, mimetype="application/json",
                             headers={"Cache-Control": "no-store"})


@bp.route(route="picker", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def picker_page(req: func.HttpRequest) -> func.HttpResponse:
    from functions.picker import views
    from functions.signin.flow import parse_cookies

    return _reply(*views.get(dict(req.params), parse_cookies(req.headers.get("cookie"))))


@bp.route(route="picker", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def picker_form(req: func.HttpRequest) -> func.HttpResponse:
    from functions.picker import views
    from functions.signin.flow import parse_cookies

    return _reply(*views.post(req.get_body(), parse_cookies(req.headers.get("cookie"))))
