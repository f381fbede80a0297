"""Subscriptions (with the validation handshake) and change notifications (microsoft.md §2).

Changes are gathered for ``notification_debounce`` seconds, then one POST per notification URL
carries one entry per subscription touched. Deliveries run on the server's event loop, retried
on 5xx, timeouts and connection errors after ``notification_retry_delays``; every attempt (and
every handshake) is recorded with its status and response time. ``routes/graph.py`` maps the
``/subscriptions`` requests onto ``create``/``get``/``renew``/``reauthorize``/``delete``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import httpx

from ..addressing import app_folder_of, in_app_folder, normalise_drive_id, parse_item_path
from ..drive import Drive
from ..errors import GraphError
from ..state import State, Subscription, User
from ..times import iso, parse_iso
from .identity import PERSONAL_TENANT_ID

SLOW_SECONDS = 2.9  # Graph counts responses over 2,900 ms as slow


def not_found() -> GraphError:
    return GraphError(404, "ResourceNotFound", "The object was not found.")


class Notifier:
    def __init__(self, state: State) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, None]] = {}  # url -> subscription ids (ordered set)
        self._due: float | None = None
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """The state's subscriptions by id (tests/notifications reach in to shorten one)."""
        return self.state.subscriptions

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
        if self.state.options.notifications_paused:
            return  # dropped: the app must recover with its safety-net delta
        with self._lock:
            for subscription in list(self.state.subscriptions.values()):
                if subscription.drive_id != drive.id or subscription.expired:
                    continue
                if subscription.folder_id != drive.root_id and subscription.folder_id not in touched:
                    continue
                self._pending.setdefault(subscription.notification_url, {})[subscription.id] = None
                if self._due is None:
                    self._due = time.monotonic() + self.state.options.notification_debounce
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
            entries = [self._entry(self.state.subscriptions[s]) for s in subscription_ids if s in self.state.subscriptions]
            if not entries:
                continue
            copies = 2 if self.state.options.notifications_duplicate else 1
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
        subscription = self.state.subscriptions[subscription_id]
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
        delays = [0.0, *self.state.options.notification_retry_delays]
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
                    timeout=self.state.options.notification_timeout,
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
        self.state.deliveries.append(
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

    async def validate(self, url: str, subscription_id: str | None) -> None:
        """POST url?validationToken=...; ``GraphError`` unless the endpoint echoed the token correctly."""
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
                timeout=self.state.options.validation_timeout,
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
            return
        if error == "timeout":
            raise GraphError(400, "InvalidRequest", "Subscription validation request timed out.")
        raise GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Response must exactly match validationToken query parameter.",
        )

    # ----- the subscription resource -------------------------------------------------------------

    def live(self) -> list[dict]:
        """Every subscription that has not expired, as Graph shows it."""
        return [s.public() for s in list(self.state.subscriptions.values()) if not s.expired]

    def owned(self, user: User) -> list[Subscription]:
        return [s for s in self.state.subscriptions.values() if s.creator_id == user.id and not s.expired]

    def find(self, user: User, subscription_id: str) -> Subscription:
        subscription = self.state.subscriptions.get(subscription_id)
        if subscription is None or subscription.expired or subscription.creator_id != user.id:
            raise not_found()
        return subscription

    def delete(self, user: User, subscription_id: str) -> None:
        self.state.subscriptions.pop(self.find(user, subscription_id).id, None)
        self.state.changed()

    async def reauthorize(self, user: User, subscription_id: str) -> None:
        subscription = self.find(user, subscription_id)
        if self.state.options.validate_on_renewal:
            await self.validate(subscription.notification_url, subscription.id)

    async def renew(self, user: User, subscription_id: str, body: dict) -> Subscription:
        subscription = self.find(user, subscription_id)
        expires = self._expiration(body.get("expirationDateTime"))
        if self.state.options.validate_on_renewal:
            await self.validate(subscription.notification_url, subscription.id)
        subscription.expires_at = expires
        self.state.changed()
        return subscription

    def expire(self, subscription_id: str) -> None:
        with self.state.lock:
            self.state.subscriptions[subscription_id].expires_at = datetime.fromtimestamp(0, timezone.utc)
            self.state.changed()

    def _expiration(self, value) -> datetime:
        expires = parse_iso(value) if isinstance(value, str) else None
        if expires is None:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is missing or invalid.")
        now = datetime.now(timezone.utc)
        limit = self.state.options.max_subscription_minutes
        if expires > now + timedelta(minutes=limit):
            raise GraphError(400, "ExtensionError", f"Subscription expiration can only be {limit} minutes in the future.")
        if expires <= now:
            raise GraphError(400, "ExtensionError", "Subscription expiration must be in the future.")
        return expires

    async def create(self, user: User, body: dict, *, app_folder_only: bool = False) -> Subscription:
        if body.get("changeType") != "updated":
            raise GraphError(
                400, "InvalidRequest", "The value of changeType is not supported for this resource: use 'updated'."
            )
        url = body.get("notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        for candidate in [url, lifecycle_url] if lifecycle_url else [url]:
            scheme = urlsplit(candidate).scheme if isinstance(candidate, str) else ""
            allowed = ("https",) if self.state.options.require_https_notification_url else ("http", "https")
            if scheme not in allowed:
                raise GraphError(400, "InvalidRequest", "The notification URL must be an HTTPS URL.")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 255):
            raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 255 characters.")
        resource = body.get("resource")
        target = self._resource(user, resource, app_folder_only)
        expires = self._expiration(body.get("expirationDateTime"))
        subscription_id = str(uuid.uuid4())
        for candidate in [url, lifecycle_url] if lifecycle_url else [url]:
            await self.validate(candidate, subscription_id)
        subscription = Subscription(
            id=subscription_id,
            resource=resource,  # type: ignore[arg-type]
            application_id=self.state.client_id,
            client_state=client_state,
            notification_url=url,  # type: ignore[arg-type]
            lifecycle_notification_url=lifecycle_url,
            expires_at=expires,
            creator_id=user.id,
            drive_id=user.drive.id,
            folder_id=target,
            tls_version=body.get("latestSupportedTlsVersion") or "v1_2",
        )
        self.state.subscriptions[subscription.id] = subscription
        self.state.changed()
        return subscription

    def _resource(self, user: User, resource, app_folder_only: bool = False) -> str:
        if not isinstance(resource, str) or not resource.strip("/"):
            raise GraphError(400, "InvalidRequest", "The resource is missing.")
        parsed = parse_item_path(resource.strip("/"))
        if parsed is None or parsed.action:
            raise GraphError(400, "InvalidRequest", f"Unsupported resource '{resource}'.")
        if parsed.drive != "me/drive" and normalise_drive_id(parsed.drive.split("/", 1)[1]) != user.drive.id:
            raise GraphError(403, "ExtensionError", "Access denied to the resource.")
        drive = user.drive
        kind, value = parsed.kind, parsed.value
        if kind == "approot":
            item = app_folder_of(drive)
        else:
            item = drive.get(drive.root_id) if kind == "root" else drive.find(value) if kind == "path" else drive.get(value)
        if item is None or item.deleted:
            raise GraphError(404, "ResourceNotFound", "The resource was not found.")
        if app_folder_only and not in_app_folder(drive, item):
            raise GraphError(403, "ExtensionError", "Access denied to the resource.")
        if not item.is_folder_like:
            # On personal drives any folder can be subscribed to, but never a single file.
            raise GraphError(400, "InvalidRequest", "Subscriptions are only supported on the drive root or a folder.")
        return item.id
