"""App-wide faults, for GET /api/health and the status page: a small registry of named checks.

A check returns the faults it finds (empty: healthy). `register` adds one, e.g. a check that the
client secret is still accepted. Checks run with a time limit each; a check that raises or hangs
is a fault itself, so the health answer never fails. Messages name settings and what they expect,
never a secret's value or a credential.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Fault:
    check: str  # the check that found it: "settings", "storage", ...
    message: str  # what is wrong and what is expected
    setting: str = ""  # the app setting at fault, if one is
    features: tuple[str, ...] = ()  # what doesn't work because of it (empty: everything)

    def to_public(self) -> dict[str, Any]:
        body: dict[str, Any] = {"check": self.check, "message": self.message}
        if self.setting:
            body["setting"] = self.setting
        if self.features:
            body["features"] = list(self.features)
        return body


@dataclass(frozen=True)
class Report:
    checks: tuple[str, ...]
    faults: tuple[Fault, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        return not self.faults

    def to_public(self) -> dict[str, Any]:
        failing = {fault.check for fault in self.faults}
        return {"status": "healthy" if self.healthy else "faulty",
                "checks": {name: ("fault" if name in failing else "ok") for name in self.checks},
                "faults": [fault.to_public() for fault in self.faults]}


Check = Callable[[], list[Fault]]
_CHECKS: dict[str, Check] = {}


def register(name: str) -> Callable[[Check], Check]:
    def add(check: Check) -> Check:
        _CHECKS[name] = check
        return check

    return add


def run(names: tuple[str, ...] | None = None) -> Report:
    """Run the registered checks (or those `names`) side by side, each within its time limit."""
    chosen = {name: check for name, check in _CHECKS.items() if names is None or name in names}
    faults: list[Fault] = []
    pool = ThreadPoolExecutor(max_workers=max(1, len(chosen)), thread_name_prefix="health")
    try:
        futures = {name: pool.submit(check) for name, check in chosen.items()}
        for name, future in futures.items():
            try:
                faults.extend(future.result(timeout=CHECK_TIMEOUT_SECONDS))
            except FutureTimeout:
                faults.append(Fault(name, f"the {name} check did not finish within {CHECK_TIMEOUT_SECONDS:g} s"))
            except Exception as error:  # a broken check is a fault, not a failed health answer
                faults.append(Fault(name, f"the {name} check failed ({type(error).__name__})"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return Report(tuple(chosen), tuple(faults))


@register("settings")
def _settings() -> list[Fault]:
    from functions.settings import features_affected, problems

    return [Fault("settings", str(error), error.setting, tuple(features_affected(error))) for error in problems()]


@register("storage")
def _storage() -> list[Fault]:
    from functions import storage
    from functions.errors import StorageUnavailable
    from functions.settings import SettingsError

    try:
        storage.check_reachable()
    except SettingsError as error:
        return [Fault("storage", str(error), storage.CONNECTION)]
    except StorageUnavailable as error:
        return [Fault("storage", str(error))]
    return []


@register("client_secret")
def _client_secret() -> list[Fault]:
    from functions.errors import StorageError
    from functions.settings import FEATURES
    from functions.tokens import app_credentials

    def features_affected_by(setting: str) -> tuple[str, ...]:
        return tuple(feature for feature, names in FEATURES.items() if setting in names)

    try:
        ok, detail = app_credentials.health()
    except StorageError:
        return []  # the storage check reports that; the recorded refusal can't be read meanwhile
    return [] if ok else [Fault("client_secret", f"Microsoft refuses the app's client secret: {detail}",
                                "MICROSOFT_CLIENT_SECRET", features_affected_by("MICROSOFT_CLIENT_SECRET"))]
