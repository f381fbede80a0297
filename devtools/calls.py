"""Counts the HTTP calls a process makes, by service: Graph, the download origin, blob, queue, table.

A counting wrapper around the two HTTP stacks the app uses (httpx for Microsoft, the Azure SDK's
transport for storage): nothing is changed or answered differently. For tests that pin what a
sync costs per item, and for the benchmarks' "calls per item".

    with CallCounter.for_environment(graph=..., download=...) as calls:
        ...
    calls.counts  # Counter({"blob": 120, "queue": 100, "download": 100, "table": 9, "graph": 2})
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class CallCounter:
    def __init__(self, origins: dict[str, str]) -> None:
        """`origins`: service name → a URL on it (only scheme, host and port count)."""
        self._names = {_origin(url): name for name, url in origins.items()}
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        # (service, method, path) of each call, in order; a table query's path keeps its query string
        self.calls: list[tuple[str, str, str]] = []
        self.seconds: list[float] = []  # how long each of them took, in the same order
        # when each ended (time.perf_counter: on Linux one clock for every process of the machine)
        self.ended: list[float] = []
        self._restore: list[tuple[Any, str, Any]] = []

    @classmethod
    def for_environment(cls, **more: str) -> CallCounter:
        """Storage's three services from the app's connection string, plus `more` (graph=, download=)."""
        from functions import storage

        text = storage._endpoints().connection_string or ""
        values = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        origins = {name: values[key] for name, key in (("blob", "BlobEndpoint"), ("queue", "QueueEndpoint"),
                                                       ("table", "TableEndpoint")) if key in values}
        return cls({**origins, **more})

    def count(self, method: str, url: str, seconds: float = 0.0) -> None:
        name = self._names.get(_origin(url), "other")
        with self._lock:
            self.counts[name] += 1
            parts = urlsplit(url)
            self.calls.append((name, method, parts.path + ("?" + parts.query if "$filter" in parts.query else "")))
            self.seconds.append(seconds)
            self.ended.append(time.perf_counter())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def table_scans(self) -> list[tuple[str, str]]:
        """(table, filter) of each table query that bounds no RowKey. Azure Storage indexes rows
        by their keys only: such a query reads every row of its partition (or of the table),
        whatever it answers, though Azurite answers it in one call."""
        scans = []
        with self._lock:
            calls = list(self.calls)
        for service, _, path in calls:
            where, _, query = path.partition("?")
            condition = parse_qs(query).get("$filter", [""])[0]
            if service != "table" or not condition or _bounds_row_key(condition):
                continue
            scans.append((where.rsplit("/", 1)[-1].split("(")[0], condition))
        return scans

    def __enter__(self) -> CallCounter:
        import httpx
        from azure.core.pipeline.transport import RequestsTransport

        counter = self
        httpx_send = httpx.Client.send
        sdk_send = RequestsTransport.send

        def counted_httpx(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            started = time.perf_counter()
            try:
                return httpx_send(client, request, **kwargs)
            finally:
                counter.count(request.method, str(request.url), time.perf_counter() - started)

        def counted_sdk(transport: Any, request: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return sdk_send(transport, request, **kwargs)
            finally:
                counter.count(request.method, str(request.url), time.perf_counter() - started)

        self._restore = [(httpx.Client, "send", httpx_send), (RequestsTransport, "send", sdk_send)]
        httpx.Client.send = counted_httpx  # type: ignore[method-assign]
        RequestsTransport.send = counted_sdk  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self._restore:
            setattr(owner, name, original)
        self._restore = []


def _bounds_row_key(condition: str) -> bool:
    """An exact RowKey, or a range with both ends: what the service finds by the key."""
    text = re.sub(r"'(?:[^']|'')*'", "''", condition)  # values may say "RowKey" too
    return bool(re.search(r"\bRowKey eq\b", text) or (re.search(r"\bRowKey g[et]\b", text)
                                                        and re.search(r"\bRowKey l[et]\b", text)))
