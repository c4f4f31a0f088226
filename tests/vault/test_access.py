"""Who may reveal: the reveal rules, refusals audited, step-up and reason, TOTP codes and seeds, recovery codes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.vault.access import mark_recovery_code_used, refusal, reveal
from govern.vault.errors import StepUpRequiredError
from govern.vault.models import Exposure

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def _actions(db):
    return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_mark_recovery_code_used_makes_a_new_version(db, world, ring, ctx, make_secret):
    secret = make_secret("recovery_codes", ["aaaa-1111", "bbbb-2222"])
    mark_recovery_code_used(db, actor=world.publisher.user, keyring=ring, secret=secret, index=1, mfa_fresh=True)
    db.commit()
    shown = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="need", mfa_fresh=True)
    assert [c["used_at"] is not None for c in shown.codes] == [False, True] and shown.version.version == 2
    with pytest.raises(ConflictError, match="used already"):
        mark_recovery_code_used(db, actor=world.publisher.user, keyring=ring, secret=secret, index=1, mfa_fresh=True)


def test_publisher_reveal_writes_exposure_and_audit_together(db, world, ring, ctx, make_secret):
    secret = make_secret()
    result = reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="post the launch", mfa_fresh=True)
    db.commit()
    assert result.value == "Xq9-canary-pass"
    exposure = db.scalars(select(Exposure).where(Exposure.user_id == world.publisher.id)).one()
    assert (exposure.kind, exposure.reason, exposure.person_id) == ("value", "post the launch", world.publisher.user.person_id)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.revealed")).one()
    assert event.actor_user_id == world.publisher.id and "post the launch" in event.details_json


@pytest.mark.parametrize("who", ["admin", "auditor", "manager", "analyst", "stranger"])
def test_everyone_else_is_refused_and_the_refusal_audited(db, world, ring, ctx, make_secret, who):
    secret = make_secret()
    with pytest.raises(ForbiddenError):
        reveal(db, actor=getattr(world, who).user, keyring=ring, secret=secret, reason="curious", mfa_fresh=True)
    db.commit()
    assert _actions(db)[-1] == "vault.reveal_denied"
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == getattr(world, who).id)) == 0


def test_reason_and_fresh_second_factor_are_required(db, world, ring, ctx, make_secret):
    secret = make_secret()
    with pytest.raises(InvalidError, match="Say why"):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="  ", mfa_fresh=True)
    with pytest.raises(StepUpRequiredError):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="x", mfa_fresh=False)


def test_expired_or_revoked_grants_and_locked_accounts(db, world, ring, ctx, make_secret):
    from govern.grants.models import Grant

    secret = make_secret()
    grant = db.scalars(select(Grant).where(Grant.person_id == world.publisher.user.person_id)).one()
    grant.expires_at = utcnow() - timedelta(minutes=1)
    db.commit()
    assert refusal(db, world.publisher.user, secret) is not None
    grant.expires_at = None
    world.account.status = "locked"
    db.commit()
    assert "only IT" in refusal(db, world.publisher.user, secret)
    assert refusal(db, world.it.user, secret) is None  # custodians still can


def test_totp_shows_codes_never_the_seed_and_the_seed_is_for_it_and_admin(db, world, ring, ctx, make_secret):
    secret = make_secret("totp", SEED)
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
