"""The audit chain: appending, the secret-key guard, transactions, tamper detection, streaming."""

from __future__ import annotations

import gc
import random
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import govern.audit.services as services
from govern import audit
from govern.audit.models import AuditEvent
from govern.audit.services import (
    AuditContext,
    AuditFilter,
    _fast_content,
    chain_hash,
    event_content,
    filtered_query,
    iter_events,
    link_hash,
    list_events,
    verify_chain,
)
from govern.crypto.auditkeys import AuditKeys
from tests.factories import TEST_CHAIN_KEY, allow_tampering, append_events, chain_head
from tests.support import TEST_AUDIT_KEYS

CTX = AuditContext(actor_label="test")
#: The keys every test app chains with: an edited keyed event shows only to a verify that has them.
TEST_AUDIT_KEY_FILE = AuditKeys.from_json(TEST_AUDIT_KEYS)

#: Every column an event's hash covers, plus the link columns (everything but the id).
CONTENT_COLUMNS = ("occurred_at", "actor_user_id", "actor_label", "ip", "session_ref", "request_id", "action",
                   "target_type", "target_id", "outcome", "details_json", "prev_hash", "hash")


def _stored(session: Session, event_id: int) -> Any:
    return session.execute(select(AuditEvent.__table__).where(AuditEvent.id == event_id)).one()


def _recomputed_hash(row: Any) -> str:
    """The hash an event row (or a mapping of its columns) should carry."""
    fields = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    prev_hash = fields.pop("prev_hash")
    del fields["hash"]
    key_id = fields.pop("key_id", None)
    key = TEST_CHAIN_KEY if key_id is not None else None
    assert key is None or key.key_id == key_id
    return link_hash(prev_hash, event_content(event_id=fields.pop("id"), **fields), key)


@dataclass
class FakeActor:
    id: int
    email: str


# --- appending ------------------------------------------------------------------------------------


def test_record_appends_contiguous_linked_events(db):
    first_id, prev_hash_before = chain_head(db)
    ctx = AuditContext(actor_label="someone", ip="10.0.0.7", session_ref="abcd1234abcd1234", request_id="r" * 16)
    events = [
        audit.record(db, "test.created", target_type="thing", target_id=42, details={"name": "Zoë", "n": 1}, context=ctx),
        audit.record(db, "test.changed", actor=FakeActor(7, "actor@example.com"), details={"changes": {"a": [1, 2]}},
                     context=ctx),
        audit.record(db, "test.failed", outcome="failure", details={"error_code": "E1"}, context=CTX),
        audit.record(db, "test.denied", outcome="denied", context=CTX),
    ]
    db.commit()
    db.expunge_all()

    ids = [e.id for e in events]
    assert ids == list(range(first_id + 1, first_id + 5))
    rows = [_stored(db, i) for i in ids]
    assert rows[0].prev_hash == prev_hash_before
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.prev_hash == before.hash
    for row in rows:
        # Recomputed from what the database gives back, not from the objects in memory.
        assert _recomputed_hash(row) == row.hash
    assert (rows[0].target_id, rows[0].ip, rows[0].actor_label) == ("42", "10.0.0.7", "someone")
    assert (rows[1].actor_user_id, rows[1].actor_label) == (7, "actor@example.com")
    assert rows[0].details_json == '{"n":1,"name":"Zoë"}'
    assert chain_head(db) == (ids[-1], rows[-1].hash)
    result = verify_chain(db)
    assert result.ok and result.checked == ids[-1]


def _entries() -> list[audit.Entry]:
    actor = FakeActor(7, "Actor@Example.com")
    return [
        audit.Entry("test.created", target_type="thing", target_id=42, details={"name": "Zoë", "n": 1}),
        audit.Entry("test.changed", actor=actor, details={"changes": {"a": [1, 2]}, "due_at": datetime(2026, 1, 2, tzinfo=UTC)}),
        audit.Entry("test.failed", outcome="failure", details={"error_code": "E1"}),
        audit.Entry("test.denied", outcome="denied"),
    ]


def test_record_many_writes_exactly_the_chain_record_writes_one_by_one(db, monkeypatch):
    ctx = AuditContext(actor_label="someone", ip="10.0.0.7", session_ref="abcd1234abcd1234", request_id="r" * 16)
    start = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)

    def frozen_clock() -> None:
        ticks = iter(range(100))
        monkeypatch.setattr(services, "utcnow", lambda: start + timedelta(microseconds=next(ticks)))

    audit.record(db, "test.before", context=CTX)
    db.commit()
    first_id, _ = chain_head(db)
    columns = ("id", *CONTENT_COLUMNS)

    frozen_clock()
    with db.begin_nested() as one_by_one:
        for e in _entries():
            audit.record(db, e.action, actor=e.actor, target_type=e.target_type, target_id=e.target_id,
                         outcome=e.outcome, details=e.details, context=ctx)
        expected = [tuple(_stored(db, first_id + n)._mapping[c] for c in columns) for n in range(1, 5)]
        expected_head = chain_head(db)
        one_by_one.rollback()
    db.expunge_all()
    assert chain_head(db)[0] == first_id

    frozen_clock()
    ids = audit.record_many(db, _entries(), context=ctx)
    db.commit()
    assert ids == list(range(first_id + 1, first_id + 5))
    assert [tuple(_stored(db, i)._mapping[c] for c in columns) for i in ids] == expected
    assert chain_head(db) == expected_head
    result = verify_chain(db)
    assert result.ok and result.checked == ids[-1]
    # And the chain goes on from there, one by one.
    monkeypatch.undo()
    after = audit.record(db, "test.after", context=CTX)
    db.commit()
    assert after.id == ids[-1] + 1 and verify_chain(db).ok


def test_record_many_refuses_the_whole_batch_before_writing_anything(db):
    head = chain_head(db)
    with pytest.raises(ValueError, match="secret-like"):
        audit.record_many(db, [audit.Entry("test.ok"), audit.Entry("test.bad", details={"password": "x"})], context=CTX)
    with pytest.raises(ValueError, match="outcome"):
        audit.record_many(db, [audit.Entry("test.ok"), audit.Entry("test.bad", outcome="maybe")], context=CTX)
    assert audit.record_many(db, [], context=CTX) == []
    assert chain_head(db) == head
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "test.ok")) is None


def test_record_many_lives_and_dies_with_the_callers_transaction(db):
    kept = audit.record(db, "test.kept", context=CTX)
    db.commit()
    audit.record_many(db, [audit.Entry("test.lost"), audit.Entry("test.lost")], context=CTX)
    db.rollback()
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "test.lost")) is None
    assert chain_head(db) == (kept.id, kept.hash)
    assert audit.record_many(db, [audit.Entry("test.after")], context=CTX) == [kept.id + 1]
    db.commit()
    assert verify_chain(db).ok


def test_hash_covers_every_content_field():
    fields = dict(event_id=1, occurred_at=datetime(2026, 1, 1, tzinfo=UTC), actor_user_id=None, actor_label="a",
                  ip=None, session_ref=None, request_id=None, action="x", target_type=None, target_id=None,
                  outcome="success", details_json="{}")
    original = chain_hash("0" * 64, event_content(**fields))
    changed = {"event_id": 2, "occurred_at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "actor_user_id": 1,
               "actor_label": "b", "ip": "1.2.3.4", "session_ref": "s", "request_id": "r", "action": "y",
               "target_type": "t", "target_id": "1", "outcome": "failure", "details_json": '{"a":1}'}
    for name, value in changed.items():
        assert chain_hash("0" * 64, event_content(**{**fields, name: value})) != original, name
    assert chain_hash("1" * 64, event_content(**fields)) != original


@pytest.mark.parametrize("details", [
    {"password": "hunter2"},
    {"totp_code": "123456"},
    {"token": "abc"},
    {"value": "s3cret"},
    {"new_Password": "x"},
    {"api_token": "x"},
    {"changes": {"secret": "nested"}},
])
def test_secret_like_detail_keys_are_refused(db, details):
    head = chain_head(db)
    with pytest.raises(ValueError, match="secret-like"):
        audit.record(db, "test.secret", details=details, context=CTX)
    assert chain_head(db) == head
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "test.secret")) is None


def test_harmless_keys_that_look_alike_are_allowed(db):
    event = audit.record(db, "test.ok", details={"error_code": "E42", "status_code": 404, "token_count": 3,
                                                  "secret_id": 9, "passwords_changed": 2}, context=CTX)
    assert event.id == chain_head(db)[0]


def test_unknown_outcome_is_refused(db):
    head = chain_head(db)
    with pytest.raises(ValueError, match="outcome"):
        audit.record(db, "test.x", outcome="maybe", context=CTX)
    assert chain_head(db) == head


def test_event_lives_and_dies_with_the_callers_transaction(db):
    kept = audit.record(db, "test.kept", context=CTX)
    db.commit()
    lost = audit.record(db, "test.lost", context=CTX)
    assert lost.id == kept.id + 1
    db.rollback()

    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "test.lost")) is None
    assert chain_head(db) == (kept.id, kept.hash)
    after = audit.record(db, "test.after", context=CTX)
    db.commit()
    assert after.id == kept.id + 1  # the rolled-back id is handed out again: no gap
    assert _stored(db, after.id).prev_hash == kept.hash
    assert verify_chain(db).ok


# --- the database refuses changes -------------------------------------------------------------------


def test_database_refuses_update_and_delete(db, connection, is_postgresql):
    event = audit.record(db, "test.sealed", details={"n": 1}, context=CTX)
    db.commit()
    statements = [
        update(AuditEvent).where(AuditEvent.id == event.id).values(action="test.forged"),
        update(AuditEvent).values(details_json="{}"),
        delete(AuditEvent).where(AuditEvent.id == event.id),
        delete(AuditEvent),
    ]
    if is_postgresql:
        statements.append(text("TRUNCATE audit_events"))
    for statement in statements:
        # A savepoint, so the refusal does not abort the test's transaction on PostgreSQL.
        with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
            connection.execute(statement)
    row = _stored(db, event.id)
    assert (row.action, row.details_json) == ("test.sealed", '{"n":1}')
    assert verify_chain(db).ok


def test_bypassing_the_triggers_is_undone_by_rollback(db, connection):
    # The tamper tests below rely on this: switching the triggers off is transactional (SQLite too).
    audit.record(db, "test.sealed", context=CTX)  # row triggers fire only when a row is hit
    db.commit()
    with connection.begin_nested() as savepoint:
        allow_tampering(connection)
        savepoint.rollback()
    with pytest.raises(DBAPIError, match="append-only"), connection.begin_nested():
        connection.execute(delete(AuditEvent))


# --- tamper detection --------------------------------------------------------------------------------


def _swap_contents(db: Session, a: int, b: int) -> None:
    row_a, row_b = _stored(db, a), _stored(db, b)
    db.execute(update(AuditEvent).where(AuditEvent.id == a).values({c: getattr(row_b, c) for c in CONTENT_COLUMNS}))
    db.execute(update(AuditEvent).where(AuditEvent.id == b).values({c: getattr(row_a, c) for c in CONTENT_COLUMNS}))


def _rewrite_with_fresh_hash(db: Session, event_id: int) -> None:
    forged = {**_stored(db, event_id)._mapping, "action": "test.innocent"}
    db.execute(update(AuditEvent).where(AuditEvent.id == event_id)
               .values(action=forged["action"], hash=_recomputed_hash(forged)))


TAMPERING = {
    # name: (what to do with the five event ids, index of the id reported, words in the problem)
    "edited action": (lambda db, ids: db.execute(update(AuditEvent).where(AuditEvent.id == ids[2]).values(action="test.innocent")), 2, "edited"),
    "edited details": (lambda db, ids: db.execute(update(AuditEvent).where(AuditEvent.id == ids[2]).values(details_json='{"n":999}')), 2, "edited"),
    "edited time": (lambda db, ids: db.execute(update(AuditEvent).where(AuditEvent.id == ids[2]).values(occurred_at=datetime(2020, 1, 1, tzinfo=UTC))), 2, "edited"),
    "edited with recomputed hash": (lambda db, ids: _rewrite_with_fresh_hash(db, ids[2]), 3, "does not link"),
    "deleted in the middle": (lambda db, ids: db.execute(delete(AuditEvent).where(AuditEvent.id == ids[2])), 2, "missing"),
    "deleted the first": (lambda db, ids: db.execute(delete(AuditEvent).where(AuditEvent.id == ids[0])), 0, "missing"),
    "deleted the last": (lambda db, ids: db.execute(delete(AuditEvent).where(AuditEvent.id == ids[4])), 4, "head"),
    "deleted the last two": (lambda db, ids: db.execute(delete(AuditEvent).where(AuditEvent.id >= ids[3])), 3, "head"),
    "swapped": (lambda db, ids: _swap_contents(db, ids[1], ids[2]), 1, "does not link"),
}


@pytest.mark.parametrize("batch", [5000, 2], ids=["one-batch", "small-batches"])
@pytest.mark.parametrize("kind", list(TAMPERING))
def test_verify_chain_finds_tampering(db, kind, batch):
    tamper, broken_index, words = TAMPERING[kind]
    ids = [audit.record(db, "test.tamper", target_id=n, details={"n": n}, context=CTX).id for n in range(5)]
    db.commit()
    assert verify_chain(db, batch=batch, keys=TEST_AUDIT_KEY_FILE).ok

    allow_tampering(db)
    tamper(db, ids)
    db.commit()

    result = verify_chain(db, batch=batch, keys=TEST_AUDIT_KEY_FILE)
    assert not result.ok
    assert result.broken_at == ids[broken_index], result.problem
    assert words in (result.problem or "")
    assert result.checked == ids[broken_index] - 1


def test_verify_chain_finds_an_emptied_table(db):
    audit.record(db, "test.a", context=CTX)
    audit.record(db, "test.b", context=CTX)
    db.commit()
    allow_tampering(db)
    db.execute(delete(AuditEvent))
    result = verify_chain(db)
    assert (result.ok, result.broken_at, result.checked) == (False, 1, 0)


def test_verify_chain_reports_progress_per_batch(db):
    total = append_events(db, 7)[-1]
    db.commit()
    seen: list[int] = []
    result = verify_chain(db, batch=3, progress=seen.append)
    assert result.ok and result.checked == total
    assert sum(seen) == total and max(seen) <= 3


def test_verify_chain_memory_does_not_grow_with_the_chain(db):
    append_events(db, 3_000)
    db.commit()
    verify_chain(db, batch=500)  # warm up: compiled statements, caches

    def peak_of_verify() -> tuple[int, int]:
        gc.collect()  # start both measurements from the same state: no garbage left over
        tracemalloc.start()
        try:
            result = verify_chain(db, batch=500)
            return result.checked, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_checked, small_peak = peak_of_verify()
    append_events(db, 9_000)
    db.commit()
    large_checked, large_peak = peak_of_verify()

    assert large_checked == small_checked + 9_000 == chain_head(db)[0]
    # Loading the whole chain would take four times the memory; batches keep the peak flat.
    # (A leak of even 60 bytes per event would break this bound.)
    assert large_peak < small_peak * 1.25 + 128 * 1024, (small_peak, large_peak)


def test_fast_verify_text_is_byte_identical_to_event_content():
    """verify builds each event's text by hand; it must equal the reference for awkward values."""

    rng = random.Random(7)
    awkward = ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab\r", "\x00\x1f\x7f control", "naïve café ✓",
               "😀 astral", "\u2028 separator", '{"nested":"json"}', "</script>"]

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    for n in range(2_000):
        occurred_at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**13))
        fields: dict[str, Any] = {
            "actor_user_id": maybe(rng.choice([0, 1, 2**31 - 1, 2**62])), "actor_label": rng.choice(awkward),
            "ip": maybe(rng.choice(awkward)), "session_ref": maybe(rng.choice(awkward)),
            "request_id": maybe(rng.choice(awkward)), "action": rng.choice(awkward),
            "target_type": maybe(rng.choice(awkward)), "target_id": maybe(rng.choice(awkward)),
            "outcome": rng.choice(awkward), "details_json": rng.choice(awkward),
        }
        expected = event_content(event_id=n + 1, occurred_at=occurred_at, **fields)
        as_read = (n + 1, occurred_at.isoformat(timespec="microseconds"), fields["actor_user_id"], fields["actor_label"],
                   fields["ip"], fields["session_ref"], fields["request_id"], fields["action"], fields["target_type"],
                   fields["target_id"], fields["outcome"], fields["details_json"])
        assert _fast_content(as_read) == expected


def test_verify_reads_the_time_as_the_hash_covers_it(db):
    """The database hands verify the ISO text of occurred_at; awkward instants still verify."""
    instants = [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, 0, 999_999, tzinfo=UTC),
                datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC), datetime(2026, 6, 1, 12, tzinfo=UTC)]
    for instant in instants:
        append_events(db, 1, start=instant)
    db.commit()
    result = verify_chain(db)
    assert result.ok and result.checked == chain_head(db)[0], result.problem


def test_verify_falls_back_to_the_reference_text_before_calling_an_event_edited(db):
    """A timestamp another tool stored in another text form (SQLite) is not reported as an edit."""
    ids = append_events(db, 3, start=datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC))
    db.commit()
    if db.get_bind().dialect.name == "sqlite":
        allow_tampering(db)
        # Same instant, without the trailing zeros SQLAlchemy writes: the fast text differs, the value does not.
        db.execute(text("UPDATE audit_events SET occurred_at = '2026-01-01 12:00:01.25' WHERE id = :id"), {"id": ids[1]})
        db.commit()
    result = verify_chain(db)
    assert result.ok and result.checked == ids[-1], result.problem


# --- reading ------------------------------------------------------------------------------------------


def test_list_events_pages_newest_first_without_overlap_or_gap(db):
    ids = append_events(db, 23, action="test.page")
    append_events(db, 3, action="test.other")
    flt = AuditFilter(action="test.page")
    seen: list[int] = []
    before = None
    pages = 0
    while True:
        page, before = list_events(db, flt, before_id=before, limit=10)
        seen += [e.id for e in page]
        pages += 1
        if before is None:
            break
        assert before == page[-1].id
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


def test_list_events_exact_page_has_no_next_cursor(db):
    append_events(db, 10, action="test.exact")
    page, cursor = list_events(db, AuditFilter(action="test.exact"), limit=10)
    assert len(page) == 10 and cursor is None


def test_iter_events_streams_every_match_once(db):
    ids = append_events(db, 17, action="test.stream")
    ids += append_events(db, 2, action="test.streamless")  # the prefix "test.stream" matches it too
    append_events(db, 3, action="test.other")
    streamed = [e.id for e in iter_events(db, AuditFilter(action="test.stream"), batch=4)]
    assert streamed == sorted(ids, reverse=True)
    assert [e.id for e in iter_events(db, AuditFilter(action="test.stream."), batch=4)] == []


def test_filters(db):
    day = datetime(2026, 3, 10, tzinfo=UTC)
    append_events(db, 1, action="grant.created", actor_label="alice@example.com", actor_user_id=5,
                  target_type="account", target_id="7", start=day)
    append_events(db, 1, action="grant.revoked", actor_label="bob@example.com", actor_user_id=6,
                  target_type="account", target_id="8", start=day + timedelta(days=1))
    append_events(db, 1, action="grants_x.other", actor_label="bob@example.com", actor_user_id=6,
                  target_type="person", target_id="7", start=day + timedelta(days=2))

    def actions(**kwargs: Any) -> set[str]:
        page, _ = list_events(db, AuditFilter(**kwargs), limit=100)
        return {e.action for e in page} & {"grant.created", "grant.revoked", "grants_x.other"}

    assert actions(action="grant.") == {"grant.created", "grant.revoked"}
    assert actions(action="grant_") == set()  # LIKE wildcards are escaped
    assert actions(action="gra%") == set()
    assert actions(actor=" alice@example.COM ") == {"grant.created"}
    assert actions(actor="6") == {"grant.revoked", "grants_x.other"}
    assert actions(target_type="account", target_id="7") == {"grant.created"}
    assert actions(target_id="7") == {"grant.created", "grants_x.other"}
    assert actions(since=day + timedelta(days=1)) >= {"grant.revoked", "grants_x.other"}
    assert "grant.created" not in actions(since=day + timedelta(days=1))
    assert actions(since=day, until=day + timedelta(days=1)) == {"grant.created"}


@pytest.mark.parametrize("label,flt,index", [
    ("actor email", AuditFilter(actor="someone@example.com"), "ix_audit_events_actor_label_id"),
    ("actor id", AuditFilter(actor="7"), "ix_audit_events_actor_user_id_id"),
    ("target", AuditFilter(target_type="account", target_id="42"), "ix_audit_events_target_id"),
    ("date range", AuditFilter(since=datetime(2026, 3, 1, tzinfo=UTC), until=datetime(2026, 3, 2, tzinfo=UTC)),
     "ix_audit_events_occurred_at"),
    ("action prefix", AuditFilter(action="vault.revealed"), "ix_audit_events_action_id"),
])
def test_each_filter_can_be_served_by_an_index(db, is_postgresql, label, flt, index):
    """At a million events a filter must not need a table scan (scripts/bench_audit.py measures it).

    The planner picks scans freely on a small test table, so sequential scans are switched off:
    the plan then shows whether an index exists that serves the filter.
    """
    if label == "action prefix" and not is_postgresql:
        pytest.skip("SQLite keeps the scan by id for action prefixes (see filtered_query)")

    query = filtered_query(flt, action_range=is_postgresql).order_by(AuditEvent.id.desc()).limit(51)
    dialect = db.get_bind().dialect
    compiled = query.compile(dialect=dialect)
    params = {k: (v.isoformat() if isinstance(v, datetime) and not is_postgresql else v) for k, v in compiled.params.items()}
    connection = db.connection()
    if is_postgresql:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = connection.exec_driver_sql("EXPLAIN " + str(compiled), params).scalars().all()
    else:
        positional = tuple(params[name] for name in compiled.positiontup or ())
        plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional)]
    text_plan = "\n".join(plan)
    assert index in text_plan, text_plan
    assert "Seq Scan" not in text_plan and "SCAN audit_events\n" not in text_plan + "\n", text_plan
