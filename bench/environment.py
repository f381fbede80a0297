"""What every benchmark runs against: its own Azurite, the OneDrive emulator, the app's settings.

Azurite runs with indexed lookups (devtools/azurite_indexed_lookups.js): as shipped it scans a
whole partition for every row and every blob of the account for each blob it reads or writes,
which makes a 100,000-item sync quadratic on the emulator though not on Azure Storage. Its blob
GC is off (devtools/azurite_gc.js; `bench.azurite_gc` measures why). Tests use Azurite as shipped.

    with environment() as env:
        connection_id = env.connect(user)       # the real sign-in flow, over HTTP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from devtools.azurite import Azurite
from devtools.keys import new_key_entry
from devtools.serving import ServerThread, free_port

FUNCTION_KEY = "bench-function-key"


@dataclass
class Environment:
    azurite: Azurite
    emulator: object | None  # devtools.emulator.Emulator
    public_base_url: str
    _app_server: ServerThread | None = field(default=None, repr=False)

    def serve_app(self) -> str:
        """Serve the real app's HTTP functions on PUBLIC_BASE_URL (once); returns its URL."""
        if self._app_server is None:
            from devtools.host.http_server import build_http_app

            port = int(self.public_base_url.rsplit(":", 1)[1])
            self._app_server = ServerThread(build_http_app(app_specs(), function_key=FUNCTION_KEY), port=port).start()
        return self._app_server.url

    def connect(self, user) -> str:
        """Connect `user`'s drive through the real sign-in flow; returns the connection id."""
        import httpx

        from functions import connections

        self.serve_app()
        self.emulator.auto_consent = True
        # A browser: its own cookie jar, every redirect followed (connect → authorize → callback).
        with httpx.Client(base_url=self.public_base_url, follow_redirects=True, timeout=60) as browser:
            # The emulator signs in the account this cookie names (the app sends no login_hint).
            browser.cookies.set("emulator_user", user.id, domain="127.0.0.1")
            # The product's backend makes the connect session; the browser follows its link.
            session = browser.post("/api/connect-sessions", json={"ref": f"bench-{user.id}"},
                                   headers={"x-functions-key": FUNCTION_KEY})
            if session.status_code != 201:
                raise RuntimeError(f"connect session refused: HTTP {session.status_code}")
            response = browser.get(session.json()["url"])
            if response.status_code >= 400:
                raise RuntimeError(f"sign-in failed: HTTP {response.status_code} at {response.url.path}")
        connection_id = connections.connection_id_for(user.id)
        if connections.get(connection_id) is None:
            raise RuntimeError("the sign-in flow finished without a connection")
        return connection_id

    def close(self) -> None:
        if self._app_server is not None:
            self._app_server.stop()
            self._app_server = None


_SPECS = None


def app_specs():
    """The app's functions (the SDK indexes an app object only once per process)."""
    global _SPECS
    if _SPECS is None:
        import function_app
        from devtools.host.bindings import load

        _SPECS = load(function_app.app, environ={"MAINTENANCE_SCHEDULE": "0 */30 * * * *"})
    return _SPECS


@contextlib.contextmanager
def environment(*, in_memory: bool = True, time_budget_seconds: int = 240, with_emulator: bool = True,
                trace_gc: bool = False) -> Iterator[Environment]:
    from functions import storage
    from functions.settings import reload_settings

    saved = dict(os.environ)
    location = tempfile.mkdtemp(prefix="bench-azurite-")
    # Azurite's blob GC off (0: it runs once, at the start): it is Azurite's alone, and a mark and
    # sweep grows with the square of the blobs (bench/azurite_gc.py), stalling every answer.
    with Azurite(location=location, in_memory=in_memory, indexed_lookups=True, gc_interval_ms=0,
                 trace_gc=trace_gc) as azurite:
        emulator = None
        if with_emulator:
            from devtools.emulator import Emulator

            emulator = Emulator(client_id="emulator-client-id", client_secret="emulator-client-secret")
            emulator.allow_http_notification_urls = True  # the app under test listens on local http: no TLS
            emulator.start(port=0)
        port = free_port()
        emulator_url = emulator.base_url if emulator else "http://127.0.0.1:9"
        os.environ.update({
            storage.CONNECTION: azurite.connection_string,
            "MICROSOFT_CLIENT_ID": "emulator-client-id",
            "MICROSOFT_CLIENT_SECRET": "emulator-client-secret",
            "MICROSOFT_AUTHORITY": f"{emulator_url}/consumers",
            "GRAPH_BASE_URL": f"{emulator_url}/v1.0",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TOKEN_ENCRYPTION_KEYS": new_key_entry("bench1"),
            "ALLOWED_RETURN_URLS": "http://localhost:* http://127.0.0.1:*",
            "FILES_CONTAINER": "onedrive-files",
            "SYNC_TIME_BUDGET_SECONDS": str(time_budget_seconds),
            "MAINTENANCE_SCHEDULE": "0 */30 * * * *",
        })
        reload_settings()
        storage.reset_clients()
        env = Environment(azurite, emulator, f"http://127.0.0.1:{port}")
        try:
            yield env
        finally:
            env.close()
            if emulator is not None:
                emulator.stop()
            os.environ.clear()
            os.environ.update(saved)
            reload_settings()
            storage.reset_clients()
