"""Barrier tests on the stored rows, after HashiCorp Vault's barrier_aes_gcm tests: the database holds
no plaintext (nor its encodings), any flipped byte or moved ciphertext fails cleanly and is audited,
the same plaintext encrypts differently twice, and bad keys are refused."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select, update

import govern.models  # noqa: F401 - every table on the metadata
from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.crypto.keyring import Keyring
from govern.vault.access import reveal
from govern.vault.errors import SecretDecryptError
from govern.vault.keys import record_rotation, rewrap_batch, rotate_keyring
from govern.vault.models import SecretVersion
from govern.vault.versions import create_secret, current_version
from tests.support import app_config
from tests.vault.helpers import all_stored_values, encodings

CANARIES = {
    "password": "Canary-Barrier-Pass-5c1d7e",
    "api_token": "canary_barrier_token_9f8e7d6c",
    "note": "Canary barrier note 4b3a2c",
    "totp": "KRUGS4ZANFZSAYJAMNQW4YLSPEQHGZLF",  # base32 of "This is a canary see"
}
CODES = ["canary-code-11aa", "canary-code-22bb"]


@pytest.fixture
def vaulted(app, db, world, ring):
    with app.test_request_context():
        made = {kind: create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind=kind,
                                    label=f"{kind} secret", value=value) for kind, value in CANARIES.items()}
        made["recovery_codes"] = create_secret(db, actor=world.it.user, keyring=ring, account=world.account,
                                               kind="recovery_codes", label="codes", value=CODES)
    db.commit()
    return made


def test_confidential_no_plaintext_or_encoding_anywhere_in_the_database(db, vaulted):
    stored = all_stored_values(db)
    assert any(name == "secret_versions.ciphertext" for name, _ in stored)
    for secret_text in [*CANARIES.values(), *CODES]:
        for form in encodings(secret_text):
            hits = [name for name, value in stored if form in value]
            assert hits == [], f"{secret_text!r} found as {form!r} in {hits}"


@pytest.mark.parametrize(("column", "offset"), [("ciphertext", 0), ("ciphertext", 5), ("ciphertext", -1),
                                                ("wrapped_key", 3), ("wrapped_key", 20), ("wrapped_key", -1)])
def test_integrity_a_flipped_byte_fails_cleanly_and_is_audited(app, db, world, ring, vaulted, column, offset):
    """Offsets 1..12 are the nonce, the rest the ciphertext and tag."""
    secret = vaulted["password"]
    version = current_version(db, secret)
    blob = bytearray(getattr(version, column))
    blob[offset] ^= 0x01
    db.execute(update(SecretVersion).where(SecretVersion.id == version.id).values({column: bytes(blob)}))
    db.commit()
    db.expire_all()
    with app.test_request_context(), pytest.raises(SecretDecryptError, match="does not decrypt"):
        reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="check", mfa_fresh=True)
    db.commit()
    assert db.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc())).first() == "vault.decrypt_failed"


def test_moving_a_ciphertext_to_another_row_fails(app, db, world, ring, vaulted):
    source, target = current_version(db, vaulted["password"]), current_version(db, vaulted["api_token"])
    db.execute(update(SecretVersion).where(SecretVersion.id == target.id)
               .values(ciphertext=source.ciphertext, wrapped_key=source.wrapped_key))
    db.commit()
    db.expire_all()
    with app.test_request_context(), pytest.raises(SecretDecryptError):
        reveal(db, actor=world.it.user, keyring=ring, secret=vaulted["api_token"], reason="x", mfa_fresh=True)
    # Only the ciphertext moved (its own wrapped key kept): still refused.
    db.rollback()


def test_the_same_plaintext_encrypts_differently_twice(app, db, world, ring, vaulted):
    with app.test_request_context():
        twin = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password",
                             label="twin", value=CANARIES["password"])
    first, second = current_version(db, vaulted["password"]), current_version(db, twin)
    assert first.ciphertext != second.ciphertext and first.wrapped_key != second.wrapped_key
    assert first.ciphertext[1:13] != second.ciphertext[1:13]


@pytest.mark.parametrize("length", [16, 24, 31, 33])
def test_wrong_key_lengths_leave_the_vault_sealed(tmp_path, database_url, length):
    bad = json.dumps({"format": 1, "primary": "kek-bad", "keys": {"kek-bad": base64.b64encode(b"k" * length).decode()}})
    app = create_app(app_config(tmp_path, database_url, VAULT_KEYRING_JSON=bad))
    assert app.extensions["govern.keyring"] is None
    assert "32 bytes" in app.extensions["govern.keyring_problem"]


def test_a_fernet_key_is_not_a_keyring(tmp_path, database_url):
    from cryptography.fernet import Fernet

    app = create_app(app_config(tmp_path, database_url, VAULT_KEYRING_JSON=Fernet.generate_key().decode()))
    assert app.extensions["govern.keyring"] is None


def test_rewrap_leaves_ciphertext_untouched_and_everything_decrypts(app, db, world, ring, vaulted):
    before = {v.id: v.ciphertext for v in db.scalars(select(SecretVersion))}
    new_ring = rotate_keyring(ring)
    with app.test_request_context():
        record_rotation(db, old_primary=ring.primary_id, keyring=new_ring)
        batch = rewrap_batch(db, new_ring, batch_size=100)
    db.commit()
    assert batch.rewrapped == len(before) and batch.failed == []
    db.expire_all()
    after = {v.id: (v.ciphertext, v.kek_id) for v in db.scalars(select(SecretVersion))}
    assert {k: c for k, (c, _) in after.items()} == before and {k for _, k in after.values()} == {new_ring.primary_id}
    only_new = Keyring(primary_id=new_ring.primary_id, keys={new_ring.primary_id: new_ring.keys[new_ring.primary_id]})
    with app.test_request_context():
        shown = reveal(db, actor=world.it.user, keyring=only_new, secret=vaulted["password"], reason="x", mfa_fresh=True)
    assert shown.value == CANARIES["password"]
