"""Sign-in triggers: GET /api/connect starts it, GET /api/oauth/callback completes it.

Both are ANONYMOUS: a function key travels in `code`, which the OAuth callback needs for itself.
A connect session created by the product's backend (signin/sessions.py) protects /connect;
`state` and the browser-binding cookie protect the callback (see flow.py).
"""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _page(body: str, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    from functions.signin.pages import HEADERS

    return func.HttpResponse(body, status_code=status, headers={**HEADERS, **(headers or {})}, mimetype="text/html", charset="utf-8")


def _storage_unavailable(error: Exception) -> func.HttpResponse:
    from functions.signin import pages

    log.error("sign-in: storage unavailable (%s)", error)
    return _page(pages.storage_unavailable(_again()), 503, {"Retry-After": "30"})


def _redirect(location: str, cookie: str) -> func.HttpResponse:
    from functions.signin.pages import HEADERS

    return func.HttpResponse(status_code=302, headers={**HEADERS, "Location": location, "Set-Cookie": cookie})


def _again(return_to: str = "") -> str:
    """The "Connect again" link of an error page ("" when PUBLIC_BASE_URL itself is the problem)."""
    from functions.settings import SettingsError
    from functions.signin import flow

    try:
        return flow.connect_again_url(return_to)
    except SettingsError:
        return return_to


@bp.route(route="connect", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def connect(req: func.HttpRequest) -> func.HttpResponse:
    from functions.errors import StorageUnavailable
    from functions.settings import SettingsError
    from functions.signin import flow, pages, sessions

    try:
        moved = flow.public_origin_redirect(req.url)
        if moved:  # 127.0.0.1 for localhost: start on the host name the callback comes back to
            return func.HttpResponse(status_code=302, headers={**pages.HEADERS, "Location": moved})
        started = flow.start(dict(req.params))
    except flow.BadRequest as error:
        return _page(pages.bad_request(str(error), _again()), 400)
    except sessions.Unusable as error:
        return _page(pages.bad_request(str(error), _again(error.return_to)), 400)
    except StorageUnavailable as error:
        return _storage_unavailable(error)
    except SettingsError as error:
        log.error("sign-in is misconfigured: %s", error)
        return _page(pages.misconfigured(_again()), 500)
    return _redirect(started.authorize_url, started.set_cookie_header())


@bp.route(route="oauth/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_callback(req: func.HttpRequest) -> func.HttpResponse:
    from functions.errors import MicrosoftError, SettingsError, StorageUnavailable, Throttled, Unavailable
    from functions.signin import flow, pages

    # By family (the tree is in errors.py): the order matters, narrower first.
    try:
        completed = flow.complete(dict(req.params), flow.parse_cookies(req.headers.get("cookie")))
    except flow.BadRequest as error:  # e.g. a reloaded callback: "already used"
        return _page(pages.bad_request(str(error), _again()), 400)
    except flow.AlreadyLinked as refused:
        return _page(pages.already_linked(refused.return_to, _again(refused.return_to)), 409)
    except StorageUnavailable as error:
        return _storage_unavailable(error)
    except flow.Denied as denied:
        return _page(pages.denied(denied.error, denied.return_to, _again(denied.return_to)), 200)
    except SettingsError as error:  # includes a client secret Microsoft refused
        log.error("sign-in is misconfigured: %s", error)
        return _page(pages.misconfigured(_again()), 500)
    except (Unavailable, Throttled) as error:
        log.warning("sign-in could not reach Microsoft: %s", error)
        return _page(pages.unavailable(_again()), 503)
    except MicrosoftError as error:  # refused: a token error, a Graph error, a grant turned down
        log.warning("sign-in refused by Microsoft: %s", error)
        return _page(pages.denied("sign_in_failed", "", _again()), 502)
    if completed.choose:
        picker = _picker_link(completed.connection_id, completed.redirect_to)
        if picker:
            return _redirect(picker, completed.clear_cookie_header())
    if completed.redirect_to:
        return _redirect(completed.redirect_to, completed.clear_cookie_header())
    return _page(pages.connected(completed.display_name), 200, {"Set-Cookie": completed.clear_cookie_header()})


def _picker_link(connection_id: str, back: str | None) -> str | None:
    """"Choose what to share" right after consent: the new connection's picker, then `back`.
    If the link can't be stored the user goes straight back (the whole drive is mirrored)."""
    from functions.picker import sessions

    try:
        return sessions.create_link(connection_id, return_to=back or "")[0]
    except Exception as error:  # noqa: BLE001 - the connection is made; choosing can wait
        log.warning("could not open the picker after connecting: %s", type(error).__name__,
                    extra={"connection_id": connection_id})
        return None
