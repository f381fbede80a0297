"""AES-GCM sealing with the key ring of TOKEN_ENCRYPTION_KEYS: seal with the newest key, open with any.

A sealed value is `v1.<key id>.<base64url(nonce || ciphertext+tag)>`, so the key that sealed it is
known without trying every key, and the associated data (e.g. the connection id) binds it to its
owner: a sealed value copied onto another row does not open.
"""

from __future__ import annotations

import base64
import os

from functions.errors import Failure
from functions.settings import EncryptionKey, settings

_VERSION = "v1"
_NONCE_BYTES = 12


class SealError(Failure):
    """A sealed value could not be opened (unknown key id, tampered, or bound to something else)."""


def newest_key() -> EncryptionKey:
    return settings().token_encryption_keys[0]


def seal(plaintext: bytes, associated_data: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = newest_key()
    nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: safe far beyond our write volume
    ciphertext = AESGCM(key.key).encrypt(nonce, plaintext, associated_data.encode())
    return f"{_VERSION}.{key.key_id}.{base64.urlsafe_b64encode(nonce + ciphertext).decode()}"


def key_id_of(sealed: str) -> str:
    parts = sealed.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == _VERSION else ""


def open_sealed(sealed: str, associated_data: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    parts = sealed.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise SealError("not a sealed value")
    key = next((k for k in settings().token_encryption_keys if k.key_id == parts[1]), None)
    if key is None:
        raise SealError(f"sealed with key {parts[1]!r}, which is no longer in TOKEN_ENCRYPTION_KEYS")
    try:
        raw = base64.urlsafe_b64decode(parts[2])
        return AESGCM(key.key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated_data.encode())
    except (InvalidTag, ValueError):
        raise SealError(f"sealed value does not open with key {parts[1]!r} for this owner") from None
