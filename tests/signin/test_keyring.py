"""Sealing with the key ring: AES-GCM, bound to its owner, readable across key rotation."""

import pytest

from devtools.keys import new_key_entry
from functions.settings import reload_settings
from functions.tokens import keyring


@pytest.fixture
def key_ring(monkeypatch):
    def use(*entries: str) -> None:
        monkeypatch.setenv("TOKEN_ENCRYPTION_KEYS", ",".join(entries))
        monkeypatch.setenv("MICROSOFT_CLIENT_ID", "client")
        monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "secret")
        reload_settings()

    yield use
    reload_settings()


def test_sealed_value_opens_for_its_owner_and_hides_the_plaintext(key_ring):
    key_ring(new_key_entry("a1"))
    sealed = keyring.seal(b"refresh-token-text", "connection-1")
    assert "refresh-token-text" not in sealed
    assert keyring.key_id_of(sealed) == "a1"
    assert keyring.open_sealed(sealed, "connection-1") == b"refresh-token-text"


def test_sealing_twice_gives_different_ciphertexts(key_ring):
    key_ring(new_key_entry("a1"))
    assert keyring.seal(b"same", "c") != keyring.seal(b"same", "c")


def test_a_value_sealed_for_one_connection_does_not_open_for_another(key_ring):
    key_ring(new_key_entry("a1"))
    sealed = keyring.seal(b"token", "connection-1")
    with pytest.raises(keyring.SealError):
        keyring.open_sealed(sealed, "connection-2")


def test_a_tampered_value_does_not_open(key_ring):
    key_ring(new_key_entry("a1"))
    sealed = keyring.seal(b"token", "c")
    body = sealed.rsplit(".", 1)[1]
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    with pytest.raises(keyring.SealError):
        keyring.open_sealed(sealed.rsplit(".", 1)[0] + "." + flipped, "c")


def test_after_rotation_old_values_open_and_new_ones_use_the_newest_key(key_ring):
    old, new = new_key_entry("old"), new_key_entry("new")
    key_ring(old)
    sealed_before = keyring.seal(b"token", "c")
    key_ring(new, old)
    assert keyring.open_sealed(sealed_before, "c") == b"token"
    assert keyring.key_id_of(keyring.seal(b"token", "c")) == "new"


def test_a_retired_key_is_named_in_the_error_without_the_value(key_ring):
    key_ring(new_key_entry("gone"))
    sealed = keyring.seal(b"token-text", "c")
    key_ring(new_key_entry("other"))
    with pytest.raises(keyring.SealError, match="gone") as raised:
        keyring.open_sealed(sealed, "c")
    assert "token-text" not in str(raised.value) and sealed not in str(raised.value)
