"""Envelope encryption for the vault: a fresh AES-256-GCM data key per secret version,
wrapped by a key-encryption key (KEK) from the keyring that lives outside the database.

Layouts (all ``bytes``):
- ciphertext  = FORMAT (1) || nonce (12) || AES-256-GCM(dek, plaintext, aad=binding)
- wrapped key = FORMAT (1) || nonce (12) || AES-256-GCM(kek, dek, aad=binding + KEK id)

The binding names the secret, the version and the kind, so a ciphertext or a wrapped key
copied into another row does not decrypt. Rewrapping changes only the wrapped key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from govern.crypto.keyring import KEK_BYTES, Keyring

FORMAT = 1
NONCE_BYTES = 12
DEK_BYTES = 32
TAG_BYTES = 16
KCV_LABEL = b"govern key check value v1"


class VaultCryptoError(Exception):
    """A value could not be decrypted: tampered bytes, wrong row, or a key that is not in the keyring."""


@dataclass(frozen=True)
class Binding:
    """What a ciphertext belongs to; it is the associated data of both encryptions."""

    secret_id: int
    version: int
    kind: str

    def encode(self) -> bytes:
        """Canonical bytes of the binding."""
        return f"govern:secret:{self.secret_id}:v{self.version}:{self.kind}".encode()


@dataclass(frozen=True)
class Sealed:
    """One encrypted secret version as stored."""

    ciphertext: bytes
    wrapped_key: bytes
    kek_id: str


def _aesgcm(key: bytes) -> AESGCM:
    if len(key) != KEK_BYTES:
        raise ValueError("keys must be 32 bytes (AES-256)")
    return AESGCM(key)


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return bytes([FORMAT]) + nonce + _aesgcm(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != FORMAT:
        raise VaultCryptoError("not a govern vault value of a known format")
    try:
        return _aesgcm(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise VaultCryptoError("the value does not decrypt: tampered, moved to another row, or under another key") from None


def _wrap_aad(binding: Binding, kek_id: str) -> bytes:
    return binding.encode() + b"|kek:" + kek_id.encode()


def seal(keyring: Keyring, plaintext: bytes, binding: Binding) -> Sealed:
    """Encrypt under a new data key, wrapped by the keyring's primary KEK."""
    dek = os.urandom(DEK_BYTES)
    kek_id = keyring.primary_id
    return Sealed(
        ciphertext=_encrypt(dek, plaintext, binding.encode()),
        wrapped_key=_encrypt(keyring.keys[kek_id], dek, _wrap_aad(binding, kek_id)),
        kek_id=kek_id,
    )


def unwrap(keyring: Keyring, sealed: Sealed, binding: Binding) -> bytes:
    """Return the data key of a sealed value."""
    kek = keyring.key(sealed.kek_id)
    if kek is None:
        raise VaultCryptoError(f"the key-encryption key {sealed.kek_id} is not in the keyring")
    return _decrypt(kek, sealed.wrapped_key, _wrap_aad(binding, sealed.kek_id))


def open_sealed(keyring: Keyring, sealed: Sealed, binding: Binding) -> bytes:
    """Decrypt a sealed value; raises VaultCryptoError on any mismatch."""
    return _decrypt(unwrap(keyring, sealed, binding), sealed.ciphertext, binding.encode())


def rewrap(keyring: Keyring, sealed: Sealed, binding: Binding) -> Sealed:
    """Wrap the same data key under the primary KEK; the ciphertext is untouched."""
    if sealed.kek_id == keyring.primary_id:
        return sealed
    dek = unwrap(keyring, sealed, binding)
    kek_id = keyring.primary_id
    return Sealed(sealed.ciphertext, _encrypt(keyring.keys[kek_id], dek, _wrap_aad(binding, kek_id)), kek_id)


def destroy(sealed: Sealed) -> Sealed:
    """Crypto-shredding: overwrite the wrapped key, after which nothing can decrypt the value."""
    return Sealed(sealed.ciphertext, b"\x00" * len(sealed.wrapped_key), sealed.kek_id)


def key_check_value(kek: bytes) -> str:
    """A value that identifies a KEK without revealing it (stored in the database to spot a wrong keyring)."""
    return hmac.new(kek, KCV_LABEL, hashlib.sha256).hexdigest()[:32]


def rewrap_many(keyring: Keyring) -> Callable[[bytes, str, Binding], bytes]:
    """A rewrapper for many data keys: ``(wrapped_key, kek_id, binding) -> wrapped_key under the primary``.

    Same result as ``rewrap`` but builds each AES-GCM key object once, for bulk rewrapping.
    """
    ciphers = {kek_id: _aesgcm(key) for kek_id, key in keyring.keys.items()}
    primary_id = keyring.primary_id
    primary = ciphers[primary_id]
    suffixes = {kek_id: b"|kek:" + kek_id.encode() for kek_id in keyring.keys}
    header = bytes([FORMAT])

    def rewrap_one(wrapped_key: bytes, kek_id: str, binding: Binding) -> bytes:
        cipher = ciphers.get(kek_id)
        if cipher is None:
            raise VaultCryptoError(f"the key-encryption key {kek_id} is not in the keyring")
        if len(wrapped_key) < 1 + NONCE_BYTES + TAG_BYTES or wrapped_key[0] != FORMAT:
            raise VaultCryptoError("not a govern vault value of a known format")
        aad = binding.encode()
        try:
            dek = cipher.decrypt(wrapped_key[1 : 1 + NONCE_BYTES], wrapped_key[1 + NONCE_BYTES :], aad + suffixes[kek_id])
        except InvalidTag:
            raise VaultCryptoError("the data key does not unwrap: tampered, moved, or under another key") from None
        if kek_id == primary_id:
            return wrapped_key
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + primary.encrypt(nonce, dek, aad + suffixes[primary_id])

    return rewrap_one
