"""Fault injection rules and the request log (``routes/middleware.py`` applies them on both origins).

A fault matches on method, a regex searched in the path, and the origin ("api" for Graph and
sign-in, "download" for the pre-authenticated content host). It fires for the next ``times``
matching calls, or on a ``fraction`` of them (seeded RNG), or always until cleared.

Kinds: an HTTP status (429/503/500/504/509/... with an optional Retry-After as given: integer,
decimal or an HTTP date), "reset" (the socket is closed with SO_LINGER 0: a real TCP RST, no
response), "timeout" (no answer until the client gives up, then a reset), "latency" (a delay,
then the normal answer), and ``after_bytes`` (the headers and that many body bytes, then a
reset: a transfer cut in the middle).

On Graph, ``code`` and ``message`` replace the error body's usual code and "Injected fault." text
(Graph's subscription refusals differ only there).

On the token endpoint, ``token_error`` answers one of sign-in's errors by name (``TOKEN_FAULTS``:
``interaction_required``, ``consent_required``, ``login_required``, ``invalid_grant``, and the
app-wide ``invalid_client`` AADSTS7000215 / ``client_secret_expired`` AADSTS7000222).

Not HTTP: "drop_tombstone" makes the next matching deletes (``path`` searched in the deleted
item's path in the drive) leave no tombstone, so delta never reports them, as personal delta
sometimes does (OneDrive/onedrive-api-docs#1927).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any


@dataclass
class Fault:
    id: int
    path: str
    method: str | None = None
    host: str | None = None  # "api" | "download" | None (both)
    kind: str = "status"  # "status" | "reset" | "timeout" | "latency" | "drop_tombstone"
    status: int | None = None
    token_error: str | None = None  # a name in TOKEN_FAULTS (the token endpoint's own errors)
    retry_after: str | None = None
    latency: float = 0.0
    times: int | None = None
    fraction: float | None = None
    seed: int = 0
    after_bytes: int | None = None
    hang: float = 120.0  # "timeout": the longest the request is held
    retry_after_in: float | None = None  # Retry-After as the HTTP date this many seconds ahead
    code: str | None = None  # Graph error code instead of the status's usual one
    message: str | None = None  # Graph error message instead of "Injected fault."
    fired: int = 0
    _pattern: re.Pattern = field(init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self._rng = random.Random(self.seed)

    def public(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


# Sign-in errors a token request can meet: (HTTP status, error, AADSTS code, message).
TOKEN_FAULTS: dict[str, tuple[int, str, int, str]] = {
    "interaction_required": (400, "interaction_required", 50076,
                             "Due to a configuration change made by your administrator, or because you moved to a new "
                             "location, you must use multi-factor authentication to access '00000003-0000-0000-c000-"
                             "000000000000'."),
    "consent_required": (400, "consent_required", 65001,
                         "The user or administrator has not consented to use the application. Send an interactive "
                         "authorization request for this user and resource."),
    "login_required": (400, "login_required", 50058,
                       "A silent sign-in request was sent but no user is signed in."),
    "invalid_grant": (400, "invalid_grant", 70000,
                      "The provided value for the 'refresh_token' is not valid. The user or administrator has "
                      "revoked the consent or the grant."),
    # App-wide: every connection's every refresh fails alike until the secret is fixed. 401, not 400.
    "invalid_client": (401, "invalid_client", 7000215,
                       "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                       "secret value, not the client secret ID, for a secret added to app '{client_id}'."),
    "client_secret_expired": (401, "invalid_client", 7000222,
                              "The provided client secret keys for app '{client_id}' are expired. Visit the Azure "
                              "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "
                              "using certificate credentials for added security: https://aka.ms/certCreds."),
}
HTTP_KINDS = ("status", "reset", "timeout", "latency")


def retry_after_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value.astimezone(UTC), usegmt=True)
    return str(value)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._next_id = 1

    def inject(
        self,
        method: str | None = None,
        path: str = ".*",
        status: int | None = None,
        retry_after: Any = None,
        times: int | None = None,
        fraction: float | None = None,
        seed: int = 0,
        kind: str | None = None,
        latency: float = 0.0,
        host: str | None = None,
        after_bytes: int | None = None,
        hang: float = 120.0,
        retry_after_http_date_in: float | None = None,
        token_error: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Add a rule; returns it (``fault.fired`` counts how often it fired).

        ``retry_after`` is sent as given ("2", "2.128", 41) or as an HTTP date for a datetime;
        ``retry_after_http_date_in=N`` sends the HTTP date N seconds from when it fires."""
        if token_error is not None:
            if token_error not in TOKEN_FAULTS:
                raise ValueError(f"unknown token error {token_error!r}: one of {sorted(TOKEN_FAULTS)}")
            status = status or TOKEN_FAULTS[token_error][0]
        if kind is None:
            kind = "status" if status is not None else ("latency" if latency else "status")
        if kind not in (*HTTP_KINDS, "drop_tombstone"):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "status" and status is None and after_bytes is None:
            raise ValueError("a status fault needs a status")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                path=path,
                method=method.upper() if method else None,
                host=host,
                kind=kind,
                status=status,
                retry_after=retry_after_value(retry_after),
                latency=latency,
                times=times,
                fraction=fraction,
                seed=seed,
                after_bytes=after_bytes,
                hang=hang,
                retry_after_in=retry_after_http_date_in,
                token_error=token_error,
                code=code,
                message=message,
            )
            self._next_id += 1
            self._rules.append(fault)
            return fault

    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._rules = [f for f in self._rules if f.id != fault_id]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def match(self, method: str, path: str, host: str) -> Fault | None:
        with self._lock:
            for fault in self._rules:
                if fault.kind not in HTTP_KINDS:
                    continue
                if fault.method and fault.method != method:
                    continue
                if fault.host and fault.host != host:
                    continue
                if not fault._pattern.search(path):
                    continue
                if fault.fraction is not None and fault._rng.random() >= fault.fraction:
                    continue
                self._fire(fault)
                return fault
        return None

    def drop_tombstone(self, item_path: str) -> bool:
        """True if a "drop_tombstone" fault takes the delete of ``item_path`` (and counts it)."""
        with self._lock:
            for fault in self._rules:
                if fault.kind != "drop_tombstone" or not fault._pattern.search(item_path):
                    continue
                if fault.fraction is not None and fault._rng.random() >= fault.fraction:
                    continue
                self._fire(fault)
                return True
        return False

    def _fire(self, fault: Fault) -> None:
        fault.fired += 1
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._rules.remove(fault)


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[dict] = []

    def add(self, entry: dict) -> None:
        with self._lock:
            self.entries.append(entry)

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self.entries]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
