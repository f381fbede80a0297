"""The SDK clients: built here only, on first use, and reused by every invocation.

`AzureWebJobsStorage` is a connection string locally (Azurite) and, in Azure, an identity-based
connection (`AzureWebJobsStorage__accountName`, or `__blobServiceUri`/`__queueServiceUri`/
`__tableServiceUri`, with `__clientId` for a user-assigned identity), exactly as the Functions
host reads it.

The core never holds these clients: it goes through `tables`, `blobs` and `queues`, which speak
the project's own types and errors. Tests and the devtools may use them to look underneath.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypedDict

if TYPE_CHECKING:  # the SDKs are imported lazily: cold start
    from azure.data.tables import TableClient, TableServiceClient
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient, ContainerClient
    from azure.storage.queue import QueueClient, QueueServiceClient

from functions.errors import SettingsError
from functions.storage.names import CONNECTION, files_container_name


@dataclass(frozen=True)
class _Endpoints:
    connection_string: str | None
    blob_url: str | None = None
    queue_url: str | None = None
    table_url: str | None = None
    client_id: str | None = None


def _endpoints() -> _Endpoints:
    conn = os.environ.get(CONNECTION, "").strip()
    if conn:
        if conn.lower().replace(" ", "") == "usedevelopmentstorage=true":
            conn = DEVELOPMENT_STORAGE
        return _Endpoints(connection_string=conn)
    prefix = CONNECTION + "__"
    account = os.environ.get(prefix + "accountName", "").strip()

    def uri(service: str) -> str | None:
        explicit = os.environ.get(f"{prefix}{service}ServiceUri", "").strip()
        return explicit or (f"https://{account}.{service}.core.windows.net" if account else None)

    endpoints = _Endpoints(
        connection_string=None,
        blob_url=uri("blob"),
        queue_url=uri("queue"),
        table_url=uri("table"),
        client_id=os.environ.get(prefix + "clientId", "").strip() or None,
    )
    if not (endpoints.blob_url and endpoints.queue_url and endpoints.table_url):
        raise SettingsError(
            f"Setting {CONNECTION} is missing: a connection string (UseDevelopmentStorage=true locally), "
            f"or {prefix}accountName (or {prefix}blobServiceUri, __queueServiceUri and __tableServiceUri) "
            "for an identity-based connection"
        )
    return endpoints


# Azurite's well-known development account (public, documented by Microsoft).
DEVELOPMENT_ACCOUNT = "devstoreaccount1"
DEVELOPMENT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def development_connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEVELOPMENT_ACCOUNT};AccountKey={DEVELOPMENT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{DEVELOPMENT_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{DEVELOPMENT_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{DEVELOPMENT_ACCOUNT};"
    )


DEVELOPMENT_STORAGE = development_connection_string(10000, 10001, 10002)


@functools.cache
def _credential() -> DefaultAzureCredential:
    from azure.identity import DefaultAzureCredential

    # Managed identity in Azure (user-assigned when a client id is set); developer sign-in elsewhere.
    return DefaultAzureCredential(managed_identity_client_id=_endpoints().client_id)


# The SDKs' default retries wait up to ~90 s (blob/queue) or minutes (tables) before giving up,
# longer than a sync should stall on one call. These ride out an outage of ~15 s, then raise so
# the queue message is retried later with nothing advanced.
class _Options(TypedDict, total=False):
    """The SDKs' transport and retry keywords that we set."""

    connection_timeout: float
    read_timeout: float
    retry_total: int
    retry_connect: int
    initial_backoff: float
    increment_base: float
    random_jitter_range: float
    retry_backoff_factor: float
    retry_backoff_max: float


_CLIENT_OPTIONS: _Options = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 5, "retry_connect": 3,
                             "initial_backoff": 1, "increment_base": 2}
_TABLE_OPTIONS: _Options = {"connection_timeout": 10, "read_timeout": 60, "retry_total": 6, "retry_connect": 5,
                            "retry_backoff_factor": 0.5, "retry_backoff_max": 8}


def _url(url: str | None) -> str:
    if url is None:  # _endpoints() sets all three URLs whenever there is no connection string
        raise SettingsError(f"Setting {CONNECTION} names no endpoint for this service")
    return url


POOL_SIZE = 32  # connections kept per host: a sync runs up to 16 blob threads, 8 copies, 16 row reads


def _broken_connection_retry() -> Any:
    """Send a request once more on a new connection when its connection broke before an answer
    came: a pooled connection the service closed just as it was reused (Azurite closes idle ones
    after 5 s, Azure's load balancers after minutes). The Tables SDK's retries skip POST and PATCH
    (batches, merges, creates), which then failed at once; every such call of ours is safe to
    send twice (upserts, merges, deletes, creates that tolerate "exists", at-least-once messages),
    and a request that met a reset was not answered. Never after a read timeout: the service may
    still be at work on it."""
    from urllib3.exceptions import ReadTimeoutError
    from urllib3.util.retry import Retry

    class BrokenConnectionRetry(Retry):
        def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                      error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> Self:
            if isinstance(error, ReadTimeoutError):
                raise error
            return super().increment(method, url, response, error, _pool, _stacktrace)

    # Statuses (a 503 with Retry-After too) and redirects stay the SDKs' to handle.
    return BrokenConnectionRetry(total=1, connect=1, read=1, status=0, other=0, redirect=False, allowed_methods=None,
                                 raise_on_status=False, respect_retry_after_header=False)


def _transport(options: _Options) -> Any:
    """One connection pool per service, big enough for the sync's threads (requests keeps 10: the
    rest were opened and closed per call). With no proxy configured, requests is told not to look
    for one: it reads the proxy variables and ~/.netrc again on every call (a third of the CPU
    of a small upload went there)."""
    import urllib.request

    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.pipeline.transport._bigger_block_size_http_adapters import BiggerBlockSizeHTTPAdapter

    session = requests.Session()
    session.trust_env = bool(urllib.request.getproxies())
    adapter = BiggerBlockSizeHTTPAdapter(max_retries=_broken_connection_retry(), pool_connections=4, pool_maxsize=POOL_SIZE)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return RequestsTransport(session=session, session_owner=True, connection_timeout=options["connection_timeout"],
                             read_timeout=options["read_timeout"])


@functools.cache
def blob_service() -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    ep = _endpoints()
    if ep.connection_string:
        return BlobServiceClient.from_connection_string(ep.connection_string, transport=_transport(_CLIENT_OPTIONS), **_CLIENT_OPTIONS)
    return BlobServiceClient(_url(ep.blob_url), credential=_credential(), transport=_transport(_CLIENT_OPTIONS), **_CLIENT_OPTIONS)


@functools.cache
def queue_service() -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    ep = _endpoints()
    if ep.connection_string:
        return QueueServiceClient.from_connection_string(ep.connection_string, transport=_transport(_CLIENT_OPTIONS), **_CLIENT_OPTIONS)
    return QueueServiceClient(_url(ep.queue_url), credential=_credential(), transport=_transport(_CLIENT_OPTIONS), **_CLIENT_OPTIONS)


@functools.cache
def table_service() -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    ep = _endpoints()
    if ep.connection_string:
        return TableServiceClient.from_connection_string(ep.connection_string, transport=_transport(_TABLE_OPTIONS), **_TABLE_OPTIONS)
    return TableServiceClient(_url(ep.table_url), credential=_credential(), transport=_transport(_TABLE_OPTIONS), **_TABLE_OPTIONS)


_create_lock = threading.Lock()
_created: set[str] = set()  # what `_ensure_exists` made since the clients were last reset


def _ensure_exists(name: str, create: Callable[[], Any]) -> None:
    # In Azure the infrastructure (Bicep) declares every table, queue and container and the app's
    # identity may not create them; with a connection string (Azurite) we create them on first use.
    # Once: threads asking at once for a client each miss `functools.cache` and would each create.
    if _endpoints().connection_string is None:
        return
    from azure.core.exceptions import ResourceExistsError

    with _create_lock:
        if name in _created:
            return
        with contextlib.suppress(ResourceExistsError):
            create()
        _created.add(name)


@functools.cache
def table(name: str) -> TableClient:
    client = table_service().get_table_client(name)
    _ensure_exists(f"table {name}", client.create_table)
    return client


@functools.cache
def queue(name: str) -> QueueClient:
    """A queue client that writes and reads base64, as the Functions queue trigger expects."""
    from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

    client = queue_service().get_queue_client(
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    _ensure_exists(f"queue {name}", client.create_queue)
    return client


@functools.cache
def container(name: str) -> ContainerClient:
    client = blob_service().get_container_client(name)
    _ensure_exists(f"container {name}", client.create_container)
    return client


def files_container() -> ContainerClient:
    return container(files_container_name())


def reset_clients() -> None:
    """Forget every client (tests point the app at a fresh Azurite)."""
    for cached in (_credential, blob_service, queue_service, table_service, table, queue, container):
        cached.cache_clear()
    with _create_lock:
        _created.clear()
