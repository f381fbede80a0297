"""The HTTP control API under /_emulator: the Python API, as JSON, for demos and other processes.

Users are addressed by id or email. Errors come back as ``{"error": "..."}`` with 400/404.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..drive import DriveError
from ..services import Services
from ..state import User


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def user_json(user: User) -> dict:
    return {"id": user.id, "email": user.email, "display_name": user.display_name, "drive_id": user.drive.id}


def routes(services: Services) -> list[Route]:
    state = services.state

    async def body(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("a JSON object is expected")
        return value

    def with_user(handler: Callable[[Request, User, dict], Awaitable[Response] | Response]):
        async def endpoint(request: Request) -> Response:
            key = request.path_params["user"]
            user = state.user_by_id(key) or state.user_by_email(key)
            if user is None:
                return _error(404, f"no user {key!r}")
            try:
                result = handler(request, user, await body(request) if request.method != "GET" else {})
                if hasattr(result, "__await__"):
                    result = await result  # type: ignore[misc]
                return result  # type: ignore[return-value]
            except (DriveError, ValueError, KeyError, TypeError) as error:
                return _error(400, str(error))

        return endpoint

    async def summary(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "base_url": state.base_url,
                "authority": state.authority,
                "graph_base_url": state.graph_base_url,
                "download_base_url": state.download_base_url,
                "client_id": state.client_id,
                "redirect_uris": state.redirect_uris,
                "users": [user_json(u) for u in state.users],
                "options": state.options.as_dict(),
            }
        )

    async def options(request: Request) -> JSONResponse:
        if request.method == "PATCH":
            try:
                state.options.update(await body(request))
            except (KeyError, ValueError) as error:
                return _error(400, str(error))
        return JSONResponse(state.options.as_dict())

    async def users(request: Request) -> JSONResponse:
        if request.method == "POST":
            values = await body(request)
            user = services.drives.add_user(values.get("email", "ada@example.com"), values.get("display_name", "Ada Lovelace"))
            return JSONResponse(user_json(user), status_code=201)
        return JSONResponse([user_json(u) for u in state.users])

    def one_user(request: Request, user: User, values: dict) -> JSONResponse:
        return JSONResponse(user_json(user))

    def items(request: Request, user: User, values: dict) -> JSONResponse:
        drive = user.drive
        with drive.lock:
            listing = [
                {
                    "id": item.id,
                    "path": drive.path_of(item),
                    "kind": item.kind,
                    "size": item.size,
                    "malware": item.malware,
                }
                for item in drive.walk()
            ]
        return JSONResponse(listing)

    def snapshot(request: Request, user: User, values: dict) -> JSONResponse:
        return JSONResponse({path: list(entry) for path, entry in user.drive.snapshot().items()})

    def read(request: Request, user: User, values: dict) -> Response:
        return Response(user.drive.read(request.query_params["path"]), media_type="application/octet-stream")

    def write_file(request: Request, user: User, values: dict) -> JSONResponse:
        data: bytes | None = None
        if "content_base64" in values:
            data = base64.b64decode(values["content_base64"])
        elif "content" in values:
            data = str(values["content"]).encode()
        item_id = user.drive.write_file(
            values["path"],
            data,
            size=values.get("size"),
            seed=values.get("seed"),
            mime_type=values.get("mime_type"),
            has_hash=values.get("has_hash", True),
            listed_hash=values.get("listed_hash"),
            listed_size=values.get("listed_size"),
        )
        return JSONResponse({"id": item_id}, status_code=201)

    def simple(operation: Callable[[User, dict], object], status: int = 200):
        def handler(request: Request, user: User, values: dict) -> JSONResponse:
            result = operation(user, values)
            return JSONResponse({"id": result} if isinstance(result, str) else {"ok": True}, status_code=status)

        return handler

    def seed(request: Request, user: User, values: dict) -> JSONResponse:
        ids = user.drive.seed(
            n_files=int(values.get("n_files", 1000)),
            n_folders=values.get("n_folders"),
            seed=int(values.get("seed", 1)),
            folder=values.get("folder", ""),
        )
        return JSONResponse({"files": len(ids)}, status_code=201)

    async def subscriptions(request: Request) -> JSONResponse:
        return JSONResponse(services.notifier.live())

    async def expire_subscription(request: Request) -> JSONResponse:
        try:
            services.notifier.expire(request.path_params["id"])
        except KeyError:
            return _error(404, "no such subscription")
        return JSONResponse({"ok": True})

    async def lifecycle(request: Request) -> JSONResponse:
        values = await body(request)
        try:
            services.notifier.lifecycle(request.path_params["id"], values.get("event", "reauthorizationRequired"))
        except (KeyError, ValueError) as error:
            return _error(400, str(error))
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                fault = services.faults.inject(**await body(request))
            except (TypeError, ValueError) as error:
                return _error(400, str(error))
            return JSONResponse(fault.public(), status_code=201)
        if request.method == "DELETE":
            services.faults.clear()
        return JSONResponse([f.public() for f in services.faults.rules])

    async def remove_fault(request: Request) -> JSONResponse:
        services.faults.remove(int(request.path_params["id"]))
        return JSONResponse({"ok": True})

    async def requests_log(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            services.request_log.clear()
        return JSONResponse(services.request_log.snapshot())

    async def deliveries(request: Request) -> JSONResponse:
        return JSONResponse(list(state.deliveries))

    async def flush(request: Request) -> JSONResponse:
        await services.notifier.flush()
        return JSONResponse({"ok": True, "deliveries": len(state.deliveries)})

    async def expire_download_urls(request: Request) -> JSONResponse:
        services.downloads.expire_urls()
        return JSONResponse({"ok": True})

    async def reset(request: Request) -> JSONResponse:
        services.reset()
        return JSONResponse({"ok": True})

    user_base = "/_emulator/users/{user}"
    drive_base = user_base + "/drive"
    post = ["POST"]
    return [
        Route("/_emulator", summary),
        Route("/_emulator/", summary),
        Route("/_emulator/options", options, methods=["GET", "PATCH"]),
        Route("/_emulator/users", users, methods=["GET", "POST"]),
        Route(user_base, with_user(one_user)),
        Route(drive_base + "/items", with_user(items)),
        Route(drive_base + "/snapshot", with_user(snapshot)),
        Route(drive_base + "/content", with_user(read)),
        Route(drive_base + "/files", with_user(write_file), methods=post),
        Route(drive_base + "/folders", with_user(simple(lambda u, v: u.drive.create_folder(v["path"]), 201)), methods=post),
        Route(drive_base + "/move", with_user(simple(lambda u, v: u.drive.move(v["from"], v["to"]))), methods=post),
        Route(drive_base + "/rename", with_user(simple(lambda u, v: u.drive.rename(v["path"], v["name"]))), methods=post),
        Route(drive_base + "/delete", with_user(simple(lambda u, v: u.drive.delete(v["path"]))), methods=post),
        Route(drive_base + "/onenote", with_user(simple(lambda u, v: u.drive.add_onenote(v["path"]), 201)), methods=post),
        Route(drive_base + "/remote", with_user(simple(lambda u, v: u.drive.add_remote_item(v["path"]), 201)), methods=post),
        Route(drive_base + "/malware", with_user(simple(lambda u, v: u.drive.mark_malware(v["path"]))), methods=post),
        Route(drive_base + "/seed", with_user(seed), methods=post),
        Route(user_base + "/expire-delta-tokens", with_user(simple(lambda u, v: services.drives.expire_delta_tokens(u))), methods=post),
        Route(user_base + "/revoke-consent", with_user(simple(lambda u, v: services.identity.revoke_consent(u))), methods=post),
        Route(user_base + "/expire-refresh-tokens", with_user(simple(lambda u, v: services.identity.expire_refresh_tokens(u))), methods=post),
        Route(user_base + "/expire-access-tokens", with_user(simple(lambda u, v: services.identity.expire_access_tokens(u))), methods=post),
        Route("/_emulator/subscriptions", subscriptions),
        Route("/_emulator/subscriptions/{id}/expire", expire_subscription, methods=post),
        Route("/_emulator/subscriptions/{id}/lifecycle", lifecycle, methods=post),
        Route("/_emulator/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/faults/{id:int}", remove_fault, methods=["DELETE"]),
        Route("/_emulator/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/_emulator/deliveries", deliveries),
        Route("/_emulator/notifications/flush", flush, methods=post),
        Route("/_emulator/download-urls/expire", expire_download_urls, methods=post),
        Route("/_emulator/reset", reset, methods=post),
    ]
