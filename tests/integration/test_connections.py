"""Connection rows: stable ids per account, merged updates, counters past 2 GiB."""

from functions import connections


def test_the_same_account_always_gets_the_same_connection_id(storage):
    first = connections.save_profile(account_id="ABC", drive_id="d1", display_name="Ada", email="a@x", ref="u1")
    again = connections.save_profile(account_id="abc", drive_id="d1", display_name="Ada L.", email="a@x", ref="")
    assert first.connection_id == again.connection_id
    assert again.display_name == "Ada L." and again.ref == "u1"  # an empty ref keeps the product's one


def test_updates_merge_only_the_named_fields_and_keep_large_counters_exact(storage):
    connection = connections.save_profile(account_id="a1", drive_id="d1", display_name="Ada", email="a@x", ref="")
    five_gib = 5 * 1024**3
    connections.update(connection.connection_id, connections.Update(bytes_copied=five_gib, items_copied=3))
    connections.set_state(connection.connection_id, connections.ConnectionState.REAUTH_REQUIRED, error="revoked")
    found = connections.require(connection.connection_id)
    assert found.bytes_copied == five_gib and isinstance(found.bytes_copied, int)
    assert found.items_copied == 3 and found.display_name == "Ada"
    assert found.state is connections.ConnectionState.REAUTH_REQUIRED
    assert found.to_public()["lastSync"]["bytesCopied"] == five_gib


def test_an_update_writes_empty_and_zero_values_and_leaves_unnamed_fields_alone(storage):
    connection = connections.save_profile(account_id="a2", drive_id="d2", display_name="Bo", email="b@x", ref="")
    connections.update(connection.connection_id, connections.Update(last_sync_error="Graph HTTP 503", items_failed=4,
                                                                      subscription_id="s1"))
    connections.update(connection.connection_id, connections.Update(last_sync_error="", items_failed=0))
    found = connections.require(connection.connection_id)
    assert (found.last_sync_error, found.items_failed, found.subscription_id) == ("", 0, "s1")


def test_maintenance_markers_are_the_only_free_form_fields_and_must_say_so(storage):
    from datetime import UTC, datetime

    import pytest

    connection = connections.save_profile(account_id="a3", drive_id="d3", display_name="Cy", email="c@x", ref="")
    soon = datetime(2030, 1, 1, tzinfo=UTC)
    connections.update(connection.connection_id, connections.Update(due={"renew_subscription_due_at": soon}))
    assert connections.require(connection.connection_id).extra["renew_subscription_due_at"] == soon
    with pytest.raises(ValueError, match="_due_at"):
        connections.update(connection.connection_id, connections.Update(due={"state": soon}))
    with pytest.raises(TypeError):
        connections.Update(display_name="not an owner's field")  # type: ignore[call-arg]
