"""The Emulator: builds the state, the services and the two apps, serves them with uvicorn on a
background thread, and offers the Python control API that tests use.

Two origins: ``base_url`` (sign-in, Graph, control API, pages) and ``download_base_url`` (the
pre-authenticated content host), so that following a /content redirect crosses origins as it does
against Microsoft.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .drive import Drive, Item
from .options import Options
from .routes import build_api_app, build_download_app
from .services import Services
from .services.faults import Faults, RequestLog
from .services.identity import Identity
from .services.notifications import Notifier
from .services.persistence import Persistence
from .state import State, User

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_event.wait(), 1.0)

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


class _Option:
    """``emu.<switch>`` reads and sets ``emu.state.options.<switch>``: tests flip switches on the
    emulator itself (``emu.delta_page_size = 3``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, emu: Emulator | None, owner: type | None = None) -> Any:
        if emu is None:
            return self
        return getattr(emu.state.options, self.name)

    def __set__(self, emu: Emulator, value: Any) -> None:
        emu.state.options.update({self.name: value})


class Emulator:
    """Microsoft sign-in + OneDrive Personal Graph, in memory. See the package docstring."""

    # Slots: a misspelt switch (emu.delta_pagesize = 3) fails instead of silently doing nothing.
    __slots__ = ("state", "services", "persistence", "_thread", "_loop", "_servers", "_startup_error")

    def __init__(
        self,
        client_id: str = "emulator-client-id",
        client_secret: str = "emulator-client-secret",
        redirect_uris: list[str] | None = None,
        host: str = "127.0.0.1",
        data_dir: str | Path | None = None,
    ) -> None:
        """``data_dir``: keep users, drives, tokens and subscriptions there, and start from what
        a previous run kept (see services/persistence.py). None: in memory only."""
        self.state = State(client_id, client_secret, redirect_uris, host)
        self.services = Services.build(self.state)
        self.persistence = Persistence(self.state, self.services.drives, data_dir) if data_dir else None
        if self.persistence is not None:
            self.persistence.load()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[_Server] = []
        self._startup_error: BaseException | None = None

    # ----- what the state and services hold, under the names tests use ---------------------------

    options = property(lambda self: self.state.options)
    users = property(lambda self: self.state.users)
    lock = property(lambda self: self.state.lock)
    identity: Identity = property(lambda self: self.services.identity)  # type: ignore[assignment]
    notifier: Notifier = property(lambda self: self.services.notifier)  # type: ignore[assignment]
    faults: Faults = property(lambda self: self.services.faults)  # type: ignore[assignment]
    request_log: RequestLog = property(lambda self: self.services.request_log)  # type: ignore[assignment]
    host = property(lambda self: self.state.host)
    base_url = property(lambda self: self.state.base_url)
    download_base_url = property(lambda self: self.state.download_base_url)
    authority = property(lambda self: self.state.authority)
    graph_base_url = property(lambda self: self.state.graph_base_url)
    control_url = property(lambda self: self.state.control_url)

    @property
    def client_id(self) -> str:
        return self.state.client_id

    @client_id.setter
    def client_id(self, value: str) -> None:
        self.state.client_id = value

    @property
    def client_secret(self) -> str:
        return self.state.client_secret

    @client_secret.setter
    def client_secret(self, value: str) -> None:
        self.state.client_secret = value

    @property
    def redirect_uris(self) -> list[str]:
        return self.state.redirect_uris

    @redirect_uris.setter
    def redirect_uris(self, value: list[str]) -> None:
        self.state.redirect_uris = list(value)

    # ----- servers -------------------------------------------------------------------------------

    def start(self, port: int = 0, download_port: int = 0) -> Emulator:
        api_socket = self._listen(port)
        download_socket = self._listen(download_port)
        self.state.base_url = f"http://{self.host}:{api_socket.getsockname()[1]}"
        self.state.download_base_url = f"http://{self.host}:{download_socket.getsockname()[1]}"
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
            for app in (build_api_app(self.services), build_download_app(self.services))
        ]
        self._servers = [_Server(config) for config in configs]
        sockets = [api_socket, download_socket]
        notifier = self.services.notifier

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await notifier.start()
            try:
                await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in zip(self._servers, sockets, strict=True)))
            finally:
                await notifier.stop()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:  # surfaced by start()
                self._startup_error = error

        self._thread = threading.Thread(target=run, name="onedrive-emulator", daemon=True)
        self._thread.start()
        if self.persistence is not None:
            self.persistence.start()
        deadline = time.monotonic() + 10
        while not all(s.started for s in self._servers):
            if self._startup_error is not None or not self._thread.is_alive():
                raise RuntimeError(f"emulator failed to start: {self._startup_error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not start within 10 s")
            time.sleep(0.005)
        return self

    def serve_as(self, base_url: str, download_base_url: str) -> None:
        """Name these origins in what the emulator hands out (links, download URLs, discovery)
        instead of the ones it listens on: for a client that reaches it through a proxy under
        Microsoft's host names (tests/conformance)."""
        self.state.base_url = base_url.rstrip("/")
        self.state.download_base_url = download_base_url.rstrip("/")

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
                with contextlib.suppress(RuntimeError):  # the loop already ended
                    self._loop.call_soon_threadsafe(server.exit_event.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        if self.persistence is not None:
            self.persistence.stop()  # the last changes, written before the process goes

    def __enter__(self) -> Emulator:
        return self.start() if not self._servers else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget users, subscriptions, faults, logs and options (for a shared emulator)."""
        self.services.reset()

    # ----- users and drives ------------------------------------------------------------------------

    def add_user(self, email: str = "ada@example.com", display_name: str = "Ada Lovelace") -> User:
        return self.services.drives.add_user(email, display_name)

    def user_by_id(self, user_id: str) -> User | None:
        return self.state.user_by_id(user_id)

    def user_by_email(self, email: str) -> User | None:
        return self.state.user_by_email(email)

    def drive_by_id(self, drive_id: str) -> Drive | None:
        return self.state.drive_by_id(drive_id)

    def download_url(self, drive: Drive, item: Item) -> str:
        return self.services.downloads.url_for(drive, item)

    # ----- what tests break on purpose ---------------------------------------------------------------

    def expire_delta_tokens(self, user: User) -> None:
        """Every deltaLink and nextLink of the user's drive answers 410 from now on."""
        self.services.drives.expire_delta_tokens(user)

    def revoke_consent(self, user: User) -> None:
        """Refresh tokens give invalid_grant (AADSTS70000); access tokens give 401."""
        self.services.identity.revoke_consent(user)

    def expire_refresh_tokens(self, user: User) -> None:
        """Refresh tokens give invalid_grant AADSTS700082 (expired by inactivity)."""
        self.services.identity.expire_refresh_tokens(user)

    def expire_access_tokens(self, user: User | None = None) -> None:
        """Every access token (of the user, or of everyone) answers 401 from now on."""
        self.services.identity.expire_access_tokens(user)

    def expire_subscription(self, subscription_id: str) -> None:
        self.services.notifier.expire(subscription_id)

    def expire_download_urls(self) -> None:
        self.services.downloads.expire_urls()

    def send_lifecycle_notification(self, subscription_id: str, event: str = "reauthorizationRequired") -> None:
        self.services.notifier.lifecycle(subscription_id, event)

    # ----- what happened -----------------------------------------------------------------------------

    @property
    def subscriptions(self) -> list[dict]:
        return self.services.notifier.live()

    @property
    def deliveries(self) -> list[dict]:
        return list(self.state.deliveries)

    @property
    def requests(self) -> list[dict]:
        return self.services.request_log.snapshot()

    def flush_notifications(self, timeout: float = 60) -> None:
        """Deliver pending notifications now; returns when every delivery (and retry) is done."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.services.notifier.flush(), self._loop).result(timeout)


for _field in fields(Options):
    setattr(Emulator, _field.name, _Option(_field.name))
