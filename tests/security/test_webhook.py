"""The anonymous webhooks, tried as an attacker would: forged clientStates, floods of unknown
subscription ids (amplification), hostile bodies. And the coalescing that keeps a flood of valid
notifications from becoming a flood of queue messages without losing a pass."""

from __future__ import annotations

import json

import httpx
import pytest

from functions import storage
from functions import storage as storage_module
from functions.notifications import batches, subscriptions
from functions.sync import state as syncstate
from tests.notifications.conftest import drain, queued_count
from tests.security.report import tried

SYNC = storage.Queues.SYNC


@pytest.fixture
def anonymous(app_server):
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def subscribed(connected_drive):
    drain(SYNC)
    return connected_drive


def post(client, body: bytes | str, route: str = "/api/notifications") -> httpx.Response:
    return client.post(route, content=body, headers={"Content-Type": "application/json"})


def the_subscription(emulator) -> dict:
    [subscription] = emulator.subscriptions
    return subscription


class ReadCounter:
    """Counts point reads of the subscriptions table (a spy: every call goes through to Azurite)."""

    def __init__(self, monkeypatch) -> None:
        self.reads = 0
        table = storage.table(storage.Tables.SUBSCRIPTIONS)
        real = table.get_entity

        def counted(*args, **kwargs):
            self.reads += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(table, "get_entity", counted)


HOSTILE_BODIES = [
    "[" * 100_000 + "]" * 100_000, '{"value":' + "[" * 50_000 + "]" * 50_000 + "}", '{"value": [' + "{" * 30_000,
    '{"value":[{"subscriptionId":' + "[" * 20_000 + "]" * 20_000 + "}]}", '{"value": 1' + "0" * 5000 + "}",
    '{"value":[{"subscriptionId":"a","clientState":1' + "0" * 5000 + "}]}", "\ufeff{}", '{"value": NaN}',
    '{"value": [], "value": "x"}', '{"value": [null]}', '{"value": [[]]}', '{"value":[{"subscriptionId":""}]}',
    '{"value":[{"subscriptionId":"\\ud800"}]}', "\x00", "", "{", '"' + "\\" * 10_000 + '"',
]


@pytest.mark.parametrize("route", ["/api/notifications", "/api/lifecycle"])
def test_hostile_bodies_get_a_4xx_and_queue_nothing(anonymous, route):
    for body in HOSTILE_BODIES:
        response = post(anonymous, body.encode("utf-8", "surrogatepass"), route)
        assert 400 <= response.status_code < 500 or response.status_code == 202, (body[:40], response.status_code)
        assert "Traceback" not in response.text
    nested = post(anonymous, "[" * 100_000 + "]" * 100_000, route)
    assert nested.status_code == 400  # issue 16 #4: a RecursionError and a 500 before
    assert queued_count(SYNC) == 0 and queued_count(storage.Queues.MAINTENANCE) == 0
    tried(f"hostile bodies to {route}", len(HOSTILE_BODIES) + 1)


def test_forged_notifications_queue_nothing(subscribed, anonymous):
    real = the_subscription(subscribed.emulator)
    forged = [
        {"subscriptionId": real["id"], "clientState": real["clientState"] + "x"},
        {"subscriptionId": real["id"], "clientState": real["clientState"][:-1]},
        {"subscriptionId": real["id"], "clientState": real["clientState"].upper()},
        {"subscriptionId": real["id"], "clientState": ""}, {"subscriptionId": real["id"]},
        {"subscriptionId": real["id"].upper(), "clientState": real["clientState"]},
        {"subscriptionId": real["id"] + " ", "clientState": real["clientState"]},
        {"subscriptionId": "00000000-0000-0000-0000-000000000000", "clientState": real["clientState"]},
        {"subscriptionId": real["id"], "clientState": subscriptions.digest(real["clientState"])},
        {"subscriptionId": real["id"], "clientState": real["clientState"] + "\u0000"},
    ]
    for entry in forged:
        assert post(anonymous, json.dumps({"value": [entry]})).status_code == 202
    for route in ("/api/notifications", "/api/lifecycle"):
        assert post(anonymous, json.dumps({"value": [{**e, "lifecycleEvent": "missed"} for e in forged]}), route).status_code == 202
    assert queued_count(SYNC) == 0 and queued_count(storage.Queues.MAINTENANCE) == 0
    tried("forged notifications", len(forged) * 3)


def test_a_flood_of_unknown_ids_costs_a_bounded_number_of_reads(storage, anonymous, monkeypatch):
    """Issue 16 #6: 1,000 unknown ids were 1,000 sequential reads (~2 s) per POST."""
    subscriptions.forget_cached()
    counter = ReadCounter(monkeypatch)
    flood = {"value": [{"subscriptionId": f"{n:08d}-0000-4000-8000-000000000000", "clientState": "x"} for n in range(1000)]}
    assert post(anonymous, json.dumps(flood)).status_code == 202
    assert counter.reads == batches.MAX_DISTINCT_SUBSCRIPTIONS
    assert post(anonymous, json.dumps(flood)).status_code == 202
    assert counter.reads == batches.MAX_DISTINCT_SUBSCRIPTIONS  # misses are remembered for a while
    assert queued_count(SYNC) == 0
    tried("unknown subscription ids in floods", 2000)


def test_a_known_subscription_still_counts_past_the_cap(subscribed, anonymous):
    real = the_subscription(subscribed.emulator)
    assert subscriptions.verify(real["id"], real["clientState"]) == subscribed.connection_id  # remembered now
    noise = [{"subscriptionId": f"{n:08d}-0000-4000-8000-000000000000", "clientState": "x"} for n in range(300)]
    body = {"value": [*noise, {"subscriptionId": real["id"], "clientState": real["clientState"]}]}
    assert post(anonymous, json.dumps(body)).status_code == 202
    assert drain(SYNC) == [{"connection_id": subscribed.connection_id, "reason": "notification"}]


def test_a_burst_of_valid_posts_leaves_one_message_per_connection(subscribed, anonymous):
    """Issue 16 #6: 1,701 valid POSTs in 20 s were 1,701 queue messages."""
    real = the_subscription(subscribed.emulator)
    body = json.dumps({"value": [{"subscriptionId": real["id"], "clientState": real["clientState"]}]})
    for _ in range(60):
        assert post(anonymous, body).status_code == 202
    assert queued_count(SYNC) == 1


def test_a_notification_during_a_sync_still_causes_one_more_pass(subscribed, anonymous):
    """The invariant coalescing must keep (DESIGN.md): whatever a notification skips, a pass that
    starts after it happens."""
    real = the_subscription(subscribed.emulator)
    body = json.dumps({"value": [{"subscriptionId": real["id"], "clientState": real["clientState"]}]})
    connection_id = subscribed.connection_id

    assert post(anonymous, body).status_code == 202  # M1 waits
    assert post(anonymous, body).status_code == 202  # coalesced into M1
    [first] = drain(SYNC)
    holder = syncstate.acquire(first["connection_id"], "worker-a")  # a worker picks M1 up and syncs
    assert isinstance(holder, syncstate.Lease)

    assert post(anonymous, body).status_code == 202  # a change during that sync: not coalesced away
    [second] = drain(SYNC)
    assert second["connection_id"] == connection_id
    assert isinstance(syncstate.acquire(connection_id, "worker-b"), syncstate.Busy)  # its pickup asks for a rerun
    assert post(anonymous, body).status_code == 202  # after that pickup: a new message again
    assert len(drain(SYNC)) == 1
    assert holder.finish_pass() is True  # the holder makes one more pass, starting after all of them
    assert holder.finish_pass() is False  # and lets go: the last message, still queued, makes its own pass


def test_a_failed_send_marks_nothing_so_graphs_retry_queues_the_sync(subscribed, anonymous, storage, monkeypatch):
    """If sending the message fails, nothing is marked: Graph's retry (after our 503) sends it."""
    real = the_subscription(subscribed.emulator)
    body = json.dumps({"value": [{"subscriptionId": real["id"], "clientState": real["clientState"]}]})
    blob, queue, table = storage.ports
    live = storage_module.development_connection_string(blob, queue, table)
    with monkeypatch.context() as patched:  # the queue service down, tables up
        patched.setenv(storage_module.CONNECTION, storage_module.development_connection_string(blob, 9, table))
        storage_module.reset_clients()
        assert post(anonymous, body).status_code == 503
    monkeypatch.setenv(storage_module.CONNECTION, live)
    storage_module.reset_clients()
    assert post(anonymous, body).status_code == 202  # Graph's retry
    assert queued_count(SYNC) == 1
