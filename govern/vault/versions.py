"""Creating and changing secrets: versions (stage, confirm, retire, destroy) and their retention."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account
from govern.audit.services import Actor
from govern.auth.models import User
from govern.crypto import envelope
from govern.crypto.envelope import Binding, Sealed
from govern.crypto.keyring import Keyring
from govern.db import utcnow
from govern.errors import ConflictError, InvalidError
from govern.vault.keys import ensure_key_check, require_keyring
from govern.vault.models import SECRET_KINDS, Exposure, Secret, SecretVersion
from govern.vault.values import check_metadata, encode_payload, invalid_field, payload_of, refuse_value_in_metadata

DEFAULT_RETENTION_DAYS = 30
# --- creating and changing ----------------------------------------------------------------------------


def seal_version(session: Session, keyring: Keyring, secret: Secret, payload: dict[str, Any], *,
                  actor: User, status: str) -> SecretVersion:
    """Encrypt ``payload`` as the secret's next version with ``status``; ConflictError on a concurrent change."""
    ensure_key_check(session, keyring)
    number = (session.scalar(select(func.max(SecretVersion.version)).where(SecretVersion.secret_id == secret.id)) or 0) + 1
    sealed = envelope.seal(keyring, encode_payload(payload), Binding(secret.id, number, secret.kind))
    now = utcnow()
    version = SecretVersion(secret_id=secret.id, version=number, status=status, ciphertext=sealed.ciphertext,
                            wrapped_key=sealed.wrapped_key, kek_id=sealed.kek_id, created_at=now,
                            created_by_id=actor.id, confirmed_at=now if status == "current" else None)
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("Someone else changed this secret at the same time; reload and try again.") from None
    return version


def record_setter_exposure(session: Session, actor: User, secret: Secret, version: SecretVersion, reason: str) -> None:
    """Record that ``actor`` knows the value of ``version`` because they typed it."""
    # Whoever types a value knows it: rotation and offboarding must count them like a reveal.
    session.add(Exposure(secret_version_id=version.id, secret_id=secret.id, account_id=secret.account_id,
                         user_id=actor.id, person_id=actor.person_id,
                         kind="totp_seed" if secret.kind == "totp" else "value", reason=reason))


def create_secret(session: Session, *, actor: User, keyring: Keyring | None, account: Account, kind: str, label: str,
                  value: str | list[str], login: str | None = None, url: str | None = None, notes: str | None = None,
                  token_expires_at: date | None = None) -> Secret:
    """Vault a new secret of ``account``: validate, encrypt version 1 (current), audit; the caller commits."""
    ring = require_keyring(keyring)
    if kind not in SECRET_KINDS:
        raise invalid_field("kind", f"Choose one of: {', '.join(SECRET_KINDS)}.")
    if account.status == "archived":
        raise ConflictError(f"{account.display_name} is archived; it takes no new secrets.")
    meta = check_metadata(kind, label, login, url, notes, token_expires_at)
    payload = payload_of(kind, value)
    refuse_value_in_metadata(meta, payload)
    if session.scalar(select(Secret.id).where(Secret.account_id == account.id, Secret.label == meta.label)) is not None:
        raise InvalidError("This account already has a secret with that name.", {"label": "This account already has a secret with that name."})
    now = utcnow()
    secret = Secret(account_id=account.id, kind=kind, label=meta.label, login=meta.login, url=meta.url, notes=meta.notes,
                    token_expires_at=meta.token_expires_at, created_at=now, created_by_id=actor.id,
                    updated_at=now, updated_by_id=actor.id)
    session.add(secret)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("This account already has a secret with that name.") from None
    version = seal_version(session, ring, secret, payload, actor=actor, status="current")
    record_setter_exposure(session, actor, secret, version, "vaulted the value")
    audit.record(session, "vault.secret_created", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": account.id, "kind": kind, "label": meta.label, "version": version.version,
                          "kek_id": version.kek_id})
    session.flush()
    return secret


def update_metadata(session: Session, *, actor: Actor, secret: Secret, label: str, login: str | None = None,
                    url: str | None = None, notes: str | None = None, token_expires_at: date | None = None) -> list[str]:
    """Change a secret's name, login, URL, notes or token expiry (no new version); return what changed."""
    meta = check_metadata(secret.kind, label, login, url, notes, token_expires_at)
    changed = [name for name in ("label", "login", "url", "notes", "token_expires_at")
               if getattr(secret, name) != getattr(meta, name)]
    if not changed:
        return []
    if "label" in changed and session.scalar(select(Secret.id).where(
            Secret.account_id == secret.account_id, Secret.label == meta.label, Secret.id != secret.id)) is not None:
        raise InvalidError("This account already has a secret with that name.", {"label": "This account already has a secret with that name."})
    for name in changed:
        setattr(secret, name, getattr(meta, name))
    secret.updated_at, secret.updated_by_id = utcnow(), actor.id
    audit.record(session, "vault.secret_updated", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "changed": changed})
    session.flush()
    return changed


def current_version(session: Session, secret: Secret) -> SecretVersion | None:
    """The version in use."""
    return session.scalar(select(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "current"))


def pending_version(session: Session, secret: Secret) -> SecretVersion | None:
    """A staged version waiting for confirmation, if any."""
    return session.scalar(select(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "pending"))


def retire_version(version: SecretVersion, now: datetime) -> None:
    """Mark a version retired (kept for the retention period, then destroyed)."""
    version.status = "retired"
    version.retired_at = now


def change_value(session: Session, *, actor: User, keyring: Keyring | None, secret: Secret, value: str | list[str]) -> SecretVersion:
    """A new current version with ``value``; the old one is retired (kept for the retention period)."""
    ring = require_keyring(keyring)
    payload = payload_of(secret.kind, value)
    if pending_version(session, secret) is not None:
        raise ConflictError("A staged new value waits for confirmation; confirm or discard it first.")
    old = current_version(session, secret)
    now = utcnow()
    if old is not None:
        retire_version(old, now)
        session.flush()
    version = seal_version(session, ring, secret, payload, actor=actor, status="current")
    secret.updated_at, secret.updated_by_id = now, actor.id
    record_setter_exposure(session, actor, secret, version, "changed the value")
    audit.record(session, "vault.value_changed", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "kind": secret.kind, "version": version.version,
                          "retired_version": old.version if old else None})
    session.flush()
    return version


def stage_version(session: Session, *, actor: User, keyring: Keyring | None, secret: Secret, value: str | list[str]) -> SecretVersion:
    """Rotation step 1: keep a new value as ``pending`` while it is being set on the platform."""
    ring = require_keyring(keyring)
    payload = payload_of(secret.kind, value)
    if pending_version(session, secret) is not None:
        raise ConflictError("A staged new value waits for confirmation already.")
    version = seal_version(session, ring, secret, payload, actor=actor, status="pending")
    record_setter_exposure(session, actor, secret, version, "staged a new value")
    audit.record(session, "vault.version_staged", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version})
    session.flush()
    return version


def confirm_version(session: Session, *, actor: Actor, secret: Secret) -> SecretVersion:
    """Rotation step 2: the staged value works on the platform; it becomes current, the old one retired."""
    version = pending_version(session, secret)
    if version is None:
        raise ConflictError("There is no staged value to confirm.")
    old = current_version(session, secret)
    now = utcnow()
    if old is not None:
        retire_version(old, now)
        session.flush()  # the partial unique index allows one current version
    version.status, version.confirmed_at = "current", now
    secret.updated_at, secret.updated_by_id = now, actor.id
    audit.record(session, "vault.version_confirmed", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version,
                          "retired_version": old.version if old else None})
    session.flush()
    return version


def discard_pending(session: Session, *, actor: Actor, secret: Secret) -> SecretVersion:
    """Rotation abandoned: the staged value is destroyed at once (it never became current)."""
    version = pending_version(session, secret)
    if version is None:
        raise ConflictError("There is no staged value to discard.")
    destroy_version(version, utcnow())
    audit.record(session, "vault.version_discarded", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version})
    session.flush()
    return version


def destroy_version(version: SecretVersion, now: datetime) -> None:
    """Crypto-shred a version: overwrite its wrapped data key and mark it destroyed."""
    shredded = envelope.destroy(Sealed(version.ciphertext, version.wrapped_key, version.kek_id))
    version.wrapped_key = shredded.wrapped_key
    version.status, version.destroyed_at = "destroyed", now


# --- retention ---------------------------------------------------------------------------------------------


def purge_retired(session: Session, *, retention_days: int = DEFAULT_RETENTION_DAYS, now: datetime | None = None,
                  limit: int = 1000) -> int:
    """Crypto-shred retired versions older than the retention: overwrite the wrapped key, mark destroyed.

    Returns how many were destroyed (at most ``limit``; the jobs runner calls it until 0).
    """
    if retention_days < 0:
        raise ValueError("retention_days must not be negative")
    moment = now or utcnow()
    cutoff = moment - timedelta(days=retention_days)
    versions = list(session.scalars(
        select(SecretVersion).where(SecretVersion.status == "retired", SecretVersion.retired_at < cutoff)
        .order_by(SecretVersion.id).limit(limit)
    ))
    for version in versions:
        destroy_version(version, moment)
        audit.record(session, "vault.version_destroyed", target_type="secret", target_id=version.secret_id,
                     details={"account_id": version.secret.account_id, "version": version.version,
                              "retired_at": version.retired_at, "retention_days": retention_days})
    session.flush()
    return len(versions)


