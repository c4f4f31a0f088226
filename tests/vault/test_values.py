"""Vault values: each kind's validation, 2FA parameters, and metadata that must not carry the value."""

from __future__ import annotations

import hashlib
from datetime import date

import pyotp
import pytest
from sqlalchemy import func, select

from govern.db import utcnow
from govern.errors import InvalidError
from govern.vault.access import reveal
from govern.vault.models import Secret
from govern.vault.versions import create_secret

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_totp_accepts_an_otpauth_uri_and_keeps_its_parameters(db, world, ring, ctx, make_secret):
    uri = pyotp.TOTP(SEED, digits=8, interval=60, digest=hashlib.sha256, name="acme", issuer="Instagram").provisioning_uri()
    secret = make_secret("totp", uri)
    result = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="login", mfa_fresh=True, what="totp_code")
    assert (result.totp.digits, result.totp.period, result.totp.algorithm) == (8, 60, "SHA256")
    expected = pyotp.TOTP(SEED, digits=8, interval=60, digest=hashlib.sha256)
    assert result.live.code in {expected.now(), expected.at(utcnow().timestamp() - 1)}
    assert len(result.live.code) == 8 and 0 < result.live.seconds_left <= 60


@pytest.mark.parametrize(("kind", "value", "message"), [
    ("totp", "not a seed!", "base32"),
    ("totp", "JBSWY3DP", "too short"),
    ("totp", "otpauth://hotp/x?secret=" + SEED + "&counter=1", "HOTP"),
    ("totp", "otpauth://totp/x?secret=" + SEED + "&digits=9", "6 or 8 digits"),
    ("totp", "otpauth://totp/x?secret=" + SEED + "&digits=5", "6 or 8 digits"),
    ("totp", "otpauth://totp/x?secret=" + SEED + "&period=5", "30 or 60 seconds"),
    ("totp", "otpauth://totp/x?secret=" + SEED + "&algorithm=MD5", "SHA1, SHA256 or SHA512"),
    ("password", "   ", "Enter the value"),
    ("password", "x" * 1025, "under 1024"),
    ("recovery_codes", ["", "  "], "at least one"),
    ("note", "", "Enter the value"),
    ("bogus", "x", "Choose one of"),
])
def test_bad_values_are_refused_with_a_message_and_nothing_is_stored(db, world, ring, ctx, kind, value, message):
    with pytest.raises(InvalidError, match=message):
        create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind=kind, label="x", value=value)
    db.rollback()
    assert db.scalar(select(func.count(Secret.id))) == 0


def test_metadata_must_not_carry_the_value(db, world, ring, ctx):
    with pytest.raises(InvalidError, match="contains the secret itself") as caught:
        create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password",
                      label="Instagram", value="hunter2hunter2", notes="pw is hunter2hunter2")
    assert caught.value.reasons == {"notes": caught.value.message}


def test_metadata_rules(db, world, ring, ctx, make_secret):
    for kw, field in [({"label": ""}, "label"), ({"url": "javascript:alert(1)"}, "url"),
                      ({"token_expires_at": date(2027, 1, 1)}, "token_expires_at")]:
        args = {"label": "Instagram", **kw}
        with pytest.raises(InvalidError) as caught:
            create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password", value="pw-123456", **args)
        assert field in caught.value.reasons
    make_secret(label="Same")
    with pytest.raises(InvalidError, match="already has a secret with that name"):
        make_secret(label="Same")
