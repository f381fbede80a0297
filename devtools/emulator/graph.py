"""The OneDrive part of Microsoft Graph v1.0 (microsoft.md §2-§5).

One catch-all route dispatches on the decoded path, because Graph's addressing doesn't fit route
templates well: ``items/{id}`` with ``!`` in ids, ``root:/a/b.txt:`` and ``delta(token='...')``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .drive import Drive, Item
from .errors import graph_error, request_ids, unauthenticated
from .identity import User
from .render import drive_json, item_json

if TYPE_CHECKING:
    from .server import Emulator

DELTA_ACTION = re.compile(r"^delta(?:\(\)|\(token='(?P<token>[^']*)'\))?$")
FILES_SCOPES = {"files.read", "files.readwrite", "files.read.all", "files.readwrite.all", "files.readwrite.appfolder"}


def parse_item_path(rest: str) -> tuple[str, str, str, str] | None:
    """'me/drive/items/X!1/content' -> ("me/drive", "id", "X!1", "content"); kinds: root, id, path."""
    match = re.match(r"^(me/drive|drives/[^/]+)/(.+)$", rest)
    if match is None:
        return None
    drive_spec, tail = match.groups()
    if tail.startswith("root:"):
        # Names can't contain ':', so the first one after 'root:' ends the path.
        path, _, after = tail[5:].partition(":")
        return drive_spec, "path", path, after.strip("/")
    if tail == "root" or tail.startswith("root/"):
        return drive_spec, "root", "", tail[4:].strip("/")
    if tail.startswith("items/"):
        item_id, _, after = tail[6:].partition("/")
        return drive_spec, "id", item_id, after.strip("/")
    return None


def normalise_drive_id(drive_id: str) -> str:
    # Drive ids may come with a dropped leading zero or in another case (microsoft.md §3).
    return drive_id.lower().rjust(16, "0")


class Graph:
    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu

    def routes(self) -> list[Route]:
        return [Route("/v1.0/{rest:path}", self.dispatch, methods=["GET", "POST", "PATCH", "DELETE", "PUT"])]

    def authenticate(self, request: Request) -> tuple[User | None, Response | None]:
        header = request.headers.get("authorization", "")
        if not header:
            return None, unauthenticated(request, "Access token is empty.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, unauthenticated(request, "Access token is empty.")
        user, why = self.emu.identity.user_for_access_token(token.strip())
        if user is None:
            return None, unauthenticated(request, why)
        return user, None

    def _has_files_scope(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        return any(s.lower() in FILES_SCOPES for s in self.emu.identity.scopes_for_access_token(token))

    async def dispatch(self, request: Request) -> Response:
        user, failure = self.authenticate(request)
        if failure is not None:
            return failure
        assert user is not None
        rest = request.path_params["rest"].strip("/")
        method = request.method
        if rest == "me" and method == "GET":
            return self.me(request, user)
        if rest == "subscriptions" or rest.startswith("subscriptions/"):
            return await self.emu.notifier.handle(request, user, rest)
        if not self._has_files_scope(request):
            return graph_error(request, 403, "accessDenied", "Access denied. Check the scopes of the token.")
        if rest == "me/drive" or re.fullmatch(r"drives/[^/]+", rest):
            drive, failure = self._drive(request, user, rest)
            if failure is not None:
                return failure
            return JSONResponse(drive_json(self.emu, drive), headers=request_ids(request))  # type: ignore[arg-type]
        parsed = parse_item_path(rest)
        delta_action = DELTA_ACTION.match(parsed[3]) if parsed else None
        if parsed is None or method != "GET" or (parsed[3] not in ("", "children", "content") and not delta_action):
            return graph_error(request, 400, "invalidRequest", f"Invalid request: {method} /v1.0/{rest}")
        drive_spec, kind, value, action = parsed
        drive, failure = self._drive(request, user, drive_spec)
        if failure is not None:
            return failure
        assert drive is not None
        item = self._item(drive, kind, value)
        if item is None:
            return graph_error(request, 404, "itemNotFound", "Item not found")
        if delta_action is not None:
            if not item.is_folder_like:
                return graph_error(request, 400, "invalidRequest", "Delta is only supported on folders.")
            link_base = f"{self.emu.graph_base_url}/{drive_spec}/" + (
                "root" if item.id == drive.root_id else f"items/{quote(item.id)}"
            ) + "/delta"
            token = delta_action.group("token")
            token = unquote(token) if token is not None else request.query_params.get("token")
            return self.emu.delta.respond(request, drive, item, link_base, token)
        if action == "children":
            return self.children(request, drive, item, rest)
        if action == "content":
            return self.content(request, drive, item)
        with drive.lock:
            body = item_json(self.emu, drive, item)
        context = f"{self.emu.graph_base_url}/$metadata#items/$entity"
        return JSONResponse({"@odata.context": context, **body}, headers=request_ids(request))

    def me(self, request: Request, user: User) -> JSONResponse:
        given, _, surname = user.display_name.partition(" ")
        return JSONResponse(
            {
                "@odata.context": f"{self.emu.graph_base_url}/$metadata#users/$entity",
                "id": user.id,
                "displayName": user.display_name,
                "givenName": given,
                "surname": surname or None,
                "userPrincipalName": user.email,
                "mail": None,
                "businessPhones": [],
                "jobTitle": None,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": "en-US",
            },
            headers=request_ids(request),
        )

    def _drive(self, request: Request, user: User, spec: str) -> tuple[Drive | None, Response | None]:
        if spec == "me/drive":
            return user.drive, None
        wanted = normalise_drive_id(spec.split("/", 1)[1])
        for other in self.emu.users:
            if other.drive.id == wanted:
                if other is not user:
                    return None, graph_error(request, 403, "accessDenied", "Access denied")
                return other.drive, None
        return None, graph_error(request, 404, "itemNotFound", "Item not found")

    def _item(self, drive: Drive, kind: str, value: str) -> Item | None:
        if kind == "path":
            item = drive.find(value)
        elif kind == "root":
            item = drive.get(drive.root_id)
        else:
            item = drive.get(value)
        if item is None or item.deleted:
            return None
        return item

    def children(self, request: Request, drive: Drive, item: Item, rest: str) -> Response:
        if not item.is_folder_like:
            return JSONResponse({"value": []}, headers=request_ids(request))
        top_text = request.query_params.get("$top", "200")
        skip_text = request.query_params.get("$skiptoken", "0")
        if not top_text.isdigit() or not skip_text.isdigit():
            return graph_error(request, 400, "invalidRequest", "Invalid paging parameters.")
        top, skip = max(1, min(int(top_text), 1000)), int(skip_text)
        with drive.lock:
            children = sorted(drive.children_of(item), key=lambda c: c.name.lower())
            page = [item_json(self.emu, drive, child) for child in children[skip : skip + top]]
        body: dict = {"@odata.context": f"{self.emu.graph_base_url}/$metadata#Collection(driveItem)", "value": page}
        if skip + top < len(children):
            body["@odata.nextLink"] = f"{self.emu.graph_base_url}/{rest}?$top={top}&$skiptoken={skip + top}"
        return JSONResponse(body, headers=request_ids(request))

    def content(self, request: Request, drive: Drive, item: Item) -> Response:
        if item.kind == "package":
            return graph_error(request, 503, "serviceNotAvailable", "OneNote notebooks can't be downloaded.")
        if item.kind == "remote":
            return graph_error(request, 404, "itemNotFound", "The item lives on another drive.")
        if item.kind != "file":
            return graph_error(request, 400, "notSupported", "Only files can be downloaded.")
        if item.malware:
            return graph_error(request, 403, "malwareDetected", "Malware detected in this file.")
        url = self.emu.download_url(drive, item)
        return Response(status_code=302, headers={"Location": url, **request_ids(request)})
