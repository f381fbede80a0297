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
    connections.update(connection.connection_id, bytes_copied=five_gib, items_copied=3)
    connections.set_state(connection.connection_id, connections.ConnectionState.REAUTH_REQUIRED, error="revoked")
    found = connections.require(connection.connection_id)
    assert found.bytes_copied == five_gib and isinstance(found.bytes_copied, int)
    assert found.items_copied == 3 and found.display_name == "Ada"
    assert found.state is connections.ConnectionState.REAUTH_REQUIRED
    assert found.to_public()["lastSync"]["bytesCopied"] == five_gib
