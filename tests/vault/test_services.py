"""Vault services: create each kind with validation, versions, reveal rules, exposures, purge."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import pyotp
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.vault.access import mark_recovery_code_used, refusal, reveal
from govern.vault.errors import StepUpRequiredError, VaultSealedError
from govern.vault.listing import account_secrets, exposures, secret_rows, versions_of
from govern.vault.models import Exposure, Secret, SecretVersion
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


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield


def _create(db, world, ring, kind="password", value="Xq9-canary-pass", label=None, **kw):
    secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind=kind,
                                    label=label or f"{kind} login", value=value, **kw)
    db.commit()
    return secret


def _actions(db):
    return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_create_each_kind_makes_a_current_version_and_an_audit_event(db, world, ring, ctx):
    made = {
        "password": _create(db, world, ring, "password", "Pa55-word!", login="social@acme.example", url="https://instagram.com/acme"),
        "totp": _create(db, world, ring, "totp", SEED.lower()),
        "recovery_codes": _create(db, world, ring, "recovery_codes", ["1111-2222", " 3333-4444 ", ""]),
        "api_token": _create(db, world, ring, "api_token", "tok_abc123", token_expires_at=date(2027, 1, 31)),
        "note": _create(db, world, ring, "note", "Recovery phone is in the safe"),
    }
    for kind, secret in made.items():
        versions = versions_of(db, secret)
        assert [(v.version, v.status) for v in versions] == [(1, "current")], kind
        assert versions[0].kek_id == ring.primary_id
    assert _actions(db).count("vault.secret_created") == 5
    assert made["api_token"].token_expires_at == date(2027, 1, 31)
    # The one who typed the value is an exposure of version 1 (rotation and offboarding count it).
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == world.it.id)) == 5


def test_totp_accepts_an_otpauth_uri_and_keeps_its_parameters(db, world, ring, ctx):
    uri = pyotp.TOTP(SEED, digits=8, interval=60, digest=hashlib.sha256, name="acme", issuer="Instagram").provisioning_uri()
    secret = _create(db, world, ring, "totp", uri)
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


def test_metadata_rules(db, world, ring, ctx):
    for kw, field in [({"label": ""}, "label"), ({"url": "javascript:alert(1)"}, "url"),
                      ({"token_expires_at": date(2027, 1, 1)}, "token_expires_at")]:
        args = {"label": "Instagram", **kw}
        with pytest.raises(InvalidError) as caught:
            create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password", value="pw-123456", **args)
        assert field in caught.value.reasons
    _create(db, world, ring, label="Same")
    with pytest.raises(InvalidError, match="already has a secret with that name"):
        _create(db, world, ring, label="Same")


def test_sealed_vault_refuses_to_store(db, world, ctx):
    with pytest.raises(VaultSealedError, match="sealed"):
        create_secret(db, actor=world.it.user, keyring=None, account=world.account, kind="note", label="x", value="y")


# --- versions ------------------------------------------------------------------------------------------


def test_change_value_retires_the_old_version(db, world, ring, ctx):
    secret = _create(db, world, ring)
    change_value(db, actor=world.it.user, keyring=ring, secret=secret, value="new-value-2")
    db.commit()
    assert [(v.version, v.status) for v in versions_of(db, secret)] == [(2, "current"), (1, "retired")]
    revealed = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="check", mfa_fresh=True)
    assert revealed.value == "new-value-2" and revealed.version.version == 2


def test_stage_confirm_and_discard(db, world, ring, ctx):
    secret = _create(db, world, ring)
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


def test_one_current_version_is_enforced_by_the_database(db, world, ring, ctx):
    secret = _create(db, world, ring)
    version = current_version(db, secret)
    db.add(SecretVersion(secret_id=secret.id, version=9, status="current", ciphertext=version.ciphertext,
                         wrapped_key=version.wrapped_key, kek_id=version.kek_id))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_mark_recovery_code_used_makes_a_new_version(db, world, ring, ctx):
    secret = _create(db, world, ring, "recovery_codes", ["aaaa-1111", "bbbb-2222"])
    mark_recovery_code_used(db, actor=world.publisher.user, keyring=ring, secret=secret, index=1, mfa_fresh=True)
    db.commit()
    shown = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="need", mfa_fresh=True)
    assert [c["used_at"] is not None for c in shown.codes] == [False, True] and shown.version.version == 2
    with pytest.raises(ConflictError, match="used already"):
        mark_recovery_code_used(db, actor=world.publisher.user, keyring=ring, secret=secret, index=1, mfa_fresh=True)


# --- reveal rules -----------------------------------------------------------------------------------------


def test_publisher_reveal_writes_exposure_and_audit_together(db, world, ring, ctx):
    secret = _create(db, world, ring)
    result = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="post the launch", mfa_fresh=True)
    db.commit()
    assert result.value == "Xq9-canary-pass"
    exposure = db.scalars(select(Exposure).where(Exposure.user_id == world.publisher.id)).one()
    assert (exposure.kind, exposure.reason, exposure.person_id) == ("value", "post the launch", world.publisher.user.person_id)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.revealed")).one()
    assert event.actor_user_id == world.publisher.id and "post the launch" in event.details_json


@pytest.mark.parametrize("who", ["admin", "auditor", "manager", "analyst", "stranger"])
def test_everyone_else_is_refused_and_the_refusal_audited(db, world, ring, ctx, who):
    secret = _create(db, world, ring)
    with pytest.raises(ForbiddenError):
        reveal(db, actor=getattr(world, who).user, keyring=ring, secret=secret, reason="curious", mfa_fresh=True)
    db.commit()
    assert _actions(db)[-1] == "vault.reveal_denied"
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == getattr(world, who).id)) == 0


def test_reason_and_fresh_second_factor_are_required(db, world, ring, ctx):
    secret = _create(db, world, ring)
    with pytest.raises(InvalidError, match="Say why"):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="  ", mfa_fresh=True)
    with pytest.raises(StepUpRequiredError):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="x", mfa_fresh=False)


def test_expired_or_revoked_grants_and_locked_accounts(db, world, ring, ctx):
    from govern.grants.models import Grant

    secret = _create(db, world, ring)
    grant = db.scalars(select(Grant).where(Grant.person_id == world.publisher.user.person_id)).one()
    grant.expires_at = utcnow() - timedelta(minutes=1)
    db.commit()
    assert refusal(db, world.publisher.user, secret) is not None
    grant.expires_at = None
    world.account.status = "locked"
    db.commit()
    assert "only IT" in refusal(db, world.publisher.user, secret)
    assert refusal(db, world.it.user, secret) is None  # custodians still can


def test_totp_shows_codes_never_the_seed_and_the_seed_is_for_it_and_admin(db, world, ring, ctx):
    secret = _create(db, world, ring, "totp", SEED)
    with pytest.raises(InvalidError):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="x", mfa_fresh=True, what="value")
    live = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="login", mfa_fresh=True, what="totp_code")
    assert live.live.code.isdigit() and live.value is None
    with pytest.raises(ForbiddenError, match="Only IT and admins"):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="x", mfa_fresh=True, what="totp_seed")
    seed = reveal(db, actor=world.it.user, keyring=ring, secret=secret, reason="move to new phone", mfa_fresh=True, what="totp_seed")
    assert seed.totp.seed == SEED
    kinds = [e.kind for e in db.scalars(select(Exposure).where(Exposure.user_id != world.it.id))]
    assert kinds == ["totp_code"]


# --- retention ---------------------------------------------------------------------------------------------


def test_purge_shreds_retired_versions_after_the_retention(db, world, ring, ctx):
    secret = _create(db, world, ring)
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


def test_update_metadata_changes_only_what_differs_and_audits(db, world, ring, ctx):
    secret = _create(db, world, ring, label="Old name")
    assert update_metadata(db, actor=world.it.user, secret=secret, label="Old name") == []
    changed = update_metadata(db, actor=world.it.user, secret=secret, label="New name", login="me@acme.example")
    db.commit()
    assert changed == ["label", "login"] and secret.label == "New name"
    assert _actions(db)[-1] == "vault.secret_updated"
    assert [v.version for v in versions_of(db, secret)] == [1]  # metadata makes no new version


@pytest.mark.parametrize("reveals", [0, 2, 3, 4, 7])
def test_exposure_totals_are_right_whether_or_not_the_first_page_holds_them_all(db, world, ring, ctx, reveals):
    secret = _create(db, world, ring)  # its creator is the first exposure
    for n in range(reveals):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason=f"post {n}", mfa_fresh=True)
    db.commit()
    expected = reveals + 1
    for per_page in (1, 3, 4, 50):
        pages = -(-expected // per_page)
        for page in range(1, pages + 2):
            rows, total = exposures(db, secret_id=secret.id, page=page, per_page=per_page)
            assert total == expected, (per_page, page)
            assert len(rows) == max(0, min(per_page, expected - (page - 1) * per_page))


def test_account_secrets_in_one_query_match_the_rows_read_secret_by_secret(db, world, ring, ctx):
    plain = _create(db, world, ring, label="plain")
    staged = _create(db, world, ring, label="staged")
    stage_version(db, actor=world.it.user, keyring=ring, secret=staged, value="Next-pass-0042")
    changed = _create(db, world, ring, label="changed")
    change_value(db, actor=world.it.user, keyring=ring, secret=changed, value="Changed-pass-0042")
    db.commit()
    rows = account_secrets(db, world.account.id)
    expected = secret_rows(db, sorted([plain, staged, changed], key=lambda s: s.label))
    assert [(r.secret.id, r.version, r.since, r.has_pending) for r in rows] == \
        [(r.secret.id, r.version, r.since, r.has_pending) for r in expected]
    assert {r.secret.label: (r.version, r.has_pending) for r in rows} == \
        {"changed": (2, False), "plain": (1, False), "staged": (1, True)}
