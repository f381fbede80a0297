"""Azure Storage: the only importer of its SDKs; the core gets rows, blobs and messages, and the
project's own errors (`NotFound`, `Conflict`, `StorageUnavailable`).

  names     tables, queues, the files container, the mirror's blob names
  tables    `Table` (get, insert, merge, replace-if-unchanged, upsert, query, batch) and `swap`
  blobs     `Container` (list, probe, read, upload, staged blocks, copy, delete, signed URLs)
  queues    `send`, `depth`
  clients   the SDK clients behind them (built once, lazily); for tests and the devtools
  faults    where the SDKs' exceptions become the project's
"""

from functions.errors import StorageUnavailable
from functions.storage import blobs, clients, queues, tables
from functions.storage.blobs import Container
from functions.storage.clients import (
    _CLIENT_OPTIONS,
    DEVELOPMENT_ACCOUNT,
    DEVELOPMENT_KEY,
    DEVELOPMENT_STORAGE,
    _endpoints,
    blob_service,
    container,
    development_connection_string,
    files_container,
    queue,
    queue_service,
    reset_clients,
    table,
    table_service,
)
from functions.storage.names import (
    CONNECTION,
    Queues,
    Tables,
    files_container_name,
    mirror_blob,
    mirror_prefix,
    poison_queue,
)
from functions.storage.queues import send
from functions.storage.tables import Int64, Keep, Op, Row, Table, Write, swap

__all__ = [
    "CONNECTION", "DEVELOPMENT_ACCOUNT", "DEVELOPMENT_KEY", "DEVELOPMENT_STORAGE", "_CLIENT_OPTIONS", "Container",
    "Int64", "Keep", "Op", "Queues", "Row", "Table", "Tables", "Write", "_endpoints", "blob_service", "blobs",
    "clients", "container", "development_connection_string", "files_container", "files_container_name",
    "mirror_blob", "mirror_prefix", "poison_queue", "queue", "queue_service", "queues", "reset_clients", "send",
    "swap", "table", "table_service", "tables",
]


def check_reachable() -> None:
    """One cheap round trip to the table service, without the clients' long retries. Raises
    StorageUnavailable naming the error type only, never a credential."""
    from azure.core.exceptions import AzureError
    from azure.data.tables import TableServiceClient

    try:
        ep = _endpoints()
        service = (TableServiceClient.from_connection_string(ep.connection_string, connection_timeout=3, read_timeout=5,
                                                             retry_total=0) if ep.connection_string
                   else TableServiceClient(clients._url(ep.table_url), credential=clients._credential(),
                                           connection_timeout=3, read_timeout=5, retry_total=0))
        next(iter(service.list_tables(results_per_page=1)), None)
    except AzureError as error:
        raise StorageUnavailable(f"storage did not answer ({type(error).__name__})", unreachable=True) from None
