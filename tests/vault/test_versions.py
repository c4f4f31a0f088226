"""Vault versions: create each kind, change, stage, confirm, discard, purge, metadata edits."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError
from govern.vault.access import reveal
from govern.vault.errors import VaultSealedError
from govern.vault.listing import versions_of
from govern.vault.models import Exposure, SecretVersion
from govern.vault.versions import (
    change_value,
    confirm_version,
    create_secret,
    current_version,
    discard_pending,
    purge_retired,
    stage_version,
    update_metadata,
)

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _actions(db):
    return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_create_each_kind_makes_a_current_version_and_an_audit_event(db, world, ring, ctx, make_secret):
    made = {
        "password": make_secret("password", "Pa55-word!", login="social@acme.example", url="https://instagram.com/acme"),
        "totp": make_secret("totp", SEED.lower()),
        "recovery_codes": make_secret("recovery_codes", ["1111-2222", " 3333-4444 ", ""]),
        "api_token": make_secret("api_token", "tok_abc123", token_expires_at=date(2027, 1, 31)),
        "note": make_secret("note", "Recovery phone is in the safe"),
    }
    for kind, secret in made.items():
        versions = versions_of(db, secret)
        assert [(v.version, v.status) for v in versions] == [(1, "current")], kind
        assert versions[0].kek_id == ring.primary_id
    assert _actions(db).count("vault.secret_created") == 5
    assert made["api_token"].token_expires_at == date(2027, 1, 31)
    # The one who typed the value is an exposure of version 1 (rotation and offboarding count it).
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == world.it.id)) == 5


def test_sealed_vault_refuses_to_store(db, world, ctx):
    with pytest.raises(VaultSealedError, match="sealed"):
        create_secret(db, actor=world.it.user, keyring=None, account=world.account, kind="note", label="x", value="y")


def test_change_value_retires_the_old_version(db, world, ring, ctx, make_secret):
    secret = make_secret()
    change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="new-value-2")
    db.commit()
    assert [(v.version, v.status) for v in versions_of(db, secret)] == [(2, "current"), (1, "retired")]
    revealed = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="check", mfa_fresh=True)
    assert revealed.value == "new-value-2" and revealed.version.version == 2


def test_stage_confirm_and_discard(db, world, ring, ctx, make_secret):
    secret = make_secret()
    staged = stage_version(db, actor=world.it.user, keyring=ring, secret=secret, value="staged-1")
    assert staged.status == "pending"
    with pytest.raises(ConflictError, match="waits for confirmation"):
        stage_version(db, actor=world.it.user, keyring=ring, secret=secret, value="staged-2")
    with pytest.raises(ConflictError, match="confirm or discard"):
        change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="other")
    confirm_version(db, actor=world.it.user, secret=secret)
    db.commit()
    assert [(v.version, v.status) for v in versions_of(db, secret)] == [(2, "current"), (1, "retired")]
    stage_version(db, actor=world.it.user, keyring=ring, secret=secret, value="staged-3")
    discarded = discard_pending(db, actor=world.it.user, secret=secret)
    db.commit()
    assert discarded.status == "destroyed" and set(discarded.wrapped_key) == {0}
    assert current_version(db, secret).version == 2
    assert {"vault.version_staged", "vault.version_confirmed", "vault.version_discarded"} <= set(_actions(db))


def test_one_current_version_is_enforced_by_the_database(db, world, ring, ctx, make_secret):
    secret = make_secret()
    version = current_version(db, secret)
    db.add(SecretVersion(secret_id=secret.id, version=9, status="current", ciphertext=version.ciphertext,
                         wrapped_key=version.wrapped_key, kek_id=version.kek_id))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_purge_shreds_retired_versions_after_the_retention(db, world, ring, ctx, make_secret):
    secret = make_secret()
    change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="v2-value")
    db.commit()
    old = versions_of(db, secret)[1]
    assert purge_retired(db, retention_days=30) == 0
    assert purge_retired(db, retention_days=30, now=utcnow() + timedelta(days=31)) == 1
    db.commit()
    db.refresh(old)
    assert old.status == "destroyed" and set(old.wrapped_key) == {0} and old.destroyed_at is not None
    assert "vault.version_destroyed" in _actions(db)
    assert current_version(db, secret).status == "current"


def test_update_metadata_changes_only_what_differs_and_audits(db, world, ring, ctx, make_secret):
    secret = make_secret(label="Old name")
    assert update_metadata(db, actor=world.it.user, secret=secret, label="Old name") == []
    changed = update_metadata(db, actor=world.it.user, secret=secret, label="New name", login="me@acme.example")
    db.commit()
    assert changed == ["label", "login"] and secret.label == "New name"
    assert _actions(db)[-1] == "vault.secret_updated"
    assert [v.version for v in versions_of(db, secret)] == [1]  # metadata makes no new version
