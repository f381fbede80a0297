"""The webhook remembers subscription rows briefly; that must never weaken the clientState check."""

from functions import storage as app_storage
from functions.notifications import subscriptions


def put_row(subscription_id: str, connection_id: str, client_state: str) -> None:
    app_storage.table(app_storage.Tables.SUBSCRIPTIONS).upsert_entity({
        "PartitionKey": subscription_id, "RowKey": subscriptions.ROW,
        "connection_id": connection_id, "client_state_sha256": subscriptions.digest(client_state)})


def test_a_remembered_subscription_still_refuses_a_forged_client_state(storage):
    put_row("sub-cache-1", "c1", "the-real-state")
    assert subscriptions.verify("sub-cache-1", "the-real-state") == "c1"
    assert subscriptions.verify("sub-cache-1", "a-forged-state") is None
    assert subscriptions.verify("sub-cache-1", "the-real-state") == "c1"


def test_a_forgotten_subscription_is_not_verified_from_memory(storage):
    put_row("sub-cache-2", "c2", "state")
    assert subscriptions.verify("sub-cache-2", "state") == "c2"
    subscriptions._forget("sub-cache-2")
    assert subscriptions.verify("sub-cache-2", "state") is None


def test_remembered_rows_expire(storage, monkeypatch):
    put_row("sub-cache-3", "c3", "state")
    assert subscriptions.verify("sub-cache-3", "state") == "c3"
    # The row is removed behind the cache's back.
    app_storage.table(app_storage.Tables.SUBSCRIPTIONS).delete_entity("sub-cache-3", subscriptions.ROW)
    assert subscriptions.verify("sub-cache-3", "state") == "c3"  # still remembered
    monkeypatch.setattr(subscriptions, "VERIFIED_TTL_SECONDS", 0.0)
    assert subscriptions.verify("sub-cache-3", "state") is None
