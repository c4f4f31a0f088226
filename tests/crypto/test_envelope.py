"""Barrier tests for the vault's envelope encryption, after HashiCorp Vault's barrier_aes_gcm tests."""

from __future__ import annotations

import base64
import secrets

import pytest

from govern.crypto.envelope import (
    Binding,
    Sealed,
    VaultCryptoError,
    destroy,
    key_check_value,
    open_sealed,
    rewrap,
    seal,
)
from govern.crypto.keyring import Keyring, KeyringError, new_kek_id

CANARY = b"canary-Instagram-P@ssw0rd-7f3a9c"
BINDING = Binding(secret_id=7, version=3, kind="password")


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def test_round_trip(keyring):
    sealed = seal(keyring, CANARY, BINDING)
    assert open_sealed(keyring, sealed, BINDING) == CANARY


def test_confidential_no_plaintext_nor_its_encodings(keyring):
    sealed = seal(keyring, CANARY, BINDING)
    stored = sealed.ciphertext + sealed.wrapped_key + sealed.kek_id.encode()
    for form in (CANARY, base64.b64encode(CANARY), CANARY.hex().encode(), base64.b32encode(CANARY)):
        assert form not in stored
    dek_and_kek = next(iter(keyring.keys.values()))
    assert dek_and_kek not in stored


@pytest.mark.parametrize("part", ["ciphertext", "wrapped_key"])
def test_integrity_any_flipped_byte_fails_cleanly(keyring, part):
    sealed = seal(keyring, CANARY, BINDING)
    blob = getattr(sealed, part)
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        broken = Sealed(**{**sealed.__dict__, part: bytes(tampered)})
        with pytest.raises(VaultCryptoError):
            open_sealed(keyring, broken, BINDING)


@pytest.mark.parametrize("other", [Binding(8, 3, "password"), Binding(7, 2, "password"), Binding(7, 3, "api_token")])
def test_moving_a_ciphertext_to_another_row_fails(keyring, other):
    sealed = seal(keyring, CANARY, BINDING)
    with pytest.raises(VaultCryptoError):
        open_sealed(keyring, sealed, other)
    # Even with the other row's own wrapped key, this ciphertext does not open there.
    theirs = seal(keyring, b"other value", other)
    with pytest.raises(VaultCryptoError):
        open_sealed(keyring, Sealed(sealed.ciphertext, theirs.wrapped_key, theirs.kek_id), other)


def test_same_plaintext_encrypts_differently(keyring):
    first, second = seal(keyring, CANARY, BINDING), seal(keyring, CANARY, BINDING)
    assert first.ciphertext != second.ciphertext and first.wrapped_key != second.wrapped_key
    assert first.ciphertext[1:13] != second.ciphertext[1:13]  # fresh nonces


def test_nonces_do_not_repeat_over_many_encryptions(keyring):
    nonces = {seal(keyring, b"x", BINDING).ciphertext[1:13] for _ in range(20000)}
    assert len(nonces) == 20000


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33, 64])
def test_wrong_key_lengths_are_refused(length):
    import json

    kek_id = new_kek_id()
    text = json.dumps({"format": 1, "primary": kek_id, "keys": {kek_id: base64.b64encode(b"k" * length).decode()}})
    with pytest.raises(KeyringError):
        Keyring.from_json(text)


def test_a_wrong_keyring_is_detected_and_cannot_decrypt(keyring):
    sealed = seal(keyring, CANARY, BINDING)
    impostor = Keyring(primary_id=keyring.primary_id, keys={keyring.primary_id: secrets.token_bytes(32)})
    assert key_check_value(keyring.keys[keyring.primary_id]) != key_check_value(impostor.keys[impostor.primary_id])
    with pytest.raises(VaultCryptoError):
        open_sealed(impostor, sealed, BINDING)


def test_rewrap_changes_only_the_wrapped_key(keyring):
    sealed = seal(keyring, CANARY, BINDING)
    new_id = new_kek_id()
    rotated = Keyring(primary_id=new_id, keys={**keyring.keys, new_id: secrets.token_bytes(32)})
    moved = rewrap(rotated, sealed, BINDING)
    assert moved.ciphertext == sealed.ciphertext and moved.kek_id == new_id and moved.wrapped_key != sealed.wrapped_key
    retired = Keyring(primary_id=new_id, keys={new_id: rotated.keys[new_id]})
    assert open_sealed(retired, moved, BINDING) == CANARY
    with pytest.raises(VaultCryptoError, match="not in the keyring"):
        open_sealed(retired, sealed, BINDING)
    assert rewrap(rotated, moved, BINDING) is moved  # already under the primary: nothing to do


def test_a_fernet_or_foreign_token_is_refused(keyring):
    from cryptography.fernet import Fernet

    token = Fernet(Fernet.generate_key()).encrypt(CANARY)
    sealed = seal(keyring, CANARY, BINDING)
    with pytest.raises(VaultCryptoError):
        open_sealed(keyring, Sealed(token, sealed.wrapped_key, sealed.kek_id), BINDING)


def test_destroyed_values_never_decrypt_again(keyring):
    sealed = destroy(seal(keyring, CANARY, BINDING))
    with pytest.raises(VaultCryptoError):
        open_sealed(keyring, sealed, BINDING)
