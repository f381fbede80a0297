"""The picker's requests, free of azure.functions: each returns (status, html or "", headers)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from functions import connections
from functions.api.support import ApiError, bad_request, require_connection
from functions.errors import GraphError, ReauthRequired
from functions.picker import browse, pages, sessions
from functions.picker.sessions import PickerRefused
from functions.settings import settings
from functions.sync import selection

log = logging.getLogger(__name__)

Reply = tuple[int, str, dict[str, str]]
MAX_FORM = 200_000


def create_link(connection_id: str, body: bytes) -> dict[str, Any]:
    """POST /api/connections/{id}/picker-sessions (function key): a single-use link for one connection."""
    import json

    connection = require_connection(connection_id)
    if connection.state != connections.ConnectionState.ACTIVE:
        raise ApiError(409, "connection_not_active", "The connection is not active: connect the drive again first.")
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The body must be JSON.", "invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object.", "invalid_body")
    return_to = data.get("return_to") or data.get("returnTo") or ""
    if return_to and (not isinstance(return_to, str) or len(return_to) > 2048 or not settings().return_url_allowed(return_to)):
        raise bad_request("return_to is not an allowed return URL (ALLOWED_RETURN_URLS).", "invalid_return_to")
    url, expires = sessions.create_link(connection_id, return_to=return_to)
    return {"url": url, "expiresAt": expires.isoformat(timespec="seconds").replace("+00:00", "Z")}


def _html(status: int, body: str, extra: Mapping[str, str] | None = None) -> Reply:
    return status, body, {**pages.HEADERS, "Content-Type": "text/html; charset=utf-8", **(extra or {})}


def get(params: Mapping[str, str], cookies: Mapping[str, str]) -> Reply:
    token = params.get("s")
    if token:
        try:
            _, cookie = sessions.redeem(token)
        except PickerRefused as refused:
            return _html(400, pages.refused(str(refused)))
        # Straight to a URL without the token: it stays out of history and of any Referer.
        return 303, "", {**pages.HEADERS, "Location": "/api/picker", "Set-Cookie": sessions.cookie_header(cookie)}
    try:
        session = sessions.from_cookie(cookies.get(sessions.COOKIE_NAME))
    except PickerRefused as refused:
        return _html(401, pages.refused(str(refused)))
    notice = {"saved": "Saved. Your files will be updated shortly.", "whole": "Saved: your whole drive is shared."}
    return _render(session, params.get("folder") or None, message=notice.get(params.get("done") or "", ""))


def post(body: bytes, cookies: Mapping[str, str]) -> Reply:
    try:
        session = sessions.from_cookie(cookies.get(sessions.COOKIE_NAME))
    except PickerRefused as refused:
        return _html(401, pages.refused(str(refused)))
    if len(body) > MAX_FORM:
        return _html(413, pages.refused("Too many items in one form."))
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=False)
    try:
        sessions.check_csrf(session, (form.get("csrf") or [""])[0])
    except PickerRefused as refused:
        return _html(403, pages.refused(str(refused)))
    folder_id = (form.get("folder") or [""])[0] or None
    action = (form.get("action") or ["save"])[0]
    if selection.app_folder_only():
        return _html(200, pages.app_folder(session.return_to))
    try:
        graph = browse.graph_for(session.connection_id)
        browse.save(session.connection_id, graph, folder_id=folder_id, shown=form.get("shown") or [],
                    ticked=form.get("item") or [], whole_drive=action == "whole")
    except browse.NothingChosen:
        return _render(session, folder_id, error="Tick at least one folder or file, or share your whole drive.")
    except (ReauthRequired, GraphError, LookupError) as error:
        log.warning("picker could not save: %s", type(error).__name__, extra={"connection_id": session.connection_id})
        return _html(502, pages.refused("Your OneDrive could not be read just now. Please try again."))
    from functions import messages

    messages.enqueue_sync(session.connection_id, "selection")
    log.info("selection changed in the picker", extra={"connection_id": session.connection_id})
    location = browse.folder_link(folder_id)
    location += ("&" if "?" in location else "?") + ("done=whole" if action == "whole" else "done=saved")
    return 303, "", {**pages.HEADERS, "Location": location}


def _render(session: sessions.Session, folder_id: str | None, *, message: str = "", error: str = "") -> Reply:
    if selection.app_folder_only():
        return _html(200, pages.app_folder(session.return_to))
    try:
        listing = browse.listing(session.connection_id, browse.graph_for(session.connection_id), folder_id)
    except ReauthRequired:
        return _html(409, pages.refused("Your OneDrive connection has expired. Connect it again first."))
    except (GraphError, LookupError):
        return _html(404, pages.refused("This folder can't be shown. It may have been moved or deleted."))
    return _html(200, pages.folder(listing, csrf=session.csrf, return_to=session.return_to, message=message, error=error))
