"""The app's functions as the Functions host sees them: read from `app.get_functions()`."""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: str  # "httpTrigger" | "queueTrigger" | "timerTrigger"
    arg_name: str
    handler: Callable[..., Any]
    binding: dict[str, Any]  # the trigger binding, %SETTING% placeholders resolved
    other_bindings: tuple[dict[str, Any], ...] = ()  # input/output bindings besides the trigger
    placeholders: tuple[tuple[str, str], ...] = ()  # (binding key, app setting) for each %SETTING% used

    def setting_of(self, key: str) -> str | None:
        return dict(self.placeholders).get(key)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    # HTTP
    @property
    def route(self) -> str:
        return self.binding.get("route") or self.name

    @property
    def methods(self) -> list[str]:
        return [m.upper() for m in (self.binding.get("methods") or ["GET", "POST"])]

    @property
    def auth_level(self) -> str:
        return str(self.binding.get("authLevel", "FUNCTION")).upper()

    # Queue
    @property
    def queue_name(self) -> str:
        return self.binding["queueName"]

    # Timer
    @property
    def schedule(self) -> str:
        return self.binding["schedule"]

    @property
    def run_on_startup(self) -> bool:
        return bool(self.binding.get("runOnStartup", False))


_PLACEHOLDER = re.compile(r"%([A-Za-z0-9_]+)%")


def resolve(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace `%SETTING%` with the app setting, as the host does for names and schedules."""
    if not isinstance(value, str):
        return value
    environ = os.environ if environ is None else environ

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise KeyError(f"binding refers to app setting {name}, which is not set")
        return environ[name]

    return _PLACEHOLDER.sub(setting, value)


def load(app: func.FunctionApp, environ: dict[str, str] | None = None) -> list[FunctionSpec]:
    """Every function of `app`. Call once per app object (the SDK refuses a second call)."""
    specs = []
    for function in app.get_functions():
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        resolved = {key: resolve(value, environ) for key, value in trigger.items()}
        others = tuple(b for b in bindings if b is not trigger and b["type"] != "http")  # "http" = the HTTP return value
        placeholders = tuple((key, name) for key, value in trigger.items() if isinstance(value, str)
                             for name in _PLACEHOLDER.findall(value))
        specs.append(FunctionSpec(function.get_function_name(), trigger["type"], trigger["name"],
                                  function.get_user_function(), resolved, others, placeholders))
    return specs


def starlette_path(route: str) -> str:
    """`connections/{id}/files/{*path}` → `/api/connections/{id}/files/{path:path}` (constraints dropped)."""
    def convert(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0].rstrip("?")
        if name.startswith("*"):
            return "{" + name[1:] + ":path}"
        return "{" + name + "}"

    return "/api/" + re.sub(r"\{([^}]+)\}", convert, route.strip("/"))
