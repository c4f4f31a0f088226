"""AES-256-GCM sealing of small values under a purpose-bound key.

Used for app users' TOTP seeds. The key is derived with HKDF from an input secret and a
purpose label, so it never equals the key of another purpose. Output layout:
``version byte (1) || nonce (12) || ciphertext+tag``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32


class SecretBoxError(Exception):
    """A sealed value could not be opened: wrong key, wrong context or tampered bytes."""


def derive_key(input_secret: bytes, purpose: str) -> bytes:
    """Derive a 256-bit key for ``purpose`` from ``input_secret`` with HKDF-SHA256."""
    if len(input_secret) < 16:
        raise ValueError("input secret must be at least 16 bytes")
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode("utf-8")
    ).derive(input_secret)


class SecretBox:
    """Seals with the first key, opens with any of them (for key rollover)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ValueError("keys must be 32 bytes (AES-256)")
        self._ciphers = [AESGCM(key) for key in keys]

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext`` bound to ``context`` (associated data)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([FORMAT_VERSION]) + nonce + self._ciphers[0].encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> tuple[bytes, bool]:
        """Decrypt; returns the plaintext and whether it was sealed under an older key."""
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[0] != FORMAT_VERSION:
            raise SecretBoxError("not a sealed value of a known format")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        for index, cipher in enumerate(self._ciphers):
            try:
                return cipher.decrypt(nonce, body, context), index > 0
            except InvalidTag:
                continue
        raise SecretBoxError("sealed value does not open with any configured key")
