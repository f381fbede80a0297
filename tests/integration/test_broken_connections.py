"""A pooled connection that the service closes just as it is reused (Azurite closes idle ones after
5 s, Azure's load balancers after minutes): the call goes again on a new connection. The Tables
SDK's own retries skip POST and PATCH, so batches and merges used to fail at once (a CI run lost
a test to it); the queue SDK retries them itself, and a message must still arrive once. A TCP
proxy in front of Azurite resets such a connection on demand."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from devtools.azurite import Azurite
from devtools.serving import free_port
from functions import storage as app_storage
from functions.storage import clients


class ResettingProxy:
    """Forwards TCP to `target`; once armed, the next request on a connection that already carried
    an answer is met with a reset (RST), unanswered and never forwarded."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.armed = threading.Event()
        self.resets = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            answered = threading.Event()
            threading.Thread(target=self._pipe, args=(upstream, client, answered.set), daemon=True).start()
            threading.Thread(target=self._requests, args=(client, upstream, answered), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, on_data: Callable[[], None]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                on_data()
        except OSError:
            pass

    def _requests(self, client: socket.socket, upstream: socket.socket, answered: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if answered.is_set() and self.armed.is_set():
                    self.armed.clear()
                    self.resets += 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()
                    upstream.close()
                    return
                upstream.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()


class Proxies:
    """The app's table and queue endpoints, each behind a ResettingProxy (blobs straight to Azurite)."""

    def __init__(self, azurite: Azurite) -> None:
        blob, queue, table = azurite.ports
        self.queue, self.table = ResettingProxy(("127.0.0.1", queue)), ResettingProxy(("127.0.0.1", table))
        self.connection_string = clients.development_connection_string(blob, self.queue.port, self.table.port)

    def arm(self) -> None:
        self.queue.armed.set()
        self.table.armed.set()

    @property
    def resets(self) -> int:
        return self.queue.resets + self.table.resets

    def close(self) -> None:
        self.queue.close()
        self.table.close()


@pytest.fixture
def through_proxy(storage: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxies]:
    proxies = Proxies(storage)
    monkeypatch.setenv(app_storage.CONNECTION, proxies.connection_string)
    app_storage.reset_clients()
    yield proxies
    app_storage.reset_clients()
    proxies.close()


def _rows(azurite: Azurite, table: str) -> set[str]:
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(azurite.connection_string, table)
    return {entity["RowKey"] for entity in client.query_entities("PartitionKey eq 'p'")}


def test_a_table_batch_on_a_connection_reset_as_it_is_reused_goes_again(storage, through_proxy):
    table = app_storage.Table("brokenconnection")
    table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": "first"})])
    through_proxy.arm()
    table.batch([app_storage.Op("upsert", {"PartitionKey": "p", "RowKey": f"r{i}"}) for i in range(3)])
    assert through_proxy.resets == 1  # the batch really met a reset connection
    assert _rows(storage, "brokenconnection") == {"first", "r0", "r1", "r2"}


def test_a_merge_on_a_connection_reset_as_it_is_reused_goes_again(storage, through_proxy):
    table = app_storage.Table("brokenconnection")
    table.upsert({"PartitionKey": "p", "RowKey": "first"})
    through_proxy.arm()
    table.upsert({"PartitionKey": "p", "RowKey": "second"})  # PATCH: no SDK retry either
    assert through_proxy.resets == 1
    assert _rows(storage, "brokenconnection") == {"first", "second"}


def test_a_queue_message_on_a_connection_reset_as_it_is_reused_goes_again(storage, through_proxy):
    from azure.storage.queue import QueueClient

    app_storage.send("brokenconnection", {"n": 1})
    through_proxy.arm()
    app_storage.send("brokenconnection", {"n": 2})
    assert through_proxy.resets == 1
    queue = QueueClient.from_connection_string(storage.connection_string, "brokenconnection")
    assert len(queue.peek_messages(max_messages=32)) == 2  # each once: the reset one was never delivered
