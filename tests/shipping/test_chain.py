"""The keyed chain and signed checkpoints: what `govern audit verify` catches that a plain SHA-256 chain cannot."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update

from govern import audit
from govern.audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from govern.audit.services import chain_hash, event_content, record_keying, verify_chain, write_checkpoint
from govern.crypto.auditkeys import AuditKeys
from tests.factories import TEST_CHAIN_KEY, allow_tampering, append_events, chain_head
from tests.support import TEST_AUDIT_KEYS

KEYS = AuditKeys.from_json(TEST_AUDIT_KEYS)


def _rewrite_without_key(db, from_id: int) -> None:
    """What someone with the database but not the key can do: recompute every link from ``from_id`` on."""
    allow_tampering(db)
    prev = db.scalar(select(AuditEvent.hash).where(AuditEvent.id == from_id - 1)) or "0" * 64
    for event in db.scalars(select(AuditEvent).where(AuditEvent.id >= from_id).order_by(AuditEvent.id)).all():
        fields = {name: getattr(event, name) for name in ("occurred_at", "actor_user_id", "actor_label", "ip",
                                                          "session_ref", "request_id", "action", "target_type",
                                                          "target_id", "outcome", "details_json")}
        if event.id == from_id:
            fields["details_json"] = '{"note":"rewritten"}'
        new_hash = chain_hash(prev, event_content(event_id=event.id, **fields))
        db.execute(update(AuditEvent).where(AuditEvent.id == event.id).values(
            details_json=fields["details_json"], prev_hash=prev, hash=new_hash, key_id=None))
        prev = new_hash
    db.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=prev))
    db.flush()
    db.expire_all()


def test_new_events_are_keyed_and_verify_only_with_the_key(db):
    append_events(db, 5)
    audit.record(db, "test.keyed")  # through the app's provider: the test apps' audit key
    event = db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert event.key_id == TEST_CHAIN_KEY.key_id
    result = verify_chain(db, keys=KEYS)
    assert result.ok and result.keyed_from == 1 and result.keyed_unchecked == 0
    blind = verify_chain(db)
    assert blind.ok and blind.keyed_unchecked == 6  # linkage only, and said so
    other = verify_chain(db, keys=AuditKeys.generate())
    assert not other.ok and "chained with audit key ak-7e570001, which the audit key file lacks" in other.problem


def test_a_chain_rewritten_without_the_key_fails_to_verify(db):
    append_events(db, 10)
    _rewrite_without_key(db, 6)  # a consistent SHA-256 chain from event 6 on
    result = verify_chain(db, keys=KEYS)
    assert not result.ok and result.broken_at == 6
    assert "not keyed although the chain is keyed from event 1 on" in result.problem


def test_a_whole_chain_rewritten_plain_is_caught_by_the_signed_checkpoint(db):
    append_events(db, 10)
    checkpoint = write_checkpoint(db, KEYS)
    assert checkpoint is not None and checkpoint.event_id == 10
    assert write_checkpoint(db, KEYS) is None  # nothing new to sign
    _rewrite_without_key(db, 1)  # no keyed event is left to betray it
    result = verify_chain(db, keys=KEYS)
    assert not result.ok
    assert "event 10 no longer has the hash its checkpoint signed (the chain was rewritten)" in result.problem
    assert "trust nothing from event 1 on" in result.problem


def test_truncating_the_newest_events_fails_against_the_last_checkpoint(db):
    append_events(db, 10)
    write_checkpoint(db, KEYS)
    append_events(db, 5)
    write_checkpoint(db, KEYS)
    allow_tampering(db)
    db.execute(delete(AuditEvent).where(AuditEvent.id > 12))  # and make the head agree
    twelfth = db.scalar(select(AuditEvent.hash).where(AuditEvent.id == 12))
    db.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_event_id=12, last_hash=twelfth))
    db.flush()
    result = verify_chain(db, keys=KEYS)
    assert not result.ok and result.last_good_checkpoint == 10
    assert "says the chain reached event 15, which is gone (events deleted from the end)" in result.problem
    assert "the first event after it is 11" in result.problem


def test_a_forged_checkpoint_is_refused(db):
    append_events(db, 3)
    last_id, last_hash = chain_head(db)
    db.add(AuditCheckpoint(event_id=last_id, event_hash=last_hash, created_at=db.scalar(
        select(AuditEvent.occurred_at).where(AuditEvent.id == 1)), key_id=KEYS.signing_primary,
        signature=AuditKeys.generate().sign(b"anything")[1]))
    db.flush()
    result = verify_chain(db, keys=KEYS)
    assert not result.ok and "is not signed by an audit signing key (forged)" in result.problem


def test_rotated_keys_keep_old_events_verifiable_and_the_rotation_is_in_the_chain(db):
    append_events(db, 3)
    rotated = KEYS.rotated()
    audit.record(db, "audit.keys_rotated", target_type="audit_key", target_id=rotated.hmac_primary,
                 details={"previous_key": KEYS.hmac_primary, "key": rotated.hmac_primary}, key=rotated.chain_key())
    append_events(db, 2, key=rotated.chain_key())
    write_checkpoint(db, rotated)
    assert verify_chain(db, keys=rotated).ok
    only_new = AuditKeys(rotated.hmac_primary, {rotated.hmac_primary: rotated.hmac_keys[rotated.hmac_primary]},
                         rotated.signing_primary, {rotated.signing_primary: rotated.signing_seeds[rotated.signing_primary]})
    result = verify_chain(db, keys=only_new)
    assert not result.ok and "event 1 is chained with audit key ak-7e570001, which the audit key file lacks" in result.problem
    first_keyed_with_the_new_key = select(AuditEvent.action).where(AuditEvent.key_id == rotated.hmac_primary)
    assert db.scalars(first_keyed_with_the_new_key.order_by(AuditEvent.id)).first() == "audit.keys_rotated"


def test_the_change_to_a_keyed_chain_is_recorded_and_checked(db):
    append_events(db, 4, key=None)  # events written before the keyed chain began
    append_events(db, 3)
    keying = record_keying(db, KEYS)
    assert keying is not None and keying.key_id == KEYS.hmac_primary
    assert json.loads(keying.details_json) == {"keyed_from_event": 5, "plain_events_before": 4}
    assert record_keying(db, KEYS) is None  # once
    result = verify_chain(db, keys=KEYS)
    assert result.ok and result.keyed_from == 5
    # Someone without the key rewrites everything from the first keyed event on as plain links, no
    # checkpoint yet: every link holds, but the chain's own record of its keying betrays it.
    _rewrite_without_key(db, 5)
    broken = verify_chain(db, keys=KEYS)
    assert not broken.ok and broken.keyed_from is None
    assert "records that it is keyed from event 5, but no event is keyed" in broken.problem
