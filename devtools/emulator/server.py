"""The Emulator: state, the Python control API, and the two uvicorn servers on a background thread.

Two origins: ``base_url`` (sign-in, Graph, control API, pages) and ``download_base_url`` (the
pre-authenticated content host), so that following a /content redirect crosses origins as it does
against Microsoft.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .delta import Delta
from .download import Downloads
from .drive import Drive, Item
from .faults import Faults, RequestLog
from .graph import Graph
from .identity import Identity, User
from .notifications import Notifier
from .options import Options

logger = logging.getLogger(__name__)


class _ResettableProtocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the transport to the app so a fault can reset the socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope, receive, send):
            scope.setdefault("extensions", {})["emulator.transport"] = self.transport
            await inner(scope, receive, send)

        self.app = app

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Headers and body leave in separate writes: without this, delayed ACKs add 40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Server(uvicorn.Server):
    """uvicorn's server, stopping at once: uvicorn polls its exit flag every 100 ms and then
    sleeps 100 ms more; a test suite that starts an emulator per test can't afford that."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_event = asyncio.Event()

    async def main_loop(self) -> None:
        while not await self.on_tick(0):  # counter 0: refreshes the Date header
            try:
                await asyncio.wait_for(self.exit_event.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout_graceful_shutdown
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()


class Emulator:
    """Microsoft sign-in + OneDrive Personal Graph, in memory. See the package docstring."""

    def __init__(
        self,
        client_id: str = "emulator-client-id",
        client_secret: str = "emulator-client-secret",
        redirect_uris: list[str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        object.__setattr__(self, "options", Options())
        self.client_id = client_id
        self.client_secret = client_secret
        # Empty: any redirect URI is accepted at authorize (the token request must still repeat
        # it exactly). Register URIs to get the real service's exact matching.
        self.redirect_uris: list[str] = list(redirect_uris or [])
        self.host = host
        self.signing_key = secrets.token_bytes(32)
        self.lock = threading.RLock()
        self.users: list[User] = []
        self.identity = Identity(self)
        self.graph = Graph(self)
        self.delta = Delta(self)
        self.downloads = Downloads(self)
        self.notifier = Notifier(self)
        self.faults = Faults()
        self.request_log = RequestLog()
        self.base_url = ""
        self.download_base_url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[_Server] = []
        self._startup_error: BaseException | None = None

    # Options are settable on the emulator itself: emu.delta_page_size = 3.
    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options")
        if options is not None and name in Options.names():
            return getattr(options, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Options.names():
            setattr(self.options, name, value)
        else:
            object.__setattr__(self, name, value)

    # ----- URLs ----------------------------------------------------------------------------------

    @property
    def authority(self) -> str:
        return f"{self.base_url}/consumers"

    @property
    def graph_base_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_emulator"

    # ----- servers -------------------------------------------------------------------------------

    def start(self, port: int = 0, download_port: int = 0) -> "Emulator":
        from .app import build_api_app, build_download_app

        api_socket = self._listen(port)
        download_socket = self._listen(download_port)
        self.base_url = f"http://{self.host}:{api_socket.getsockname()[1]}"
        self.download_base_url = f"http://{self.host}:{download_socket.getsockname()[1]}"
        configs = [
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,  # URLs carry codes and signed tokens: never logged
                http=_ResettableProtocol,
                lifespan="off",
                timeout_graceful_shutdown=1,
                ws="none",
            )
            for app in (build_api_app(self), build_download_app(self))
        ]
        self._servers = [_Server(config) for config in configs]
        sockets = [api_socket, download_socket]

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await self.notifier.start()
            try:
                await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in zip(self._servers, sockets)))
            finally:
                await self.notifier.stop()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:  # surfaced by start()
                self._startup_error = error

        self._thread = threading.Thread(target=run, name="onedrive-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not all(s.started for s in self._servers):
            if self._startup_error is not None or not self._thread.is_alive():
                raise RuntimeError(f"emulator failed to start: {self._startup_error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start within 10 s")
            time.sleep(0.005)
        return self

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
            if self._loop is not None and not self._loop.is_closed():
                try:
                    self._loop.call_soon_threadsafe(server.exit_event.set)
                except RuntimeError:  # the loop already ended
                    pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> "Emulator":
        return self.start() if not self._servers else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget users, subscriptions, faults, logs and options (for a shared emulator)."""
        with self.lock:
            self.users.clear()
            object.__setattr__(self, "options", Options())
            self.faults.clear()
            self.request_log.clear()
            self.notifier.subscriptions.clear()
            self.notifier.deliveries.clear()
            self.delta.sessions.clear()
            self.identity.codes.clear()
            self.identity.access_tokens.clear()
            self.identity.refresh_tokens.clear()

    # ----- users and drives ------------------------------------------------------------------------

    def add_user(self, email: str = "ada@example.com", display_name: str = "Ada Lovelace") -> User:
        with self.lock:
            # Personal CIDs are 16 hex digits; starting with 0 lets the "dropped leading zero"
            # quirk show (sync-scenarios #14).
            while True:
                cid = "0" + secrets.token_hex(8)[:15]
                if self.user_by_id(cid) is None:
                    break
            drive = Drive(
                cid,
                cid,
                display_name,
                self.lock,
                on_change=self.notifier.on_change,
                tombstones=lambda: self.options.tombstones,
            )
            user = User(id=cid, email=email, display_name=display_name, drive=drive)
            self.users.append(user)
            return user

    def user_by_id(self, user_id: str) -> User | None:
        return next((u for u in self.users if u.id == user_id), None)

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users if u.email.lower() == email.lower()), None)

    def drive_by_id(self, drive_id: str) -> Drive | None:
        user = next((u for u in self.users if u.drive.id == drive_id), None)
        return user.drive if user else None

    def download_url(self, drive: Drive, item: Item) -> str:
        return self.downloads.url_for(drive, item)

    # ----- what tests break on purpose ---------------------------------------------------------------

    def expire_delta_tokens(self, user: User) -> None:
        """Every deltaLink and nextLink of the user's drive answers 410 from now on."""
        with self.lock:
            user.drive.delta_epoch += 1
            self.delta.forget_drive(user.drive.id)

    def revoke_consent(self, user: User) -> None:
        """Refresh tokens give invalid_grant (AADSTS70000); access tokens give 401."""
        with self.lock:
            user.consent_epoch += 1
            user.consents.clear()

    def expire_refresh_tokens(self, user: User) -> None:
        """Refresh tokens give invalid_grant AADSTS700082 (expired by inactivity)."""
        with self.lock:
            user.refresh_epoch += 1

    def expire_access_tokens(self, user: User | None = None) -> None:
        """Every access token (of the user, or of everyone) answers 401 from now on."""
        with self.lock:
            for grant in self.identity.access_tokens.values():
                if user is None or grant.user_id == user.id:
                    grant.expires_at = 0

    def expire_subscription(self, subscription_id: str) -> None:
        with self.lock:
            from datetime import datetime, timezone

            self.notifier.subscriptions[subscription_id].expires_at = datetime.fromtimestamp(0, timezone.utc)

    def expire_download_urls(self) -> None:
        self.downloads.epoch += 1

    def send_lifecycle_notification(self, subscription_id: str, event: str = "reauthorizationRequired") -> None:
        self.notifier.lifecycle(subscription_id, event)

    @property
    def subscriptions(self) -> list[dict]:
        return [s.public() for s in list(self.notifier.subscriptions.values()) if not s.expired]

    @property
    def deliveries(self) -> list[dict]:
        return list(self.notifier.deliveries)

    @property
    def requests(self) -> list[dict]:
        return self.request_log.snapshot()

    def flush_notifications(self, timeout: float = 60) -> None:
        """Deliver pending notifications now; returns when every delivery (and retry) is done."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.notifier.flush(), self._loop).result(timeout)
