"""Sign-in's HTTP face: authorize, the consent form, token, discovery (services/identity.py decides)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import TokenError
from ..services import Services
from ..services.identity import ConsentPage, ErrorPage, Redirect
from . import pages
from .responses import token_error

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def routes(services: Services) -> list[Route]:
    identity = services.identity
    state = services.state

    def answer(outcome: Redirect | ErrorPage | ConsentPage) -> Response:
        if isinstance(outcome, Redirect):
            return RedirectResponse(outcome.url, status_code=302)
        if isinstance(outcome, ErrorPage):
            return pages.signin_error(outcome.code, outcome.message, outcome.hint)
        return HTMLResponse(
            pages.consent_page(state, outcome.request_id, outcome.scopes, outcome.users, outcome.hinted, outcome.params)
        )

    async def authorize(request: Request) -> Response:
        with state.lock:
            outcome = identity.authorize(
                dict(request.query_params), request.path_params["tenant"], request.cookies.get("emulator_user", "")
            )
        return answer(outcome)

    async def consent(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        with state.lock:
            return answer(identity.consent(form))

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            with state.lock:
                body = identity.token(form, request.headers.get("authorization", ""))
        except TokenError as error:
            return token_error(error)
        return JSONResponse(body, headers=NO_STORE)

    async def openid_configuration(request: Request) -> JSONResponse:
        return JSONResponse(identity.openid_configuration(request.path_params["tenant"]))

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse({"keys": []})

    async def instance_discovery(request: Request) -> JSONResponse:
        return JSONResponse(identity.instance_discovery(request.query_params.get("authorization_endpoint", "")))

    return [
        Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/consent", consent, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/common/discovery/instance", instance_discovery),
    ]
