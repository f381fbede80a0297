"""Subscriptions (with the validation handshake) and change notifications (microsoft.md §2, §6).

Changes are gathered for ``notification_debounce`` seconds, then one POST per notification URL
carries one entry per subscription touched. Deliveries run on the server's event loop. Like
Graph, any answer but a 2xx (and a timeout or a refused connection) is retried, after
``notification_retry_delays``, for up to ``notification_retry_window`` (4 hours); and the
slow-endpoint rule applies per URL: answers over 2,900 ms are slow, and once at least 100
notifications in a 10-minute window have been answered, 10% slow delays the next deliveries by
10 minutes and 15% drops them. Waits are in modelled time (``time_scale``), so a test lives
through hours in seconds. Every attempt (and every handshake) is recorded.
``routes/graph.py`` maps the ``/subscriptions`` requests onto ``create``/``renew``/... here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import httpx

from ..addressing import app_folder_of, in_app_folder, normalise_drive_id, parse_item_path
from ..drive import Drive
from ..errors import GraphError
from ..state import State, Subscription, User
from ..times import ModelledClock, iso, parse_iso
from .identity import PERSONAL_TENANT_ID

MAX_CLIENT_STATE = 128  # "up to 128 characters" (the subscription resource page)


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
        self.clock = ModelledClock(lambda: self.state.options.time_scale)
        self._windows: dict[str, list[float]] = {}  # url -> [window start, answered, slow]

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
        options = self.state.options
        payload = json.dumps(body).encode()
        # Modelled seconds since the first attempt: the waits as modelled, the answers as they took.
        spent = 0.0
        attempt = 0
        while True:
            attempt += 1
            verdict = self._slow_verdict(url)
            if verdict == "drop":
                self._record(kind, url, None, 0.0, attempt, "dropped: slow endpoint", subscription_ids)
                return
            if verdict == "delay":
                await self.clock.sleep(options.slow_delay_seconds)
                spent += options.slow_delay_seconds
            started = time.monotonic()
            status, error = None, None
            try:
                response = await self._client.post(
                    url,
                    content=payload,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=options.notification_timeout,
                )
                status = response.status_code
            except httpx.TimeoutException:
                error = "timeout"
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            elapsed = time.monotonic() - started
            spent += elapsed
            self._count(url, slow=error == "timeout" or elapsed > options.slow_response_seconds)
            self._record(kind, url, status, elapsed, attempt, error, subscription_ids,
                         delayed=options.slow_delay_seconds if verdict == "delay" else 0, retrying_for=spent)
            if status is not None and 200 <= status < 300:
                return
            delays = options.notification_retry_delays
            if not delays:
                return
            wait = delays[min(attempt - 1, len(delays) - 1)]
            if spent + wait > options.notification_retry_window:
                self._record(kind, url, None, 0.0, attempt, "gave up: retry window over", subscription_ids,
                             retrying_for=spent)
                return
            await self.clock.sleep(wait)
            spent += wait

    def _window(self, url: str) -> list[float]:
        now = self.clock.now()
        window = self._windows.get(url)
        if window is None or now - window[0] >= self.state.options.slow_window_seconds:
            window = self._windows[url] = [now, 0, 0]  # counters reset every 10 minutes
        return window

    def _slow_verdict(self, url: str) -> str:
        """"send", "delay" or "drop", from the endpoint's answers in the current window."""
        options = self.state.options
        _, answered, slow = self._window(url)
        if answered < options.slow_min_notifications:
            return "send"
        if slow / answered >= options.slow_drop_fraction:
            return "drop"
        if slow / answered >= options.slow_delay_fraction:
            return "delay"
        return "send"

    def _count(self, url: str, slow: bool) -> None:
        window = self._window(url)
        window[1] += 1
        window[2] += int(slow)

    def _record(self, kind, url, status, elapsed, attempt, error, subscription_ids, delayed: float = 0,
                retrying_for: float = 0) -> None:
        self.state.deliveries.append(
            {
                "kind": kind,
                "url": url,
                "status": status,
                "response_time": round(elapsed, 4),
                "slow": elapsed > self.state.options.slow_response_seconds,
                "attempt": attempt,
                "error": error,
                "delayed": delayed,  # modelled seconds held back by the slow-endpoint rule
                "retrying_for": round(retrying_for, 3),  # modelled seconds since the first attempt
                "subscription_ids": subscription_ids,
                "at": datetime.now(UTC).isoformat(),
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
            self.state.subscriptions[subscription_id].expires_at = datetime.fromtimestamp(0, UTC)
            self.state.changed()

    def _expiration(self, value) -> datetime:
        expires = parse_iso(value) if isinstance(value, str) else None
        if expires is None:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is missing or invalid.")
        now = datetime.now(UTC)
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
        allowed = ("https", "http") if self.state.options.allow_http_notification_urls else ("https",)
        for candidate in [url, lifecycle_url] if lifecycle_url else [url]:
            scheme = urlsplit(candidate).scheme if isinstance(candidate, str) else ""
            if scheme not in allowed:
                raise GraphError(400, "InvalidRequest", "The notification URL must be an HTTPS URL.")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE):
            raise GraphError(
                400, "InvalidRequest", f"clientState is too long: at most {MAX_CLIENT_STATE} characters are allowed."
            )
        resource = body.get("resource")
        target = self._resource(user, resource, app_folder_only)
        expires = self._expiration(body.get("expirationDateTime"))
        duplicate = self._duplicate(user, target)
        if duplicate is not None and not self.state.options.allow_duplicate_subscriptions:
            # One subscription per resource and changeType per app and user; me/drive/root and
            # drives/{id}/root are the same resource (microsoft.md §6, abraunegg/onedrive#2501).
            raise GraphError(
                409, "ObjectIdentifierInUse",
                f"Subscription Id {duplicate.id} already exists for the requested combination",
            )
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

    def _duplicate(self, user: User, folder_id: str) -> Subscription | None:
        return next(
            (s for s in self.owned(user) if s.application_id == self.state.client_id
             and s.drive_id == user.drive.id and s.folder_id == folder_id),
            None,
        )

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
