"""Subscriptions (with the validation handshake) and change notifications (microsoft.md §2).

Changes are gathered for ``notification_debounce`` seconds, then one POST per notification URL
carries one entry per subscription touched. Deliveries run on the server's event loop, retried
on 5xx, timeouts and connection errors after ``notification_retry_delays``; every attempt (and
every handshake) is recorded with its status and response time.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .drive import Drive
from .errors import graph_error, request_ids
from .identity import PERSONAL_TENANT_ID, User

if TYPE_CHECKING:
    from .server import Emulator

SLOW_SECONDS = 2.9  # Graph counts responses over 2,900 ms as slow


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_iso(text: str) -> datetime | None:
    # Graph sends and accepts 7 fractional digits; Python takes 6.
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text.strip())
    if match is None:
        return None
    micro = (match.group(2) or "0")[:6].ljust(6, "0")
    zone = match.group(3) or "Z"
    try:
        return datetime.fromisoformat(f"{match.group(1)}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


@dataclass
class Subscription:
    id: str
    resource: str
    application_id: str
    client_state: str | None
    notification_url: str
    lifecycle_notification_url: str | None
    expires_at: datetime
    creator_id: str
    drive_id: str
    folder_id: str
    tls_version: str = "v1_2"

    @property
    def expired(self) -> bool:
        return datetime.now(timezone.utc) >= self.expires_at

    def public(self) -> dict:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": "updated",
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": iso(self.expires_at),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


def not_found(request: Request) -> JSONResponse:
    return graph_error(request, 404, "ResourceNotFound", "The object was not found.")


class Notifier:
    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[dict] = []
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}  # url -> subscription ids (ordered set)
        self._due: float | None = None
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    # ----- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(trust_env=False)
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in [self._worker, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._worker, *self._tasks] if t is not None], return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    # ----- changes -> pending notifications -------------------------------------------------------

    def on_change(self, drive: Drive, touched: set[str]) -> None:
        """Called by the drive (from any thread) after each mutation."""
        if self.emu.options.notifications_paused:
            return  # dropped: the app must recover with its safety-net delta
        with self._lock:
            for subscription in list(self.subscriptions.values()):
                if subscription.drive_id != drive.id or subscription.expired:
                    continue
                if subscription.folder_id != drive.root_id and subscription.folder_id not in touched:
                    continue
                self._pending.setdefault(subscription.notification_url, {})[subscription.id] = None
                if self._due is None:
                    self._due = time.monotonic() + self.emu.options.notification_debounce
        if self._loop is not None and self._wake is not None and self._pending:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                due = self._due
            if due is None:
                continue
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._send_pending()

    def _send_pending(self) -> None:
        with self._lock:
            pending, self._pending, self._due = self._pending, {}, None
        for url, subscription_ids in pending.items():
            entries = [self._entry(self.subscriptions[s]) for s in subscription_ids if s in self.subscriptions]
            if not entries:
                continue
            copies = 2 if self.emu.options.notifications_duplicate else 1
            for _ in range(copies):
                self._spawn(self._deliver("notification", url, {"value": entries}, list(subscription_ids)))

    def _entry(self, subscription: Subscription) -> dict:
        return {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": iso(subscription.expires_at),
            "changeType": "updated",
            "resource": subscription.resource,
            "clientState": subscription.client_state,
            "tenantId": PERSONAL_TENANT_ID,
            "resourceData": None,
        }

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Send what is pending now and wait for every delivery (with its retries) to finish."""
        self._send_pending()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def lifecycle(self, subscription_id: str, event: str) -> None:
        subscription = self.subscriptions[subscription_id]
        url = subscription.lifecycle_notification_url
        if not url:
            raise ValueError("the subscription has no lifecycleNotificationUrl")
        entry = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": iso(subscription.expires_at),
            "tenantId": PERSONAL_TENANT_ID,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
            "resource": subscription.resource,
            "resourceData": None,
        }
        assert self._loop is not None
        self._loop.call_soon_threadsafe(
            lambda: self._spawn(self._deliver("lifecycle", url, {"value": [entry]}, [subscription.id]))
        )

    async def _deliver(self, kind: str, url: str, body: dict, subscription_ids: list[str]) -> None:
        assert self._client is not None
        delays = [0.0, *self.emu.options.notification_retry_delays]
        payload = json.dumps(body).encode()
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay)
            started = time.monotonic()
            status, error = None, None
            try:
                response = await self._client.post(
                    url,
                    content=payload,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=self.emu.options.notification_timeout,
                )
                status = response.status_code
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            elapsed = time.monotonic() - started
            self._record(kind, url, status, elapsed, attempt, error, subscription_ids)
            if status is not None and status < 500 and status not in (408, 429):
                return  # delivered (2xx), or refused for good (4xx): Graph doesn't retry those

    def _record(self, kind, url, status, elapsed, attempt, error, subscription_ids) -> None:
        self.deliveries.append(
            {
                "kind": kind,
                "url": url,
                "status": status,
                "response_time": round(elapsed, 4),
                "slow": elapsed > SLOW_SECONDS,
                "attempt": attempt,
                "error": error,
                "subscription_ids": subscription_ids,
                "at": datetime.now(timezone.utc).isoformat(),
            }
        )

    # ----- the validation handshake -------------------------------------------------------------

    async def validate(self, request: Request, url: str, subscription_id: str | None) -> Response | None:
        """POST url?validationToken=...; None when the endpoint echoed the token correctly."""
        assert self._client is not None
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            f"{uuid.uuid4()}"
        )
        separator = "&" if urlsplit(url).query else "?"
        started = time.monotonic()
        status, error = None, None
        try:
            response = await self._client.post(
                f"{url}{separator}validationToken={quote(token, safe='')}",
                content=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.emu.options.validation_timeout,
            )
            status = response.status_code
            content_type = response.headers.get("content-type", "")
            ok = status == 200 and content_type.startswith("text/plain") and response.text == token
        except httpx.TimeoutException:
            error, ok = "timeout", False
        except httpx.HTTPError as failure:
            error, ok = type(failure).__name__, False
        self._record("validation", url, status, time.monotonic() - started, 1, error, [subscription_id] if subscription_id else [])
        if ok:
            return None
        if error == "timeout":
            return graph_error(request, 400, "InvalidRequest", "Subscription validation request timed out.")
        return graph_error(
            request,
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        )

    # ----- the /subscriptions routes -------------------------------------------------------------

    async def handle(self, request: Request, user: User, rest: str) -> Response:
        parts = rest.split("/")
        method = request.method
        if len(parts) == 1:
            if method == "POST":
                return await self.create(request, user)
            if method == "GET":
                items = [s.public() for s in self._owned(user)]
                return JSONResponse(
                    {"@odata.context": f"{self.emu.graph_base_url}/$metadata#subscriptions", "value": items},
                    headers=request_ids(request),
                )
        subscription = self.subscriptions.get(parts[1]) if len(parts) >= 2 else None
        if subscription is None or subscription.expired or subscription.creator_id != user.id:
            return not_found(request)
        if len(parts) == 3 and parts[2] == "reauthorize" and method == "POST":
            if self.emu.options.validate_on_renewal:
                failure = await self.validate(request, subscription.notification_url, subscription.id)
                if failure is not None:
                    return failure
            return Response(status_code=204, headers=request_ids(request))
        if len(parts) != 2:
            return graph_error(request, 400, "BadRequest", "Unsupported request.")
        if method == "GET":
            return self._json(request, subscription, 200)
        if method == "DELETE":
            self.subscriptions.pop(subscription.id, None)
            return Response(status_code=204, headers=request_ids(request))
        if method == "PATCH":
            body, failure = await self._body(request)
            if failure is not None:
                return failure
            expires, failure = self._expiration(request, body.get("expirationDateTime"))
            if failure is not None:
                return failure
            if self.emu.options.validate_on_renewal:
                failure = await self.validate(request, subscription.notification_url, subscription.id)
                if failure is not None:
                    return failure
            subscription.expires_at = expires  # type: ignore[assignment]
            return self._json(request, subscription, 200)
        return graph_error(request, 405, "BadRequest", "Method not allowed.")

    def _owned(self, user: User) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.creator_id == user.id and not s.expired]

    def _json(self, request: Request, subscription: Subscription, status: int) -> JSONResponse:
        body = {"@odata.context": f"{self.emu.graph_base_url}/$metadata#subscriptions/$entity", **subscription.public()}
        return JSONResponse(body, status_code=status, headers=request_ids(request))

    async def _body(self, request: Request) -> tuple[dict, Response | None]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return {}, graph_error(request, 400, "BadRequest", "Unable to read JSON request payload.")
        if not isinstance(body, dict):
            return {}, graph_error(request, 400, "BadRequest", "Unable to read JSON request payload.")
        return body, None

    def _expiration(self, request: Request, value) -> tuple[datetime | None, Response | None]:
        expires = parse_iso(value) if isinstance(value, str) else None
        if expires is None:
            return None, graph_error(request, 400, "InvalidRequest", "expirationDateTime is missing or invalid.")
        now = datetime.now(timezone.utc)
        limit = self.emu.options.max_subscription_minutes
        if expires > now + timedelta(minutes=limit):
            return None, graph_error(
                request, 400, "ExtensionError", f"Subscription expiration can only be {limit} minutes in the future."
            )
        if expires <= now:
            return None, graph_error(request, 400, "ExtensionError", "Subscription expiration must be in the future.")
        return expires, None

    async def create(self, request: Request, user: User) -> Response:
        body, failure = await self._body(request)
        if failure is not None:
            return failure
        if body.get("changeType") != "updated":
            return graph_error(
                request, 400, "InvalidRequest", "The value of changeType is not supported for this resource: use 'updated'."
            )
        url = body.get("notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        for candidate in [url, lifecycle_url] if lifecycle_url else [url]:
            scheme = urlsplit(candidate).scheme if isinstance(candidate, str) else ""
            allowed = ("https",) if self.emu.options.require_https_notification_url else ("http", "https")
            if scheme not in allowed:
                return graph_error(request, 400, "InvalidRequest", "The notification URL must be an HTTPS URL.")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 255):
            return graph_error(request, 400, "InvalidRequest", "clientState must be a string of at most 255 characters.")
        resource = body.get("resource")
        target, failure = self._resource(request, user, resource)
        if failure is not None:
            return failure
        expires, failure = self._expiration(request, body.get("expirationDateTime"))
        if failure is not None:
            return failure
        subscription_id = str(uuid.uuid4())
        for candidate in [url, lifecycle_url] if lifecycle_url else [url]:
            failure = await self.validate(request, candidate, subscription_id)
            if failure is not None:
                return failure
        subscription = Subscription(
            id=subscription_id,
            resource=resource,  # type: ignore[arg-type]
            application_id=self.emu.client_id,
            client_state=client_state,
            notification_url=url,  # type: ignore[arg-type]
            lifecycle_notification_url=lifecycle_url,
            expires_at=expires,  # type: ignore[arg-type]
            creator_id=user.id,
            drive_id=user.drive.id,
            folder_id=target,  # type: ignore[arg-type]
            tls_version=body.get("latestSupportedTlsVersion") or "v1_2",
        )
        self.subscriptions[subscription.id] = subscription
        return self._json(request, subscription, 201)

    def _resource(self, request: Request, user: User, resource) -> tuple[str | None, Response | None]:
        from .graph import normalise_drive_id, parse_item_path

        if not isinstance(resource, str) or not resource.strip("/"):
            return None, graph_error(request, 400, "InvalidRequest", "The resource is missing.")
        parsed = parse_item_path(resource.strip("/"))
        if parsed is None or parsed[3]:
            return None, graph_error(request, 400, "InvalidRequest", f"Unsupported resource '{resource}'.")
        drive_spec, kind, value, _ = parsed
        if drive_spec != "me/drive" and normalise_drive_id(drive_spec.split("/", 1)[1]) != user.drive.id:
            return None, graph_error(request, 403, "ExtensionError", "Access denied to the resource.")
        drive = user.drive
        item = drive.get(drive.root_id) if kind == "root" else drive.find(value) if kind == "path" else drive.get(value)
        if item is None or item.deleted:
            return None, graph_error(request, 404, "ResourceNotFound", "The resource was not found.")
        if not item.is_folder_like:
            # On personal drives any folder can be subscribed to, but never a single file.
            return None, graph_error(
                request, 400, "InvalidRequest", "Subscriptions are only supported on the drive root or a folder."
            )
        return item.id, None
