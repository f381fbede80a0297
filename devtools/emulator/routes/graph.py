"""The OneDrive part of Microsoft Graph v1.0 (microsoft.md §2-§5), over HTTP.

One catch-all route dispatches on the decoded path, because Graph's addressing doesn't fit route
templates well: ``items/{id}`` with ``!`` in ids, ``root:/a/b.txt:`` and ``delta(token='...')``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..addressing import DELTA_ACTION, Address, app_folder_of, in_app_folder, normalise_drive_id, parse_item_path
from ..drive import Drive, Item
from ..errors import GraphError
from ..services import Services
from ..services.render import drive_json, item_json
from ..state import User
from .downloads import serve_content
from .responses import from_graph_error, graph_error, request_ids, unauthenticated

FILES_SCOPES = {"files.read", "files.readwrite", "files.read.all", "files.readwrite.all", "files.readwrite.appfolder"}
APP_FOLDER_SCOPE = "files.readwrite.appfolder"
# Creating (and changing) a subscription on a personal drive needs Files.ReadWrite, or more
# (subscription-post-subscriptions); Files.Read and the app folder scope are not enough.
SUBSCRIPTION_WRITE_SCOPES = {"files.readwrite", "files.readwrite.all"}
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]


class Graph:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.state = services.state

    def routes(self) -> list[Route]:
        # /beta answers as v1.0 does for everything emulated (some clients use it for a few calls).
        return [Route("/v1.0/{rest:path}", self.dispatch, methods=METHODS),
                Route("/beta/{rest:path}", self.dispatch, methods=METHODS)]

    def authenticate(self, request: Request) -> tuple[User | None, Response | None]:
        header = request.headers.get("authorization", "")
        if not header:
            return None, unauthenticated(request, "Access token is empty.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, unauthenticated(request, "Access token is empty.")
        user, why = self.services.identity.user_for_access_token(token.strip())
        if user is None:
            return None, unauthenticated(request, why)
        return user, None

    def _scopes(self, request: Request) -> set[str]:
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        return {s.lower() for s in self.services.identity.scopes_for_access_token(token)}

    def _has_files_scope(self, request: Request) -> bool:
        return bool(self._scopes(request) & FILES_SCOPES)

    def _app_folder_only(self, request: Request) -> bool:
        """A token granted Files.ReadWrite.AppFolder and no other Files scope sees only the app folder."""
        return self._scopes(request) & FILES_SCOPES == {APP_FOLDER_SCOPE}

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except GraphError as error:
            return from_graph_error(request, error)

    async def _dispatch(self, request: Request) -> Response:
        user, failure = self.authenticate(request)
        if failure is not None:
            return failure
        assert user is not None
        rest = request.path_params["rest"].strip("/")
        method = request.method
        if rest == "me" and method == "GET":
            return self.me(request, user)
        if rest == "subscriptions" or rest.startswith("subscriptions/"):
            return await self.subscriptions(request, user, rest)
        if not self._has_files_scope(request):
            return graph_error(request, 403, "accessDenied", "Access denied. Check the scopes of the token.")
        if rest in ("me/drives", "drives") and method == "GET":
            return self.drives(request, user)
        if rest == "me/drive" or re.fullmatch(r"drives/[^/]+", rest):
            drive = self._drive(user, rest)
            if drive is not user.drive:
                raise GraphError(403, "accessDenied", "Access denied")
            return JSONResponse(drive_json(self.state, drive), headers=request_ids(request))
        parsed = parse_item_path(rest)
        delta_action = DELTA_ACTION.match(parsed.action) if parsed else None
        if parsed is None or method != "GET" or (parsed.action not in ("", "children", "content") and not delta_action):
            return graph_error(request, 400, "invalidRequest", f"Invalid request: {method} /v1.0/{rest}")
        drive = self._drive(user, parsed.drive)
        item = self._item(drive, parsed)
        if drive is not user.drive and not self._shared_with(user, drive, item):
            raise GraphError(403, "accessDenied", "Access denied")
        if item is None:
            return graph_error(request, 404, "itemNotFound", "Item not found")
        if self._app_folder_only(request) and not in_app_folder(drive, item):
            # Graph: an app-folder token is denied everything outside Apps/{app}.
            return graph_error(request, 403, "accessDenied", "Access denied")
        if delta_action is not None:
            if not item.is_folder_like:
                return graph_error(request, 400, "invalidRequest", "Delta is only supported on folders.")
            link_base = f"{self.state.graph_base_url}/{parsed.drive}/" + (
                "root" if item.id == drive.root_id else "special/approot" if parsed.kind == "approot"
                else f"items/{quote(item.id)}"
            ) + "/delta"
            token = delta_action.group("token")
            token = unquote(token) if token is not None else request.query_params.get("token")
            params = request.query_params
            body = self.services.delta.respond(
                drive, item, link_base, token, params.get("$select", ""), params.get("$top")
            )
            return JSONResponse(body, headers=request_ids(request))
        if parsed.action == "children":
            return self.children(request, drive, item, rest)
        if parsed.action == "content":
            return await self.content(request, drive, item)
        with drive.lock:
            body = item_json(self.state, drive, item)
        context = f"{self.state.graph_base_url}/$metadata#items/$entity"
        return JSONResponse({"@odata.context": context, **body}, headers=request_ids(request))

    def drives(self, request: Request, user: User) -> JSONResponse:
        """GET /me/drives: a personal account has one drive."""
        entry = {k: v for k, v in drive_json(self.state, user.drive).items() if not k.startswith("@odata")}
        body = {"@odata.context": f"{self.state.graph_base_url}/$metadata#drives", "value": [entry]}
        return JSONResponse(body, headers=request_ids(request))

    def me(self, request: Request, user: User) -> JSONResponse:
        given, _, surname = user.display_name.partition(" ")
        return JSONResponse(
            {
                "@odata.context": f"{self.state.graph_base_url}/$metadata#users/$entity",
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

    def _drive(self, user: User, spec: str) -> Drive:
        if spec == "me/drive":
            return user.drive
        drive = self.state.drive_by_id(normalise_drive_id(spec.split("/", 1)[1]))
        if drive is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        return drive

    def _item(self, drive: Drive, address: Address) -> Item | None:
        if address.kind == "path":
            item = drive.find(address.value)
        elif address.kind == "root":
            item = drive.get(drive.root_id)
        elif address.kind == "approot":
            item = app_folder_of(drive)
        else:
            item = drive.get(address.value)
            if item is not None and address.path and not item.deleted:
                item = drive.find(address.path, below=item.id)
        if item is None or item.deleted:
            return None
        return item

    def _shared_with(self, user: User, drive: Drive, item: Item | None) -> bool:
        """Another drive's item is the user's to read when it is, or is inside, a folder shared
        with them (a ``remoteItem`` in their drive names it)."""
        if item is None:
            return False
        with self.state.lock:
            shared = {
                shortcut.remote["id"]
                for shortcut in user.drive.items.values()
                if shortcut.kind == "remote" and not shortcut.deleted and shortcut.remote
                and shortcut.remote.get("drive_id") == drive.id
            }
            return item.id in shared or any(a.id in shared for a in drive.ancestors(item))

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
            page = [item_json(self.state, drive, child) for child in children[skip : skip + top]]
        body: dict = {"@odata.context": f"{self.state.graph_base_url}/$metadata#Collection(driveItem)", "value": page}
        if skip + top < len(children):
            body["@odata.nextLink"] = f"{self.state.graph_base_url}/{rest}?$top={top}&$skiptoken={skip + top}"
        return JSONResponse(body, headers=request_ids(request))

    async def content(self, request: Request, drive: Drive, item: Item) -> Response:
        if item.kind == "package":
            return graph_error(request, 503, "serviceNotAvailable", "OneNote notebooks can't be downloaded.")
        if item.kind == "remote":
            return graph_error(request, 404, "itemNotFound", "The item lives on another drive.")
        if item.kind != "file":
            return graph_error(request, 400, "notSupported", "Only files can be downloaded.")
        if item.malware:
            return graph_error(request, 403, "malwareDetected", "Malware detected in this file.")
        if not self.state.options.content_redirect:
            # Graph may answer with the bytes itself instead of a redirect (issue 19 #5).
            return serve_content(request, item, self.state)
        url = self.services.downloads.url_for(drive, item)
        return Response(status_code=302, headers={"Location": url, **request_ids(request)})

    # ----- /subscriptions ----------------------------------------------------------------------

    async def subscriptions(self, request: Request, user: User, rest: str) -> Response:
        notifier = self.services.notifier
        parts = rest.split("/")
        method = request.method
        if method != "GET" and not self._scopes(request) & SUBSCRIPTION_WRITE_SCOPES:
            operation = {"POST": "Create", "PATCH": "Update", "DELETE": "Delete"}.get(method, "Update")
            raise GraphError(
                403, "ExtensionError",
                f"Operation: {operation}; Exception: [Status Code: Forbidden; Reason: Insufficient privileges to "
                "complete the operation. Files.ReadWrite is required.]",
            )
        if len(parts) == 1:
            if method == "POST":
                subscription = await notifier.create(user, await self._body(request),
                                                     app_folder_only=self._app_folder_only(request))
                return self._subscription_json(request, subscription.public(), 201)
            if method == "GET":
                items = [s.public() for s in notifier.owned(user)]
                return JSONResponse(
                    {"@odata.context": f"{self.state.graph_base_url}/$metadata#subscriptions", "value": items},
                    headers=request_ids(request),
                )
        subscription_id = parts[1] if len(parts) >= 2 else ""
        notifier.find(user, subscription_id)  # 404 before anything else
        if len(parts) == 3 and parts[2] == "reauthorize" and method == "POST":
            await notifier.reauthorize(user, subscription_id)
            return Response(status_code=204, headers=request_ids(request))
        if len(parts) != 2:
            return graph_error(request, 400, "BadRequest", "Unsupported request.")
        if method == "GET":
            return self._subscription_json(request, notifier.find(user, subscription_id).public(), 200)
        if method == "DELETE":
            notifier.delete(user, subscription_id)
            return Response(status_code=204, headers=request_ids(request))
        if method == "PATCH":
            subscription = await notifier.renew(user, subscription_id, await self._body(request))
            return self._subscription_json(request, subscription.public(), 200)
        return graph_error(request, 405, "BadRequest", "Method not allowed.")

    def _subscription_json(self, request: Request, public: dict, status: int) -> JSONResponse:
        body = {"@odata.context": f"{self.state.graph_base_url}/$metadata#subscriptions/$entity", **public}
        return JSONResponse(body, status_code=status, headers=request_ids(request))

    async def _body(self, request: Request) -> dict:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
        return body
