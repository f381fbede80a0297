"""What the local host reads before it starts: host.json (queue and timeout semantics) and
local.settings.json ("Values" into the environment, as Core Tools does)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# What the worker process starts with, here as in Azure (infra/main.bicep sets the same app
# setting): glibc gives every thread that allocates an arena of its own, and a sync's dozens of
# threads left the worker's memory growing by ~6 KB per item of a full enumeration, ~1.2 KB
# with two arenas (bench/memory.py, both in one run). Read by glibc at start: not a "Value".
PROCESS_ENVIRONMENT = {"MALLOC_ARENA_MAX": "2"}

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def parse_timespan(value: str) -> float:
    """A .NET TimeSpan as host.json writes it (`00:00:30`, `1.00:00:00`) → seconds."""
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise ValueError(f"not a TimeSpan (expected [d.]hh:mm:ss): {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


@dataclass(frozen=True)
class QueueOptions:
    """`extensions.queues` of host.json, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0  # how long a failed message stays invisible before its retry
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, queues: dict[str, Any]) -> QueueOptions:
        batch_size = int(queues.get("batchSize", 16))
        if not 1 <= batch_size <= 32:
            raise ValueError(f"host.json extensions.queues.batchSize must be 1-32, got {batch_size}")
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json extensions.queues.messageEncoding must be base64 or none, got {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=max(1, int(queues.get("maxDequeueCount", 5))),
            visibility_timeout=parse_timespan(queues.get("visibilityTimeout", "00:00:00")),
            max_polling_interval=parse_timespan(queues.get("maxPollingInterval", "00:01:00")),
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostOptions:
    queues: QueueOptions = QueueOptions()
    function_timeout: float = 600.0  # a message's lease while its function runs, as in Azure
    route_prefix: str = "api"

    @classmethod
    def from_host_json(cls, path: str | os.PathLike[str] = ROOT / "host.json") -> HostOptions:
        document = json.loads(Path(path).read_text())
        extensions = document.get("extensions", {})
        prefix = extensions.get("http", {}).get("routePrefix", "api")
        if prefix != "api":
            # The HTTP server mounts functions under /api; a different prefix would need a change there.
            raise ValueError(f"host.json routePrefix {prefix!r} is not supported by the local host (only 'api')")
        return cls(
            queues=QueueOptions.from_host_json(extensions.get("queues", {})),
            function_timeout=parse_timespan(document.get("functionTimeout", "00:10:00")),
            route_prefix=prefix,
        )


@dataclass(frozen=True)
class LocalSettings:
    values: dict[str, str]
    local_http_port: int | None = None


def read_local_settings(path: str | os.PathLike[str]) -> LocalSettings:
    """local.settings.json as Core Tools reads it; a missing file is no settings."""
    path = Path(path)
    if not path.exists():
        return LocalSettings({})
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if document.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted (IsEncrypted: true); decrypt it with `func settings decrypt`")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: \"Values\" must be an object of strings")
    port = (document.get("Host") or {}).get("LocalHttpPort")
    return LocalSettings({str(k): "" if v is None else str(v) for k, v in values.items()}, int(port) if port else None)


def apply_local_settings(settings: LocalSettings, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy the values into the environment without overriding what is already set (as Core Tools
    does: the environment wins). Returns the names that were applied."""
    environ = os.environ if environ is None else environ
    applied = []
    for name, value in settings.values.items():
        if name not in environ:
            environ[name] = value
            applied.append(name)
    return applied
