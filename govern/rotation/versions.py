"""A task's new value and the old ones: stage it, show it again, confirm it on the platform, roll
back to the previous one, and purge retired ones past the retention."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit, failpoints
from govern.auth.models import User
from govern.crypto.keyring import Keyring
from govern.db import rowcount, utcnow
from govern.errors import ConflictError, InvalidError
from govern.rotation.checklist import checklist
from govern.rotation.custody import MAX_TEXT, require_custodian, required_text
from govern.rotation.models import RotationTask
from govern.rotation.tasks import lock_live_task, open_task
from govern.vault import versions as vault_versions
from govern.vault.access import decrypt_version
from govern.vault.errors import StepUpRequiredError
from govern.vault.keys import require_keyring
from govern.vault.models import Exposure, Secret, SecretVersion
from govern.vault.rules import generate_for_account
from govern.vault.values import parse_totp
from govern.vault.versions import confirm_version, current_version, pending_version, purge_retired, stage_version

#: How long a retired version can still be made current again (the vault's retention).
DEFAULT_RETENTION_DAYS = vault_versions.DEFAULT_RETENTION_DAYS


def stage_task(session: Session, *, actor: User, keyring: Keyring | None, task: RotationTask, value: str | None = None,
               generate: bool = False, totp_code: str = "", token_expires_at: date | None = None) -> str | None:
    """Stage the new value as a pending version: generated with the platform's rules, or pasted.

    A new 2FA seed must come with a current code from it, proving the authenticator has it.
    Returns the generated password (shown once to the one who asked for it), else None.
    """
    require_custodian(actor)
    lock_live_task(session, task, ("open",))
    secret = task.secret
    generated: str | None = None
    if generate:
        if secret.kind != "password":
            raise InvalidError("Only passwords can be generated; paste the new value.", {"value": "Paste the new value."})
        generated = generate_for_account(session, secret.account).value
        value = generated
    staged = value or ""
    if secret.kind == "totp":
        params = parse_totp(staged)
        code = "".join((totp_code or "").split())
        if not code.isdigit() or len(code) != params.digits:
            raise InvalidError("Enter the current code the new seed shows in the authenticator.",
                               {"totp_code": f"Enter the {params.digits}-digit code from the new seed."})
        if not params.matches(code):
            raise InvalidError("That code does not match the new seed: check the seed, the clock, and try again.",
                               {"totp_code": "That code does not match the new seed."})
    if token_expires_at is not None:
        if secret.kind != "api_token":
            raise InvalidError("Only API tokens have an expiry date.", {"token_expires_at": "Only API tokens expire."})
        if token_expires_at <= utcnow().date():
            raise InvalidError("The new token's expiry must be in the future.", {"token_expires_at": "Choose a later date."})
    version = stage_version(session, actor=actor, keyring=keyring, secret=secret, value=staged)
    now = utcnow()
    task.status, task.staged_version_id, task.staged_at, task.staged_by_id = "staged", version.id, now, actor.id
    task.new_token_expires_at = token_expires_at
    audit.record(session, "rotation.task_staged", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": secret.account_id, "secret_id": secret.id, "version": version.version,
                          "generated": generated is not None, "kind": secret.kind})
    session.flush()
    return generated


def reveal_staged(session: Session, *, actor: User, keyring: Keyring | None, task: RotationTask, mfa_fresh: bool) -> dict[str, Any]:
    """Show IT the staged value again (to type it on the platform); audited as an exposure."""
    require_custodian(actor)
    if task.status != "staged" or task.staged_version_id is None:
        raise ConflictError("Nothing is staged on this task.")
    if not mfa_fresh:
        raise StepUpRequiredError("Confirm a code from your authenticator first (needed within the last 5 minutes).")
    ring = require_keyring(keyring)
    version = session.get(SecretVersion, task.staged_version_id)
    assert version is not None
    payload = decrypt_version(session, actor=actor, keyring=ring, version=version)
    kind = "totp_seed" if task.secret.kind == "totp" else "value"
    session.add(Exposure(secret_version_id=version.id, secret_id=version.secret_id, account_id=task.account_id,
                         user_id=actor.id, person_id=actor.person_id, kind=kind, reason=f"rotation task {task.id}: staged value"))
    audit.record(session, "rotation.staged_revealed", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": task.account_id, "secret_id": version.secret_id, "version": version.version})
    session.flush()
    return payload


def confirm_task(session: Session, *, actor: User, task: RotationTask, ticked: Iterable[str]) -> RotationTask:
    """The staged value works on the platform: it becomes current, the old one retired, the task done.

    An offboarding item linked to the task is the caller's to close
    (govern.offboarding.checklist.close_linked_items), as the offboarding sits higher on the ladder.

    Exactly one of two people confirming at once wins: the task row is claimed with a
    conditional update (the second waits for the first's row lock, then finds it done).
    """
    require_custodian(actor)
    items = checklist(task)
    done = set(ticked)
    missing = [i.text for i in items if i.required and i.key not in done]
    if missing:
        raise InvalidError("Tick what you did on the platform first: " + " ".join(missing), {"checklist": missing[0]})
    now = utcnow()
    claimed = rowcount(session.execute(
        update(RotationTask).where(RotationTask.id == task.id, RotationTask.status == "staged")
        .values(status="done", completed_at=now, completed_by_id=actor.id).execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        session.refresh(task)
        if task.status == "open":
            raise ConflictError("Nothing is staged on this task yet; stage the new value first.")
        who = ""
        if task.completed_by_id:
            user = session.get(User, task.completed_by_id)
            who = f" by {user.person.full_name}" if user else ""
        raise ConflictError(f"This rotation was {task.status}{who} meanwhile; nothing was changed. Reload the page.")
    session.refresh(task)
    secret = task.secret
    pending = pending_version(session, secret)
    if pending is None or pending.id != task.staged_version_id:
        raise ConflictError("The staged value of this task is gone (discarded elsewhere); nothing was changed.")
    failpoints.hit("rotation.confirm.before_vault")
    version = confirm_version(session, actor=actor, secret=secret)
    failpoints.hit("rotation.confirm.after_vault")
    if task.new_token_expires_at is not None:
        secret.token_expires_at = task.new_token_expires_at
    audit.record(session, "rotation.task_done", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": secret.account_id, "secret_id": secret.id, "version": version.version,
                          "reason": task.reason, "checklist": sorted(i.key for i in items if i.key in done),
                          "checklist_skipped": sorted(i.key for i in items if i.key not in done)})
    session.flush()
    return task


def previous_version(session: Session, secret: Secret, *, retention_days: int = DEFAULT_RETENTION_DAYS,
                     now: datetime | None = None) -> SecretVersion | None:
    """The retired version a rollback would restore: the latest, still within the retention."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    return session.scalar(
        select(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "retired",
                                    SecretVersion.retired_at >= cutoff)
        .order_by(SecretVersion.version.desc()).limit(1)
    )


def rollback(session: Session, *, actor: User, secret: Secret, reason: str,
             retention_days: int = DEFAULT_RETENTION_DAYS) -> SecretVersion:
    """The platform did not take the new value: make the previous version current again, audited.

    The value rolled away from is retired (kept for the retention), and a manual task is opened,
    because the reason for the rotation still stands.
    """
    require_custodian(actor)
    why = required_text(reason, "reason", "Say why you roll back (e.g. the platform refused the new password).")
    if pending_version(session, secret) is not None:
        raise ConflictError("A staged value waits for confirmation; cancel its task before rolling back.")
    current = current_version(session, secret)
    previous = previous_version(session, secret, retention_days=retention_days)
    if current is None or previous is None:
        raise ConflictError(f"There is no earlier value within the {retention_days}-day retention to go back to.")
    now = utcnow()
    current.status, current.retired_at = "retired", now
    session.flush()  # one current version at a time (partial unique index)
    previous.status, previous.retired_at = "current", None
    secret.updated_at, secret.updated_by_id = now, actor.id
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("Someone else changed this secret at the same time; reload and try again.") from None
    audit.record(session, "rotation.rolled_back", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "from_version": current.version, "to_version": previous.version,
                          "reason": why})
    open_task(session, actor=actor, secret=secret, reason="manual",
              note=f"Rolled back from version {current.version} to {previous.version}: {why}"[:MAX_TEXT])
    session.flush()
    return previous


def purge_expired_versions(session: Session, *, retention_days: int = DEFAULT_RETENTION_DAYS,
                           now: datetime | None = None) -> dict[str, int]:
    """Destroy retired versions past the retention, through the vault's purge service."""
    destroyed = 0
    while True:
        batch = purge_retired(session, retention_days=retention_days, now=now)
        destroyed += batch
        if batch < 1000:
            break
    return {"destroyed": destroyed}

