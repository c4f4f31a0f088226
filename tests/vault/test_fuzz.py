"""Cheap deterministic fuzzing (checklist R14): the TOTP parser and the envelope opener only ever
raise their defined errors, whatever they are fed."""

from __future__ import annotations

import random

import pytest

from govern.crypto import envelope
from govern.crypto.envelope import Binding, Sealed, VaultCryptoError
from govern.crypto.keyring import Keyring
from govern.errors import InvalidError
from govern.vault.values import parse_totp

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcxyz01890=/?&%:#@ -_[]+;\u00e9\u0663\u200b\x7f"
PREFIXES = ["", "otpauth://", "otpauth://totp/", "otpauth://totp/x?secret=", "otpauth://hotp/", "OTPAUTH://TOTP/a:b?issuer=&secret=",
            "otpauth://totp/x?digits=", "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=", "otpauth://totp/x?algorithm="]


def test_totp_parser_only_raises_invalid_error():
    rng = random.Random(20261130)  # noqa: S311 - reproducible test inputs, not security
    for _ in range(3000):
        text = rng.choice(PREFIXES) + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        try:
            params = parse_totp(text)
        except InvalidError:
            continue
        assert params.digits in (6, 8) and params.period in (30, 60) and params.code_at().isdigit()


@pytest.mark.parametrize("seed", range(5))
def test_envelope_opener_only_raises_vault_crypto_error(seed):
    rng = random.Random(seed)  # noqa: S311 - reproducible test inputs, not security
    keyring = Keyring.generate()
    binding = Binding(1, 1, "password")
    sealed = envelope.seal(keyring, b"fuzz me", binding)
    for _ in range(500):
        part = rng.choice(["ciphertext", "wrapped_key"])
        blob = bytearray(getattr(sealed, part))
        action = rng.randint(0, 2)
        if action == 0 and blob:
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        elif action == 1:
            blob = blob[: rng.randrange(len(blob))]  # strictly shorter
        else:
            blob += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        broken = Sealed(**{**sealed.__dict__, part: bytes(blob)})
        with pytest.raises(VaultCryptoError):
            envelope.open_sealed(keyring, broken, binding)
    assert envelope.open_sealed(keyring, sealed, binding) == b"fuzz me"
