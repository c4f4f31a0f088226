"""Writing, reading and verifying audit events."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, func, insert, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from govern.audit.models import GENESIS_HASH, AuditChainHead, AuditCheckpoint, AuditEvent
from govern.crypto.auditkeys import AuditKeys, ChainKey, keyed_link
from govern.db import utcnow
from govern.errors import AuditWriteError

OUTCOMES = ("success", "failure", "denied")

#: Detail keys that could carry a secret value are refused outright: an audit record says
#: *that* something happened to a secret, never what the secret is.
FORBIDDEN_DETAIL_KEY = re.compile(
    r"(password|passwd|secret|seed|token|otp|totp_code|code|plaintext|value|key_material|cookie)$",
    re.IGNORECASE,
)
ALLOWED_DETAIL_KEYS = frozenset({"error_code", "zip_code", "status_code", "reason_code"})


class Actor(Protocol):
    """Whoever acts: a user, or a principal that is not one (a SCIM token: ``id`` None).

    Read-only, so frozen dataclasses and properties qualify as well as models.
    """

    @property
    def id(self) -> int | None:
        """The acting user's id; None when the actor is not a user."""

    @property
    def email(self) -> str:
        """The label the audit trail shows for the actor."""


@dataclass(frozen=True)
class AuditContext:
    """Where an action comes from; filled from the request by the web layer."""

    actor_label: str = "system"
    actor_user_id: int | None = None
    ip: str | None = None
    session_ref: str | None = None
    request_id: str | None = None


#: Set by the web layer (per request) or the CLI; returns the context of the current action.
context_provider: Callable[[], AuditContext] = AuditContext


def _no_chain_key() -> ChainKey | None:
    return None


#: Set by the app: the key new events are chained with (the audit key file's primary HMAC key).
chain_key_provider: Callable[[], ChainKey | None] = _no_chain_key


@dataclass
class AuditFilter:
    """Filters of the audit list and its CSV export."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """Serialise deterministically: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _check_details(details: Mapping[str, Any], path: str = "") -> None:
    for key, value in details.items():
        if FORBIDDEN_DETAIL_KEY.search(str(key)) and key not in ALLOWED_DETAIL_KEYS:
            raise ValueError(f"audit details must not carry secret-like field {path}{key!r}")
        if isinstance(value, Mapping):
            _check_details(value, f"{path}{key}.")


def event_content(
    *,
    event_id: int,
    occurred_at: datetime,
    actor_user_id: int | None,
    actor_label: str,
    ip: str | None,
    session_ref: str | None,
    request_id: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    outcome: str,
    details_json: str,
) -> str:
    """Return the canonical text that an event's hash covers."""
    return canonical_json(
        {
            "id": event_id,
            "occurred_at": occurred_at.isoformat(timespec="microseconds"),
            "actor_user_id": actor_user_id,
            "actor_label": actor_label,
            "ip": ip,
            "session_ref": session_ref,
            "request_id": request_id,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "outcome": outcome,
            "details": details_json,
        }
    )


def chain_hash(prev_hash: str, content: str) -> str:
    """SHA-256 over the previous event's hash and this event's canonical content."""
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


def link_hash(prev_hash: str, content: str, key: ChainKey | None) -> str:
    """An event's hash: keyed (HMAC-SHA256) when there is a chain key, else a plain SHA-256 link."""
    return keyed_link(key.key, prev_hash, content) if key is not None else chain_hash(prev_hash, content)


@dataclass(frozen=True)
class Entry:
    """One event for ``record_many``: the arguments ``record`` takes, minus the session."""

    action: str
    actor: Actor | None = None
    target_type: str | None = None
    target_id: object | None = None
    outcome: str = "success"
    details: Mapping[str, Any] | None = None


#: The columns of an event that its hash covers, besides its id (``event_content``'s arguments).
HASHED_COLUMNS = (
    "occurred_at", "actor_user_id", "actor_label", "ip", "session_ref", "request_id", "action",
    "target_type", "target_id", "outcome", "details_json",
)


def _columns(entry: Entry, ctx: AuditContext) -> dict[str, Any]:
    """The hashed columns of ``entry`` in ``ctx``; ValueError for an unknown outcome or a secret-like detail."""
    if entry.outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {entry.outcome!r}")
    details = dict(entry.details or {})
    _check_details(details)
    actor = entry.actor
    return {
        # Microsecond precision is what both SQLite and PostgreSQL give back, so hashes recompute.
        "occurred_at": utcnow(),
        "actor_user_id": actor.id if actor is not None else ctx.actor_user_id,
        # Lower-cased, so the actor filter is an indexed equality match.
        "actor_label": (actor.email if actor is not None else ctx.actor_label).lower(),
        "ip": ctx.ip, "session_ref": ctx.session_ref, "request_id": ctx.request_id, "action": entry.action,
        "target_type": entry.target_type, "target_id": None if entry.target_id is None else str(entry.target_id),
        "outcome": entry.outcome, "details_json": canonical_json(details),
    }


def lock_chain_head(session: Session) -> None:
    """Take the chain head's row lock now, before a caller locks other rows it will audit later.

    Every audited write holds this lock from its first event to its commit; a transaction that locked
    rotation tasks first and audited next could wait for one that audited first and then wanted those
    tasks: a deadlock (scripts/soak met it on PostgreSQL). Taking the head first keeps one lock order.
    On SQLite the write lock of BEGIN IMMEDIATE already orders every writer; the statement is a no-op lock.
    """
    session.execute(select(AuditChainHead.id).where(AuditChainHead.id == 1).with_for_update())


def _reserve_ids(session: Session, count: int) -> tuple[int, str]:
    """Move the chain head on by ``count`` ids (locking it); return the last id and the hash before them."""
    head = session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_event_id=AuditChainHead.last_event_id + count)
        .returning(AuditChainHead.last_event_id, AuditChainHead.last_hash)
    ).one_or_none()
    if head is None:
        raise AuditWriteError("the audit chain head is missing; run `govern db upgrade`")
    return head[0], head[1]


def record(
    session: Session,
    action: str,
    *,
    actor: Actor | None = None,
    target_type: str | None = None,
    target_id: object | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
    context: AuditContext | None = None,
    key: ChainKey | None = None,
) -> AuditEvent:
    """Append an event to the chain in the caller's transaction; raise AuditWriteError if it fails.

    The caller commits: the event and the change it records land together or not at all.
    """
    entry = Entry(action=action, actor=actor, target_type=target_type, target_id=target_id, outcome=outcome,
                  details=details)
    columns = _columns(entry, context or context_provider())
    key = key or chain_key_provider()
    try:
        event_id, prev_hash = _reserve_ids(session, 1)
        event = AuditEvent(id=event_id, **columns, prev_hash=prev_hash, key_id=key.key_id if key else None,
                           hash=link_hash(prev_hash, event_content(event_id=event_id, **columns), key))
        session.add(event)
        session.execute(
            update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=event.hash)
        )
        session.flush()
    except SQLAlchemyError as exc:
        raise AuditWriteError("the audit event could not be written; nothing was changed") from exc
    return event


def record_many(session: Session, entries: Sequence[Entry], *, context: AuditContext | None = None,
                key: ChainKey | None = None) -> list[int]:
    """Append ``entries`` to the chain in order, as ``record`` would one by one; returns their ids.

    One update reserves the ids, one multi-row insert writes the events and one update moves the
    head's hash: a fixed number of statements however many events (an offboarding writes hundreds).
    The head row is locked by the first update, so the chain stays gapless and linear.
    """
    if not entries:
        return []
    ctx = context or context_provider()
    key = key or chain_key_provider()
    rows = [_columns(entry, ctx) for entry in entries]
    try:
        # Autoflush first, so pending changes are written before the events that record them.
        session.flush()
        last_id, prev_hash = _reserve_ids(session, len(rows))
        for event_id, row in enumerate(rows, start=last_id - len(rows) + 1):
            row_hash = link_hash(prev_hash, event_content(event_id=event_id, **row), key)
            row.update(id=event_id, prev_hash=prev_hash, hash=row_hash, key_id=key.key_id if key else None)
            prev_hash = row_hash
        # A Core insert of the mapped table (declarative types __table__ as any FromClause).
        session.execute(insert(cast(Table, AuditEvent.__table__)), rows)
        session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=prev_hash))
    except SQLAlchemyError as exc:
        raise AuditWriteError("the audit events could not be written; nothing was changed") from exc
    return [row["id"] for row in rows]


def session_reference(secret_key: str, session_id_digest: str) -> str:
    """A short keyed digest of a session, safe to store in audit events."""
    return hmac.new(secret_key.encode(), session_id_digest.encode(), hashlib.sha256).hexdigest()[:16]


# --- reading -------------------------------------------------------------------------------


def filtered_query(flt: AuditFilter, *, action_range: bool = False) -> Select[AuditEvent]:
    """Return a select of events matching ``flt`` (no order, no limit).

    ``action_range`` adds a byte-wise range for the action prefix, so PostgreSQL's planner can
    use the (action, id) index (measured at a million events: a rare action 0.9 s -> 7 ms).
    SQLite's planner has no statistics and would then sort every match of a common prefix
    (2 s), so it keeps the scan by id (at most about 0.3 s there).
    """
    query = select(AuditEvent)
    if flt.actor:
        actor = flt.actor.strip().lower()
        # ASCII digits that fit the integer column; "²".isdigit() is True but int() refuses it.
        if re.fullmatch(r"[0-9]{1,9}", actor):
            query = query.where(AuditEvent.actor_user_id == int(actor))
        else:
            query = query.where(AuditEvent.actor_label == actor)  # labels are stored lower-case
    if flt.action:
        prefix = flt.action.strip()
        query = query.where(AuditEvent.action.startswith(prefix, autoescape=True))
        # The column compares byte-wise (COLLATE "C", migration 0003), so the range is exact.
        if action_range and prefix and ord(prefix[-1]) < 0x7F:  # action names are ASCII
            query = query.where(AuditEvent.action >= prefix, AuditEvent.action < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    if flt.target_type:
        query = query.where(AuditEvent.target_type == flt.target_type.strip())
    if flt.target_id:
        query = query.where(AuditEvent.target_id == flt.target_id.strip())
    if flt.since:
        query = query.where(AuditEvent.occurred_at >= flt.since)
    if flt.until:
        query = query.where(AuditEvent.occurred_at < flt.until)
    return query


def list_events(
    session: Session, flt: AuditFilter, *, before_id: int | None = None, limit: int = 50
) -> tuple[list[AuditEvent], int | None]:
    """Return one page of events newest first and the cursor of the next page (keyset paging)."""
    query = filtered_query(flt, action_range=session.get_bind().dialect.name == "postgresql")
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def iter_events(session: Session, flt: AuditFilter, batch: int = 2000) -> Iterator[AuditEvent]:
    """Stream every matching event newest first in constant memory (for CSV export)."""
    before: int | None = None
    while True:
        page, before = list_events(session, flt, before_id=before, limit=batch)
        yield from page
        session.expunge_all()
        if before is None:
            return


# --- verification ----------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """Outcome of a chain verification."""

    checked: int = 0
    broken_at: int | None = None
    problem: str | None = None
    #: The first event chained with an audit key (None: the chain has no keyed event yet).
    keyed_from: int | None = None
    #: Keyed events whose HMAC could not be checked because no audit keys were given.
    keyed_unchecked: int = 0
    checkpoints_checked: int = 0
    #: The newest checkpoint that holds: every event up to it is as it was when it was signed.
    last_good_checkpoint: int | None = None

    @property
    def ok(self) -> bool:
        """True when every link held."""
        return self.broken_at is None


#: The text of a JSON string exactly as ``json.dumps(ensure_ascii=False)`` writes it (the C encoder).
_json_string: Callable[[str], str] = json.encoder.encode_basestring

#: The columns verify reads, in the order ``_fast_content`` expects them.
_VERIFY_COLUMNS = (
    "id, {occurred_at}, actor_user_id, actor_label, ip, session_ref, request_id, action, target_type, "
    "target_id, outcome, details_json, prev_hash, hash, {key_id}"
)
#: Each dialect hands over ``occurred_at`` as the ISO text the hash covers. PostgreSQL formats it on
#: the server (in another process, so on the other core); SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff".
_VERIFY_OCCURRED_AT = {
    "postgresql": "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
    "sqlite": "replace(occurred_at, ' ', 'T') || '+00:00'",
}


def _fast_content(row: tuple[Any, ...]) -> str:
    """Build the same text as ``event_content`` straight from the raw row (keys in sorted order).

    Profiling showed the generic ``json.dumps`` of a dict and the ORM's row and datetime handling
    taking four fifths of verify's time; this writes the twelve fields by hand with the encoder
    ``json.dumps`` itself uses. Any row it gets wrong is caught: a mismatch is re-checked with
    ``event_content`` before an event is called edited.
    """
    (event_id, occurred_at, actor_user_id, actor_label, ip, session_ref, request_id, action, target_type,
     target_id, outcome, details_json) = row[:12]
    enc = _json_string
    return (
        f'{{"action":{enc(action)},"actor_label":{enc(actor_label)},'
        f'"actor_user_id":{"null" if actor_user_id is None else int.__repr__(actor_user_id)},'
        f'"details":{enc(details_json)},"id":{int.__repr__(event_id)},'
        f'"ip":{"null" if ip is None else enc(ip)},"occurred_at":{enc(occurred_at)},"outcome":{enc(outcome)},'
        f'"request_id":{"null" if request_id is None else enc(request_id)},'
        f'"session_ref":{"null" if session_ref is None else enc(session_ref)},'
        f'"target_id":{"null" if target_id is None else enc(target_id)},'
        f'"target_type":{"null" if target_type is None else enc(target_type)}}}'
    )


def _exact_content(session: Session, event_id: int) -> str:
    """One event's canonical content through the ORM and ``event_content``, the reference path."""
    event = session.get(AuditEvent, event_id)
    assert event is not None
    return event_content(event_id=event_id, **{name: getattr(event, name) for name in HASHED_COLUMNS})


def _link_holds(session: Session, row: tuple[Any, ...], prev_hash: str, key: bytes | None) -> bool:
    """Whether the stored hash of ``row`` is its link (keyed when ``key`` is given); fast path first."""
    stored: str = row[13]
    if key is None:
        if hashlib.sha256(f"{prev_hash}\n{_fast_content(row)}".encode()).hexdigest() == stored:
            return True
        return chain_hash(prev_hash, _exact_content(session, row[0])) == stored
    if hmac.compare_digest(keyed_link(key, prev_hash, _fast_content(row)), stored):
        return True
    return hmac.compare_digest(keyed_link(key, prev_hash, _exact_content(session, row[0])), stored)


def verify_chain(
    session: Session, *, keys: AuditKeys | None = None, batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Recompute every link in id order, in constant memory; stop at the first broken link; then the checkpoints.

    Keyed events are checked with ``keys`` (the audit key file); without them only their linkage is
    checked and they are counted in ``keyed_unchecked``. Once the chain is keyed, an unkeyed event
    is a break: someone without the key wrote it.

    Rows are read with the driver's own cursor in keyset batches (no ORM objects, no datetime
    parsing): at a million events the ORM path spent more time building rows than hashing.
    """
    result = VerifyResult()
    expected_id, prev_hash = 1, GENESIS_HASH
    connection = session.connection()
    dialect = connection.dialect.name
    occurred_at = _VERIFY_OCCURRED_AT[dialect]
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    # Built from module constants and an int only; the one value from outside is a bound parameter.
    # A database restored from a backup is checked before its migrations run: before 0021 there is no key_id.
    has_key_id = any(c["name"] == "key_id" for c in inspect(connection).get_columns("audit_events"))
    columns = _VERIFY_COLUMNS.format(occurred_at=occurred_at, key_id="key_id" if has_key_id else "NULL")
    sql = (f"SELECT {columns} FROM audit_events "  # noqa: S608
           f"WHERE id > {placeholder} ORDER BY id LIMIT {int(batch)}")
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # session.connection() has just checked it out
    cursor = dbapi_connection.cursor()
    try:
        last_seen = 0
        while True:
            cursor.execute(sql, (last_seen,))
            rows = cursor.fetchall()
            if not rows:
                break
            for row in rows:
                problem = _row_problem(session, result, row, expected_id, prev_hash, keys)
                if problem is not None:
                    _broken(result, min(row[0], expected_id), problem)
                    return _check_checkpoints(session, result, keys)
                prev_hash = row[13]
                expected_id += 1
                result.checked = row[0]
            last_seen = rows[-1][0]
            if progress is not None:
                progress(len(rows))
    finally:
        cursor.close()
    head = session.execute(select(AuditChainHead.last_event_id, AuditChainHead.last_hash)).one_or_none()
    if head is not None and (head.last_event_id != expected_id - 1 or head.last_hash != prev_hash):
        _broken(result, expected_id,
                f"the chain ends at event {expected_id - 1} but its head says {head.last_event_id} (events deleted from the end)")
    return _check_checkpoints(session, result, keys)


def _row_problem(session: Session, result: VerifyResult, row: tuple[Any, ...], expected_id: int, prev_hash: str,
                 keys: AuditKeys | None) -> str | None:
    event_id, key_id = row[0], row[14]
    if event_id != expected_id:
        kind = "missing" if event_id > expected_id else "out of order"
        return f"event {expected_id} is {kind} (found {event_id} next)"
    if row[12] != prev_hash:
        return f"event {event_id} does not link to event {event_id - 1} (reordered or replaced)"
    if key_id is None:
        if result.keyed_from is not None:
            return (f"event {event_id} is not keyed although the chain is keyed from event {result.keyed_from} on: "
                    "it was written or rewritten without the audit key")
        return None if _link_holds(session, row, prev_hash, None) else (
            f"event {event_id} was edited (its hash does not match its content)")
    if result.keyed_from is None:
        result.keyed_from = event_id
    if keys is None:
        result.keyed_unchecked += 1
        return None
    key = keys.hmac_keys.get(key_id)
    if key is None:
        return f"event {event_id} is chained with audit key {key_id}, which the audit key file lacks"
    return None if _link_holds(session, row, prev_hash, key) else (
        f"event {event_id} was edited or rewritten (its HMAC does not match its content under key {key_id})")


def checkpoint_message(event_id: int, event_hash: str, created_at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return f"govern audit checkpoint v1\n{event_id}\n{event_hash}\n{created_at.isoformat()}".encode()


def _check_keying(session: Session, result: VerifyResult) -> None:
    """The chain must be keyed from exactly the event its `audit.chain_keyed` record names."""
    if result.broken_at is not None:
        return
    recorded = session.scalar(select(AuditEvent.details_json).where(AuditEvent.action == "audit.chain_keyed")
                              .order_by(AuditEvent.id).limit(1))
    if recorded is None:
        return
    keyed_from = json.loads(recorded).get("keyed_from_event")
    if keyed_from != result.keyed_from:
        _broken(result, min(keyed_from or 1, result.keyed_from or keyed_from or 1),
                f"the chain records that it is keyed from event {keyed_from}, but "
                + (f"the first keyed event is {result.keyed_from}" if result.keyed_from else "no event is keyed")
                + ": events were rewritten without the audit key")


def _check_checkpoints(session: Session, result: VerifyResult, keys: AuditKeys | None) -> VerifyResult:
    """Every checkpoint must be signed by an audit signing key and match the chain; name the last good one."""
    _check_keying(session, result)
    if not inspect(session.connection()).has_table("audit_checkpoints"):  # before migration 0021
        return result
    checkpoints = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.event_id, AuditCheckpoint.id)).all()
    hashes = dict(session.execute(
        select(AuditEvent.id, AuditEvent.hash).where(AuditEvent.id.in_({c.event_id for c in checkpoints}))
    ).all()) if checkpoints else {}
    failure = None
    for checkpoint in checkpoints:
        result.checkpoints_checked += 1
        signed = keys is None or keys.signature_holds(
            checkpoint.key_id, checkpoint_message(checkpoint.event_id, checkpoint.event_hash, checkpoint.created_at),
            checkpoint.signature)
        found = hashes.get(checkpoint.event_id)
        if not signed:
            failure = f"the checkpoint of event {checkpoint.event_id} is not signed by an audit signing key (forged)"
        elif found is None:
            failure = (f"the checkpoint signed at {checkpoint.created_at:%Y-%m-%d %H:%M} says the chain reached event "
                       f"{checkpoint.event_id}, which is gone (events deleted from the end)")
        elif not hmac.compare_digest(found, checkpoint.event_hash):
            failure = (f"event {checkpoint.event_id} no longer has the hash its checkpoint signed "
                       "(the chain was rewritten)")
        elif result.broken_at is None or checkpoint.event_id < result.broken_at:
            result.last_good_checkpoint = checkpoint.event_id
            continue
        if failure:
            break
    if failure and result.broken_at is None:
        _broken(result, (result.last_good_checkpoint or 0) + 1, failure)
    elif failure:
        result.problem = f"{result.problem}; {failure}"
    if result.broken_at is not None:
        after = (result.last_good_checkpoint or 0) + 1
        result.problem = (f"{result.problem}; the last good checkpoint covers events up to "
                          f"{result.last_good_checkpoint}: the first event after it is {after}"
                          if result.last_good_checkpoint is not None else
                          f"{result.problem}; no checkpoint holds: trust nothing from event 1 on")
    return result


def record_keying(session: Session, keys: AuditKeys) -> AuditEvent | None:
    """Once the chain holds keyed events, record (once) from which event on it is keyed, with which key.

    The change from plain links to keyed ones is itself an event of the chain; `verify` checks that
    the chain is keyed from exactly that event, so a keyed stretch rewritten as plain links shows.
    """
    if session.scalar(select(AuditEvent.id).where(AuditEvent.action == "audit.chain_keyed").limit(1)) is not None:
        return None
    first = session.execute(select(AuditEvent.id, AuditEvent.key_id).where(AuditEvent.key_id.is_not(None))
                            .order_by(AuditEvent.id).limit(1)).one_or_none()
    if first is None:
        return None
    return record(session, "audit.chain_keyed", target_type="audit_key", target_id=first.key_id,
                  details={"keyed_from_event": first.id, "plain_events_before": first.id - 1},
                  context=AuditContext(actor_label="system"), key=keys.chain_key())


def write_checkpoint(session: Session, keys: AuditKeys, *, now: datetime | None = None) -> AuditCheckpoint | None:
    """Sign the chain head, unless the newest checkpoint already covers it; the caller commits."""
    head = session.execute(select(AuditChainHead.last_event_id, AuditChainHead.last_hash)).one_or_none()
    if head is None or head.last_event_id == 0:
        return None
    newest = session.scalar(select(func.max(AuditCheckpoint.event_id)))
    if newest is not None and newest >= head.last_event_id:
        return None
    created_at = now or utcnow()
    key_id, signature = keys.sign(checkpoint_message(head.last_event_id, head.last_hash, created_at))
    checkpoint = AuditCheckpoint(event_id=head.last_event_id, event_hash=head.last_hash, created_at=created_at,
                                 key_id=key_id, signature=signature)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def _broken(result: VerifyResult, event_id: int, problem: str) -> VerifyResult:
    result.broken_at = event_id
    result.problem = problem
    return result


def count_events(session: Session) -> int:
    """Return the number of events (for the verify progress bar)."""
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0
