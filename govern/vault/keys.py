"""Keys: the sealed vault, key check values, key-encryption-key rotation and rewrap of data keys."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import create_engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from govern import audit, failpoints
from govern.crypto import envelope
from govern.crypto.envelope import Binding, VaultCryptoError
from govern.crypto.keyring import Keyring
from govern.db import rowcount, utcnow
from govern.errors import ConflictError, NotFoundError
from govern.vault.errors import VaultSealedError
from govern.vault.models import KeyCheck, Secret, SecretVersion


def require_keyring(keyring: Keyring | None) -> Keyring:
    """The keyring, or VaultSealedError with what the operator must do when the vault is sealed."""
    if keyring is None:
        raise VaultSealedError(SEALED_MESSAGE)
    return keyring


SEALED_MESSAGE = (
    "The vault is sealed: govern started without a valid keyring, so no secret can be read or stored. "
    "An operator must supply the key file (GOVERN_VAULT_KEY_FILE, created by `govern keys init`) or the "
    "GOVERN_VAULT_KEYRING variable, check it with `govern keys status`, and restart govern. "
    "Everything else in govern keeps working."
)


def ensure_key_check(session: Session, keyring: Keyring) -> None:
    """Record the primary KEK's check value on first use; refuse a wrong or retired primary key."""
    kek_id = keyring.primary_id
    kcv = envelope.key_check_value(keyring.keys[kek_id])
    # A shared lock: `keys retire` updates this row first, so it waits for wraps in flight.
    row = session.scalar(select(KeyCheck).where(KeyCheck.kek_id == kek_id).with_for_update(read=True))
    if row is None:
        try:
            with session.begin_nested():
                session.add(KeyCheck(kek_id=kek_id, check_value=kcv))
        except IntegrityError:
            row = session.scalar(select(KeyCheck).where(KeyCheck.kek_id == kek_id))
    if row is not None:
        if not hmac.compare_digest(row.check_value, kcv):
            raise VaultSealedError(f"The keyring's key {kek_id} is not the key this database knows (key check value differs). " + SEALED_MESSAGE)
        if row.retired_at is not None:
            raise VaultSealedError(f"The keyring's primary key {kek_id} was retired; restart govern with the current key file.")


def keyring_problem(session: Session, keyring: Keyring) -> str | None:
    """Why this keyring cannot serve this database (wrong key, missing key), or None when it can."""
    for kek_id, check_value in session.execute(select(KeyCheck.kek_id, KeyCheck.check_value)):
        key = keyring.keys.get(kek_id)
        if key is not None and not hmac.compare_digest(envelope.key_check_value(key), check_value):
            return (f"the keyring's key {kek_id} is not the key this database was encrypted with "
                    "(key check value differs): supply the right key file")
    needed = session.execute(
        select(SecretVersion.kek_id, func.count()).where(SecretVersion.status != "destroyed").group_by(SecretVersion.kek_id)
    ).all()
    missing = {kek_id: count for kek_id, count in needed if kek_id not in keyring.keys}
    if missing:
        names = ", ".join(f"{k} ({n} data keys)" for k, n in sorted(missing.items()))
        return f"the keyring lacks key(s) that still wrap data keys: {names}; supply the key file that has them"
    return None


def keyring_problem_at_start(url: str, keyring: Keyring) -> str | None:
    """The start-up check; a database without the vault tables yet (before `db upgrade`) passes.

    It reads through a plain, short-lived engine: govern's own engine opens every SQLite
    transaction with BEGIN IMMEDIATE, which would wait for any writer just to read.
    """
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            return keyring_problem(session, keyring)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


# --- key rotation ---------------------------------------------------------------------------------------------


def rotate_keyring(keyring: Keyring) -> Keyring:
    """A copy of ``keyring`` with a new random primary KEK; older keys stay for unwrapping."""
    fresh = Keyring.generate()
    keys = dict(keyring.keys)
    keys.update(fresh.keys)
    return Keyring(primary_id=fresh.primary_id, keys=keys)


def record_rotation(session: Session, *, old_primary: str, keyring: Keyring) -> None:
    """Record the new primary's check value and audit the rotation."""
    session.add(KeyCheck(kek_id=keyring.primary_id, check_value=envelope.key_check_value(keyring.keys[keyring.primary_id])))
    audit.record(session, "vault.keys_rotated", target_type="kek", target_id=keyring.primary_id,
                 details={"previous_primary": old_primary, "primary": keyring.primary_id})
    session.flush()


@dataclass
class KeyUse:
    """One KEK and how many data keys it wraps."""

    kek_id: str
    in_keyring: bool
    is_primary: bool
    data_keys: int
    recorded: bool
    retired: bool
    check_ok: bool | None


def key_status(session: Session, keyring: Keyring | None) -> list[KeyUse]:
    """Every KEK known to the keyring or the database, with the number of live data keys it wraps."""
    counts = dict(session.execute(
        select(SecretVersion.kek_id, func.count()).where(SecretVersion.status != "destroyed").group_by(SecretVersion.kek_id)
    ).all())
    checks = {row.kek_id: row for row in session.scalars(select(KeyCheck))}
    ids = set(counts) | set(checks) | set(keyring.keys if keyring else ())
    result = []
    for kek_id in sorted(ids):
        key = keyring.keys.get(kek_id) if keyring else None
        check = checks.get(kek_id)
        result.append(KeyUse(
            kek_id=kek_id, in_keyring=key is not None, is_primary=bool(keyring and keyring.primary_id == kek_id),
            data_keys=int(counts.get(kek_id, 0)), recorded=check is not None,
            retired=bool(check and check.retired_at), check_ok=(
                hmac.compare_digest(envelope.key_check_value(key), check.check_value) if key is not None and check else None),
        ))
    return result


def _stale_versions_query(primary: str, after_id: int, limit: int) -> Any:
    return (
        select(SecretVersion.id, SecretVersion.version, SecretVersion.wrapped_key, SecretVersion.kek_id,
               Secret.id, Secret.kind)
        .join(Secret, Secret.id == SecretVersion.secret_id)
        .where(SecretVersion.kek_id != primary, SecretVersion.status != "destroyed", SecretVersion.id > after_id)
        .order_by(SecretVersion.id).limit(limit)
    )


def count_stale(session: Session, keyring: Keyring) -> int:
    """Live data keys not yet wrapped by the primary KEK."""
    return session.scalar(select(func.count()).select_from(SecretVersion).where(
        SecretVersion.kek_id != keyring.primary_id, SecretVersion.status != "destroyed")) or 0


def _update_wrapped_keys(session: Session, primary: str, params: list[tuple[bytes, str, int, str]]) -> None:
    """Write a batch of rewrapped keys, guarded by the old KEK id and status, in one round trip.

    Building SQLAlchemy parameters per row costs more than the cryptography (measured), so the
    statement is fixed text with bound values: one UPDATE ... FROM unnest(arrays) on
    PostgreSQL, one executemany on SQLite.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "UPDATE secret_versions AS sv SET wrapped_key = v.wrapped_key, kek_id = %(primary)s "
            "FROM unnest(%(ids)s::integer[], %(keys)s::bytea[], %(olds)s::varchar[]) AS v(id, wrapped_key, old_kek_id) "
            "WHERE sv.id = v.id AND sv.kek_id = v.old_kek_id AND sv.status <> 'destroyed'",
            {"primary": primary, "ids": [p[2] for p in params], "keys": [p[0] for p in params], "olds": [p[3] for p in params]},
        )
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(
        f"UPDATE secret_versions SET wrapped_key = {mark}, kek_id = {mark} "  # noqa: S608 - placeholders only
        f"WHERE id = {mark} AND kek_id = {mark} AND status <> 'destroyed'",
        params,
    )


@dataclass
class RewrapBatch:
    """What one batch did."""

    seen: int
    rewrapped: int
    failed: list[int]
    last_id: int


def rewrap_batch(session: Session, keyring: Keyring, *, batch_size: int, after_id: int = 0) -> RewrapBatch:
    """Rewrap up to ``batch_size`` data keys (ids above ``after_id``) under the primary KEK; audit; no commit.

    Only the wrapped key and its KEK id change; the ciphertext is untouched. The update is
    guarded by the old KEK id and status, so a row changed meanwhile (destroyed, rewrapped by a
    concurrent run) is left alone.
    """
    # Core rows, not ORM loading: this loop is the hot path of a rewrap.
    rows = session.connection().execute(_stale_versions_query(keyring.primary_id, after_id, batch_size)).all()
    if not rows:
        return RewrapBatch(0, 0, [], after_id)
    params: list[tuple[bytes, str, int, str]] = []
    failed: list[int] = []
    rewrap = envelope.rewrap_many(keyring)
    primary = keyring.primary_id
    for version_id, number, wrapped, kek_id, secret_id, kind in rows:
        try:
            params.append((rewrap(wrapped, kek_id, Binding(secret_id, number, kind)), primary, version_id, kek_id))
        except VaultCryptoError:
            failed.append(version_id)
    if params:
        _update_wrapped_keys(session, primary, params)
    audit.record(session, "vault.rewrap_batch", outcome="failure" if failed else "success", target_type="kek",
                 target_id=keyring.primary_id,
                 details={"rewrapped": len(params), "failed_version_ids": failed[:100], "first_id": rows[0][0],
                          "last_id": rows[-1][0]})
    session.flush()
    return RewrapBatch(len(rows), len(params), failed, rows[-1][0])


@dataclass
class RewrapResult:
    """Totals of a rewrap run."""

    rewrapped: int = 0
    failed: list[int] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0


def rewrap_all(factory: sessionmaker[Session], keyring: Keyring, *, batch_size: int = 5000,
               progress: Callable[[int], None] | None = None) -> RewrapResult:
    """Rewrap every stale data key, one committed transaction per batch: safe to kill, resumable.

    A rerun starts over from the lowest id; rows done before are no longer stale, so it only
    does what is left (the KEK id in each row is the persisted cursor).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    result = RewrapResult()
    started = time.perf_counter()
    after = 0
    while True:
        with factory() as session:
            ensure_key_check(session, keyring)
            batch = rewrap_batch(session, keyring, batch_size=batch_size, after_id=after)
            if batch.seen == 0:
                session.rollback()
                break
            failpoints.hit("vault.rewrap.before_commit", step=result.batches + 1)
            session.commit()
        result.batches += 1
        result.rewrapped += batch.rewrapped
        result.failed.extend(batch.failed)
        after = batch.last_id
        if progress is not None:
            progress(batch.seen)
        failpoints.hit("vault.rewrap.after_batch", step=result.batches)
    result.seconds = time.perf_counter() - started
    return result


def retire_kek(session: Session, keyring: Keyring, kek_id: str) -> Keyring:
    """Mark ``kek_id`` retired (audited) and return the keyring without it; refuse while it wraps data keys.

    The caller commits, then saves the returned keyring to the key file.
    """
    if kek_id not in keyring.keys:
        raise NotFoundError(f"{kek_id} is not in the keyring.")
    if kek_id == keyring.primary_id:
        raise ConflictError(f"{kek_id} is the primary key; rotate first (`govern keys rotate`), then rewrap.")
    now = utcnow()
    # Update first: this takes the row lock that wraps in flight hold shared (ensure_key_check).
    marked = rowcount(session.execute(update(KeyCheck).where(KeyCheck.kek_id == kek_id).values(retired_at=now)))
    if not marked:
        key = keyring.keys[kek_id]
        session.add(KeyCheck(kek_id=kek_id, check_value=envelope.key_check_value(key), retired_at=now))
        session.flush()
    remaining = session.scalar(select(func.count()).select_from(SecretVersion).where(
        SecretVersion.kek_id == kek_id, SecretVersion.status != "destroyed")) or 0
    if remaining:
        raise ConflictError(f"{kek_id} still wraps {remaining} data key(s); run `govern keys rewrap` first.")
    audit.record(session, "vault.kek_retired", target_type="kek", target_id=kek_id, details={"primary": keyring.primary_id})
    session.flush()
    keys = {k: v for k, v in keyring.keys.items() if k != kek_id}
    return Keyring(primary_id=keyring.primary_id, keys=keys)


