"""Rotation rules: when a secret must rotate, guided rotation tasks (stage, confirm, cancel,
rollback), exposure-driven rotation when someone loses access, and compromise lockdown.

Services validate, change state, write the audit event and flush; the caller commits. Values
never leave the vault services except to the one page that asked to reveal them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import BindParameter, Select, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, lazyload

from govern import audit, failpoints
from govern.accounts.models import Account, Role
from govern.audit.models import AuditEvent
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.config import base_url
from govern.crypto.keyring import Keyring
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants.models import Grant
from govern.notifications import services as notifications
from govern.rotation.models import (
    REASON_LABELS,
    REASON_PRIORITY,
    TASK_REASONS,
    Incident,
    RotationInterval,
    RotationTask,
)
from govern.vault.access import decrypt_version
from govern.vault.errors import StepUpRequiredError
from govern.vault.keys import require_keyring
from govern.vault.models import Exposure, Secret, SecretVersion
from govern.vault.rules import generate_for_account
from govern.vault.values import parse_totp
from govern.vault.versions import DEFAULT_RETENTION_DAYS as VAULT_RETENTION_DAYS
from govern.vault.versions import (
    confirm_version,
    current_version,
    discard_pending,
    pending_version,
    purge_retired,
    stage_version,
)

#: Default intervals by kind, in days (None: never on a schedule).
#: Passwords follow their account's interval (90 days unless the account says otherwise).
#: API tokens: 180 days, or their own expiry date when that comes first.
#: 2FA seeds and recovery codes: 365 days. Neither is typed at login: a seed lives in the
#: authenticator and is exposed only when enrolled or revealed, recovery codes only when read,
#: and both rotate at once when someone who could know them loses access (exposure rule) or the
#: account is compromised; re-enrolling 2FA more often only multiplies the moments a seed is shown.
#: Notes are not credentials: never.
KIND_DEFAULT_DAYS: dict[str, int | None] = {
    "password": 90, "api_token": 180, "totp": 365, "recovery_codes": 365, "note": None,
}
#: A secret is "due" this many days before its interval ends (a quarter of short intervals).
DUE_WINDOW_DAYS = 14
#: Overdue tasks escalate to admins after this long (urgent ones after a day).
ESCALATE_AFTER = timedelta(days=7)
ESCALATE_URGENT_AFTER = timedelta(days=1)
EXPOSURE_MODES = ("could_have_seen", "revealed")
DEFAULT_EXPOSURE_MODE = "could_have_seen"
MAX_TEXT = 2000
TIMELINE_LIMIT = 500
#: How long a retired version can still be made current again (the vault's retention).
DEFAULT_RETENTION_DAYS = VAULT_RETENTION_DAYS
CUSTODIAN_ROLE = "it"

def _text(value: str, field_name: str, message: str) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidError(message, {field_name: message})
    if len(text) > MAX_TEXT:
        raise InvalidError(f"Keep it under {MAX_TEXT} characters.", {field_name: f"Keep it under {MAX_TEXT} characters."})
    return text


def _require_custodian(actor: Any) -> None:
    if CUSTODIAN_ROLE not in set(actor.roles):
        raise ForbiddenError("Only IT (the vault custodians) may do this.")


# --- when a secret must rotate ------------------------------------------------------------------


@dataclass
class Schedule:
    """Where a secret stands against its interval (never its value)."""

    secret: Secret
    interval_days: int | None
    interval_source: str  # secret, account, kind
    version: int | None
    since: datetime | None
    due_at: datetime | None
    state: str  # fine, due, overdue, never, no_value
    task: RotationTask | None = None

    @property
    def age_days(self) -> int | None:
        """Days since the current version became current."""
        return None if self.since is None else max(0, (utcnow() - self.since).days)

    @property
    def rotate_now(self) -> bool:
        """An open task asks for this secret to rotate at once (exposure, offboarding, compromise)."""
        return self.task is not None and self.task.reason in ("exposure", "offboarding", "compromise")


def default_interval(secret: Secret) -> tuple[int | None, str]:
    """The interval a secret gets without an override: its account's for passwords, else its kind's."""
    if secret.kind == "password":
        days = secret.account.rotation_interval_days if secret.account is not None else None
        return (days, "account") if days else (KIND_DEFAULT_DAYS["password"], "kind")
    return KIND_DEFAULT_DAYS.get(secret.kind), "kind"


def due_window(interval_days: int) -> timedelta:
    """How long before the end of an interval a secret counts as due."""
    return timedelta(days=min(DUE_WINDOW_DAYS, max(1, interval_days // 4)))


def compute_state(secret: Secret, interval: tuple[int | None, str], since: datetime | None, version: int | None,
                  now: datetime) -> Schedule:
    """Fine, due, overdue, never or no_value, from the current version's age and the interval.

    An API token is also due by its own expiry date when that comes first.
    """
    days, source = interval
    if since is None:
        return Schedule(secret, days, source, version, None, None, "no_value")
    due_at: datetime | None = since + timedelta(days=days) if days else None
    if secret.kind == "api_token" and secret.token_expires_at is not None:
        expiry = datetime.combine(secret.token_expires_at, datetime.min.time(), tzinfo=now.tzinfo)
        due_at = expiry if due_at is None or expiry < due_at else due_at
    if due_at is None:
        return Schedule(secret, days, source, version, since, None, "never")
    window = due_window(days) if days else timedelta(days=DUE_WINDOW_DAYS)
    state = "overdue" if now >= due_at else "due" if now >= due_at - window else "fine"
    return Schedule(secret, days, source, version, since, due_at, state)


def schedules(session: Session, secrets: Sequence[Secret], *, now: datetime | None = None,
              current: Mapping[int, tuple[int | None, datetime | None]] | None = None) -> list[Schedule]:
    """The schedule of each secret: three queries whatever their number.

    ``current``: each secret's current version number and since when, when the caller has read them
    already (``govern.vault.listing.secret_rows``); one query fewer.
    """
    now = now or utcnow()
    ids = [s.id for s in secrets]
    if not ids:
        return []
    if current is None:
        current = {}
        for secret_id, version, confirmed, created in session.execute(
            select(SecretVersion.secret_id, SecretVersion.version, SecretVersion.confirmed_at, SecretVersion.created_at)
            .where(SecretVersion.secret_id.in_(ids), SecretVersion.status == "current")
        ):
            current[secret_id] = (version, confirmed or created)
    intervals_statement, tasks_statement = _schedule_statements()
    overrides = {secret_id: days for secret_id, days in session.execute(intervals_statement, {"secret_ids": ids})}
    tasks = {t.secret_id: t for t in session.scalars(tasks_statement, {"secret_ids": ids})}
    result = []
    for secret in secrets:
        interval = (overrides[secret.id], "secret") if secret.id in overrides else default_interval(secret)
        number, since = current.get(secret.id, (None, None))
        row = compute_state(secret, interval, since, number, now)
        row.task = tasks.get(secret.id)
        result.append(row)
    return result


@cache
def _schedule_statements() -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """The interval overrides and the open tasks of the secrets bound as ``secret_ids``; built once (SQLAlchemy
    then walks each statement's structure once, not on every page that shows schedules)."""
    secret_ids: BindParameter[list[int]] = bindparam("secret_ids", expanding=True)
    intervals = select(RotationInterval.secret_id, RotationInterval.interval_days).where(
        RotationInterval.secret_id.in_(secret_ids))
    # The tasks' secrets are the ones given (already in the session), so they are not joined in again.
    tasks = (select(RotationTask).options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee))
             .where(RotationTask.secret_id.in_(secret_ids), RotationTask.status.in_(("open", "staged"))))
    return intervals, tasks


def set_interval(session: Session, *, actor: Any, secret: Secret, days: int | None, inherit: bool = False) -> None:
    """IT sets a secret's own interval (``days``; None: never), or returns it to the default (``inherit``)."""
    _require_custodian(actor)
    if not inherit and days is not None and not 1 <= days <= 3650:
        raise InvalidError("Choose between 1 and 3650 days.", {"interval_days": "Choose between 1 and 3650 days."})
    row = session.get(RotationInterval, secret.id)
    before = (row.interval_days if row else None, "secret" if row else default_interval(secret)[1])
    if inherit:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(RotationInterval(secret_id=secret.id, interval_days=days, updated_by_id=actor.id, updated_at=utcnow()))
    else:
        row.interval_days, row.updated_by_id, row.updated_at = days, actor.id, utcnow()
    session.flush()
    audit.record(session, "rotation.interval_set", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "interval_days": None if inherit else days,
                          "inherit": inherit, "before": {"interval_days": before[0], "source": before[1]}})
    session.flush()


# --- tasks ----------------------------------------------------------------------------------------


def _merge_json_list(raw: str, items: Iterable[Any], key: Callable[[Any], Any] = lambda x: x) -> tuple[str, bool]:
    values: list[Any] = json.loads(raw or "[]")
    seen = {json.dumps(key(v), sort_keys=True) for v in values}
    changed = False
    for item in items:
        k = json.dumps(key(item), sort_keys=True)
        if k not in seen:
            values.append(item)
            seen.add(k)
            changed = True
    return json.dumps(values), changed


def _live_task(session: Session, secret_id: int, *, lock: bool = False) -> RotationTask | None:
    query = select(RotationTask).where(RotationTask.secret_id == secret_id, RotationTask.status.in_(("open", "staged")))
    if lock:
        query = query.with_for_update(of=RotationTask)
    return session.scalar(query)


def _merge(task: RotationTask, *, reason: str, people: Sequence[dict[str, Any]], notes: list[str], due: datetime,
           urgent: bool, incident: Incident | None) -> list[str]:
    """Merge one more trigger into a live task: the most pressing reason, the earliest due time,
    every person and note. Returns the names of what changed."""
    changed_fields: list[str] = []
    task.reasons_json, changed = _merge_json_list(task.reasons_json, [reason])
    if changed:
        changed_fields.append("reasons")
    if REASON_PRIORITY[reason] > REASON_PRIORITY[task.reason]:
        task.reason = reason
        changed_fields.append("reason")
    task.people_json, changed = _merge_json_list(task.people_json, people, key=lambda p: (p["person_id"], p["why"]))
    if changed:
        changed_fields.append("people")
    task.notes_json, changed = _merge_json_list(task.notes_json, notes)
    if changed:
        changed_fields.append("notes")
    if due < task.due_at:
        task.due_at = due
        changed_fields.append("due_at")
    if urgent and not task.is_urgent:
        task.is_urgent = True
        changed_fields.append("urgent")
    if incident is not None and task.incident_id is None:
        task.incident_id = incident.id
        changed_fields.append("incident")
    return changed_fields


@dataclass
class Opened:
    """What opening a task did."""

    task: RotationTask
    created: bool
    changed: bool


def open_task(session: Session, *, actor: Any, secret: Secret, reason: str, due_at: datetime | None = None,
              people: Sequence[dict[str, Any]] = (), note: str = "", urgent: bool = False,
              incident: Incident | None = None) -> Opened:
    """Open a rotation task for ``secret``, or merge this trigger into its live task (one per secret).

    Merging keeps the most pressing reason, the earliest due time, every person and note, and
    is audited only when it changed something, so repeated triggers are idempotent.
    """
    if reason not in TASK_REASONS:
        raise InvalidError(f"Unknown reason {reason!r}.", {"reason": "Unknown reason."})
    now = utcnow()
    due = due_at or now
    notes = [note[:MAX_TEXT]] if note else []
    task = _live_task(session, secret.id, lock=True)
    if task is None:
        task = RotationTask(secret_id=secret.id, account_id=secret.account_id, reason=reason, reasons_json=json.dumps([reason]),
                            people_json=json.dumps(list(people)), notes_json=json.dumps(notes), is_urgent=urgent, due_at=due,
                            status="open", incident_id=incident.id if incident else None, created_at=now,
                            created_by_id=actor.id if actor is not None else None)
        try:
            with session.begin_nested():
                session.add(task)
                session.flush()
        except IntegrityError:
            if task in session:
                session.expunge(task)
            # Another transaction opened the live task a moment ago: merge into it instead.
            task = _live_task(session, secret.id, lock=True)
            if task is None:
                raise ConflictError("Someone else changed this secret's rotation at the same time; try again.") from None
        else:
            audit.record(session, "rotation.task_opened", actor=actor, target_type="rotation_task", target_id=task.id,
                         details={"account_id": secret.account_id, "secret_id": secret.id, "reason": reason,
                                  "due_at": due, "urgent": urgent, "people": [p["person_id"] for p in people],
                                  "incident_id": task.incident_id})
            session.flush()
            return Opened(task, True, False)
    changed_fields = _merge(task, reason=reason, people=people, notes=notes, due=due, urgent=urgent, incident=incident)
    if changed_fields:
        audit.record(session, "rotation.task_merged", actor=actor, target_type="rotation_task", target_id=task.id,
                     details={"account_id": secret.account_id, "secret_id": secret.id, "reason": reason,
                              "changed": changed_fields, "people": [p["person_id"] for p in people]})
    session.flush()
    return Opened(task, False, bool(changed_fields))


@dataclass(frozen=True)
class TaskRequest:
    """One trigger for ``open_tasks``: what ``open_task`` takes for one secret."""

    secret: Secret
    reason: str
    due_at: datetime
    people: Sequence[dict[str, Any]] = ()
    note: str = ""
    urgent: bool = False


def open_tasks(session: Session, *, actor: Any, requests: Sequence[TaskRequest]) -> dict[int, Opened]:
    """``open_task`` for many secrets at once (one request per secret), by secret id.

    The same tasks, merges and audit events, in a fixed number of statements: one query (locking)
    for the live tasks, one multi-row insert of the new ones, one for their audit events. If another
    transaction opens a task for one of these secrets meanwhile, the unique index refuses the insert
    and each request goes through ``open_task`` instead, which merges into that task.
    """
    if len({r.secret.id for r in requests}) != len(requests):
        raise ValueError("one request per secret")
    for r in requests:
        if r.reason not in TASK_REASONS:
            raise InvalidError(f"Unknown reason {r.reason!r}.", {"reason": "Unknown reason."})
    if not requests:
        return {}
    live = {t.secret_id: t for t in session.scalars(
        select(RotationTask).where(RotationTask.secret_id.in_([r.secret.id for r in requests]),
                                   RotationTask.status.in_(("open", "staged")))
        .options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee)).with_for_update(of=RotationTask))}
    now = utcnow()
    new = [r for r in requests if r.secret.id not in live]
    try:
        with session.begin_nested():
            if new:
                session.execute(insert(RotationTask), [{
                    "secret_id": r.secret.id, "account_id": r.secret.account_id, "reason": r.reason,
                    "reasons_json": json.dumps([r.reason]), "people_json": json.dumps(list(r.people)),
                    "notes_json": json.dumps([r.note[:MAX_TEXT]] if r.note else []), "is_urgent": r.urgent,
                    "due_at": r.due_at, "status": "open", "created_at": now,
                    "created_by_id": actor.id if actor is not None else None} for r in new])
    except IntegrityError:
        return {r.secret.id: open_task(session, actor=actor, secret=r.secret, reason=r.reason, due_at=r.due_at,
                                       people=r.people, note=r.note, urgent=r.urgent) for r in requests}
    created: list[tuple[TaskRequest, RotationTask]] = []
    if new:  # the rows just written, by the unique live task of each secret
        fresh = {t.secret_id: t for t in session.scalars(select(RotationTask).where(
            RotationTask.secret_id.in_([r.secret.id for r in new]), RotationTask.status.in_(("open", "staged")))
            .options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee)))}
        created = [(r, fresh[r.secret.id]) for r in new]
    result: dict[int, Opened] = {}
    entries: list[audit.Entry] = []
    for r, new_task in created:
        result[r.secret.id] = Opened(new_task, True, False)
        entries.append(audit.Entry("rotation.task_opened", actor=actor, target_type="rotation_task", target_id=new_task.id,
                                   details={"account_id": r.secret.account_id, "secret_id": r.secret.id, "reason": r.reason,
                                            "due_at": r.due_at, "urgent": r.urgent,
                                            "people": [p["person_id"] for p in r.people], "incident_id": None}))
    for r in requests:
        task = live.get(r.secret.id)
        if task is None:
            continue
        changed = _merge(task, reason=r.reason, people=r.people, notes=[r.note[:MAX_TEXT]] if r.note else [],
                         due=r.due_at, urgent=r.urgent, incident=None)
        result[r.secret.id] = Opened(task, False, bool(changed))
        if changed:
            entries.append(audit.Entry("rotation.task_merged", actor=actor, target_type="rotation_task", target_id=task.id,
                                       details={"account_id": r.secret.account_id, "secret_id": r.secret.id,
                                                "reason": r.reason, "changed": changed,
                                                "people": [p["person_id"] for p in r.people]}))
    audit.record_many(session, entries)
    session.flush()
    return result


def get_task(session: Session, task_id: int) -> RotationTask:
    """The task or NotFoundError."""
    task = session.get(RotationTask, task_id)
    if task is None:
        raise NotFoundError("No such rotation task.")
    return task


def _load_live(session: Session, task: RotationTask, statuses: tuple[str, ...]) -> None:
    session.refresh(task, with_for_update={"of": RotationTask})
    if task.status not in statuses:
        raise ConflictError(f"This task is {task.status} already (someone else may have just changed it); reload the page.")


def stage_task(session: Session, *, actor: Any, keyring: Keyring | None, task: RotationTask, value: str | None = None,
               generate: bool = False, totp_code: str = "", token_expires_at: date | None = None) -> str | None:
    """Stage the new value as a pending version: generated with the platform's rules, or pasted.

    A new 2FA seed must come with a current code from it, proving the authenticator has it.
    Returns the generated password (shown once to the one who asked for it), else None.
    """
    _require_custodian(actor)
    _load_live(session, task, ("open",))
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


def reveal_staged(session: Session, *, actor: Any, keyring: Keyring | None, task: RotationTask, mfa_fresh: bool) -> dict[str, Any]:
    """Show IT the staged value again (to type it on the platform); audited as an exposure."""
    _require_custodian(actor)
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


@dataclass(frozen=True)
class ChecklistItem:
    """One step IT does on the platform; ``required`` steps must be ticked to confirm."""

    key: str
    text: str
    required: bool = False


#: Where each platform signs out other sessions.
SESSION_HINTS = {
    "facebook": "Accounts Center > Password and security > Where you're logged in",
    "instagram": "Accounts Center > Password and security > Where you're logged in",
    "threads": "Accounts Center (Instagram) > Password and security > Where you're logged in",
    "x": "Settings > Security and account access > Apps and sessions > Sessions",
    "linkedin": "Settings > Sign in & security > Where you're signed in",
    "tiktok": "Settings and privacy > Security > Manage devices",
    "youtube": "Google Account > Security > Your devices",
    "pinterest": "Settings > Security and logins > Login sessions",
    "snapchat": "Settings > Devices",
    "bluesky": "Settings > Privacy and security > App passwords (revoke) and sign out",
    "mastodon": "Preferences > Account > Authorized apps and sessions",
}
#: Platforms that publishing tools connect to; their tokens break when the password changes.
PUBLISHING_PLATFORMS = frozenset({"facebook", "instagram", "threads", "x", "linkedin", "tiktok", "youtube", "pinterest"})
PUBLISHING_TOOLS = "Hootsuite, Buffer, Sprout Social, Later, Meta Business Suite"


def checklist(task: RotationTask) -> list[ChecklistItem]:
    """The per-platform steps of a rotation, for the task page and the confirm form."""
    secret = task.secret
    account = secret.account
    platform = account.platform_label
    sessions = SESSION_HINTS.get(account.platform, "the platform's security settings")
    items: list[ChecklistItem] = []
    if secret.kind == "password":
        who = f" (login {secret.login})" if secret.login else ""
        items.append(ChecklistItem("changed", f"Change the password on {platform}{who} to the staged value.", True))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
        if account.platform in PUBLISHING_PLATFORMS:
            items.append(ChecklistItem("tools", f"Reconnect publishing tools ({PUBLISHING_TOOLS}): their connection breaks when the password changes."))
        items.append(ChecklistItem("recovery", "Check that the recovery email and phone on the platform are still the company's."))
    elif secret.kind == "totp":
        items.append(ChecklistItem("changed", f"Re-enrol 2FA on {platform}: remove the old authenticator, add the new seed (its code was verified when staging).", True))
        items.append(ChecklistItem("codes", f"Regenerate the recovery codes on {platform} (re-enrolling often invalidates them) and rotate the recovery codes secret."))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
    elif secret.kind == "recovery_codes":
        items.append(ChecklistItem("changed", f"Regenerate the recovery codes on {platform}; the old ones stop working.", True))
        items.append(ChecklistItem("sessions", f"Sign out every other session: {sessions}."))
    elif secret.kind == "api_token":
        items.append(ChecklistItem("changed", f"Create the new token in {platform}'s developer or app settings.", True))
        items.append(ChecklistItem("revoked", "Revoke the old token at the platform."))
        items.append(ChecklistItem("tools", f"Update every integration that uses it ({PUBLISHING_TOOLS}, scripts)."))
    else:
        items.append(ChecklistItem("changed", "Update the note with the new information.", True))
    return items


def confirm_task(session: Session, *, actor: Any, task: RotationTask, ticked: Iterable[str]) -> RotationTask:
    """The staged value works on the platform: it becomes current, the old one retired, the task done.

    An offboarding item linked to the task is the caller's to close
    (govern.offboarding.services.close_linked_items), as the offboarding sits higher on the ladder.

    Exactly one of two people confirming at once wins: the task row is claimed with a
    conditional update (the second waits for the first's row lock, then finds it done).
    """
    _require_custodian(actor)
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


def cancel_task(session: Session, *, actor: Any, task: RotationTask, reason: str) -> RotationTask:
    """Drop a task; a staged value is destroyed at once (it never became current)."""
    _require_custodian(actor)
    why = _text(reason, "reason", "Say why this rotation is cancelled.")
    _load_live(session, task, ("open", "staged"))
    was = task.status
    if was == "staged":
        discard_pending(session, actor=actor, secret=task.secret)
    task.status, task.cancelled_at, task.cancelled_by_id, task.cancel_reason = "cancelled", utcnow(), actor.id, why
    audit.record(session, "rotation.task_cancelled", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": task.account_id, "secret_id": task.secret_id, "was": was, "reason": why})
    session.flush()
    return task


def assign_task(session: Session, *, actor: Any, task: RotationTask, assignee: User | None) -> RotationTask:
    """Give a live task to one IT person, or back to the IT team (None)."""
    _require_custodian(actor)
    if assignee is not None and (CUSTODIAN_ROLE not in set(assignee.roles) or not assignee.is_active):
        raise InvalidError("Only active IT users can take rotation tasks.", {"assignee": "Choose an IT user."})
    _load_live(session, task, ("open", "staged"))
    task.assignee_id = assignee.id if assignee else None
    audit.record(session, "rotation.task_assigned", actor=actor, target_type="rotation_task", target_id=task.id,
                 details={"account_id": task.account_id, "assignee_id": task.assignee_id})
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


def rollback(session: Session, *, actor: Any, secret: Secret, reason: str,
             retention_days: int = DEFAULT_RETENTION_DAYS) -> SecretVersion:
    """The platform did not take the new value: make the previous version current again, audited.

    The value rolled away from is retired (kept for the retention), and a manual task is opened,
    because the reason for the rotation still stands.
    """
    _require_custodian(actor)
    why = _text(reason, "reason", "Say why you roll back (e.g. the platform refused the new password).")
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


def request_rotation(session: Session, *, actor: Any, secret: Secret, note: str) -> Opened:
    """IT asks for a rotation now (manual reason)."""
    _require_custodian(actor)
    why = _text(note, "note", "Say why this secret should rotate.")
    return open_task(session, actor=actor, secret=secret, reason="manual", note=why)


# --- exposure-driven rotation ------------------------------------------------------------------------


def exposure_mode(configured: str | None = None) -> str:
    """The configured exposure mode (GOVERN_ROTATION_EXPOSURE_MODE), defaulting to could_have_seen."""
    if configured is None:
        configured = current_app.config.get("ROTATION_EXPOSURE_MODE") if has_app_context() else None
    mode = (configured or DEFAULT_EXPOSURE_MODE).strip().lower()
    if mode not in EXPOSURE_MODES:
        raise ValueError(f"GOVERN_ROTATION_EXPOSURE_MODE must be one of {', '.join(EXPOSURE_MODES)}, got {configured!r}")
    return mode


def _fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d") if moment else "?"


@dataclass
class ExposedSecret:
    """A secret whose current version a person saw, or (could_have_seen) could have seen, and why."""

    secret: Secret
    version: SecretVersion
    whys: list[str]
    #: They actually revealed (or set) the current version, not only could have.
    revealed: bool


def exposed_secrets(session: Session, *, person: Person, account_ids: Iterable[int] | None = None,
                    mode: str | None = None, now: datetime | None = None) -> list[ExposedSecret]:
    """Secrets (current versions) ``person`` saw, or in mode could_have_seen could have seen through a
    revealing role since the version became current; revealed ones first. ``account_ids`` None: every
    account they revealed a secret of or held a revealing role on. A fixed number of queries.
    """
    mode = exposure_mode(mode)
    now = now or utcnow()
    revealing_grants: list[Grant] = []
    if mode == "could_have_seen":
        query = select(Grant).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == person.id, Role.may_reveal.is_(True), Grant.status.in_(("active", "expired", "revoked")))
        if account_ids is not None:
            query = query.where(Grant.account_id.in_(list(account_ids)))
        revealing_grants = list(session.scalars(query.order_by(Grant.id)).unique())
    if account_ids is None:
        ids = {g.account_id for g in revealing_grants} | set(session.scalars(
            select(Exposure.account_id).where(Exposure.person_id == person.id).distinct()))
    else:
        ids = set(account_ids)
    if not ids:
        return []
    # Every secret of an account they held a revealing role on; elsewhere only those whose current
    # version they saw (a leaver who revealed one secret on each of 200 accounts reads 200, not 1,000).
    grant_accounts = sorted({g.account_id for g in revealing_grants})
    seen_versions = select(Exposure.secret_version_id).where(Exposure.person_id == person.id)
    rows = session.execute(
        select(Secret, SecretVersion).join(SecretVersion, SecretVersion.secret_id == Secret.id)
        .where(Secret.account_id.in_(sorted(ids)), SecretVersion.status == "current",
               or_(Secret.account_id.in_(grant_accounts), SecretVersion.id.in_(seen_versions)))
        .order_by(Secret.account_id, Secret.id)
        # The row carries the secret already (joining it again per version doubled the work), and the
        # sealed value is not needed to say who could have seen it.
        .options(lazyload(SecretVersion.secret), defer(SecretVersion.ciphertext), defer(SecretVersion.wrapped_key))
    ).unique().all()
    if not rows:
        return []
    # When and how they first saw each version: two columns, not an object per exposure (a busy
    # person has thousands).
    seen: dict[int, list[Any]] = {}
    for exposure in session.execute(
        select(Exposure.secret_version_id, Exposure.exposed_at, Exposure.kind).where(
            Exposure.secret_version_id.in_([v.id for _, v in rows]), Exposure.person_id == person.id)
        .order_by(Exposure.exposed_at)
    ):
        seen.setdefault(exposure.secret_version_id, []).append(exposure)
    grants_by_account: dict[int, list[Grant]] = {}
    for grant in revealing_grants:
        grants_by_account.setdefault(grant.account_id, []).append(grant)
    result: list[ExposedSecret] = []
    for secret, version in rows:
        since = version.confirmed_at or version.created_at
        whys: list[str] = []
        for exposure in seen.get(version.id, []):
            whys.append(f"saw version {version.version} on {_fmt(exposure.exposed_at)} ({exposure.kind.replace('_', ' ')})")
            break
        revealed = bool(whys)
        for grant in grants_by_account.get(secret.account_id, []):
            ended = grant.ended_at or (grant.expires_at if grant.expires_at and grant.expires_at <= now else None)
            if grant.starts_at <= now and (ended is None or ended >= since):
                whys.append(f"could have revealed it as {grant.role.name} ({_fmt(max(grant.starts_at, since))} to {_fmt(ended or now)})")
                break
        if whys:
            result.append(ExposedSecret(secret, version, whys, revealed))
    result.sort(key=lambda e: not e.revealed)  # stable: revealed first, then by account and secret
    return result


def open_exposure_rotations(session: Session, *, actor: Any, person: Person, account: Account, reason: str = "exposure",
                            mode: str | None = None, note: str = "") -> list[RotationTask]:
    """``person`` lost access to ``account``: every secret whose current version they saw, or
    (mode could_have_seen) could have seen through a revealing role since it became current,
    gets a task due now. ``reason``: exposure (grant ended) or offboarding. Idempotent.
    """
    if reason not in ("exposure", "offboarding", "compromise"):
        raise InvalidError("Exposure rotations are for exposure, offboarding or compromise.")
    mode = exposure_mode(mode)
    now = utcnow()
    if reason != "compromise" and session.scalar(
        select(Grant.id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == person.id, Grant.account_id == account.id, Grant.status == "active",
            Role.may_reveal.is_(True), (Grant.expires_at.is_(None)) | (Grant.expires_at > now)).limit(1)
    ) is not None:
        return []  # they still hold a revealing role here: nothing was lost yet
    tasks: list[RotationTask] = []
    exposed = sorted(exposed_secrets(session, person=person, account_ids=[account.id], mode=mode, now=now),
                     key=lambda e: e.secret.id)
    for item in exposed:
        people = [{"person_id": person.id, "name": person.full_name, "why": "; ".join(item.whys)}]
        text = note or f"{person.full_name} lost access to {account.display_name} ({REASON_LABELS[reason].lower()})."
        opened = open_task(session, actor=actor, secret=item.secret, reason=reason, due_at=now, people=people, note=text,
                           urgent=reason != "exposure" or item.revealed)
        tasks.append(opened.task)
    if tasks:
        notify_it(session, title=f"Rotate now: {len(tasks)} secret(s) of {account.display_name}",
                  body=f"{person.full_name} lost access to {account.display_name}; every credential they saw or could "
                       f"have seen must change ({mode.replace('_', ' ')} rule).",
                  link="/rotation/", dedupe=f"rotation.exposure:{account.id}:{person.id}:{now:%Y%m%d%H}")
    return tasks


# --- people to tell ------------------------------------------------------------------------------------


def notify_it(session: Session, *, title: str, body: str, link: str, dedupe: str) -> None:
    """Tell IT in govern and by email (once per ``dedupe`` key)."""
    users = active_users_with_roles(session, [CUSTODIAN_ROLE])
    notifications.notify(session, users=users, kind="rotation.needed", title=title, link=link, body=body)
    notifications.email_users(session, users=users, kind="rotation.needed", subject=f"[govern] {title}", body=body,
                              link=link, dedupe_prefix=dedupe)


# --- compromise lockdown ----------------------------------------------------------------------------------


def lock_down(session: Session, *, actor: Any, account: Account, summary: str,
              compromised_since: datetime | None = None) -> Incident:
    """IT marks an account compromised: lock it (only IT may reveal), open an incident and an urgent
    task for every secret, and tell the crisis contact and the business owner."""
    _require_custodian(actor)
    text = _text(summary, "summary", "Say what happened (what was noticed, when, by whom).")
    now = utcnow()
    since = compromised_since or now - timedelta(days=7)
    if since > now:
        raise InvalidError("The compromise cannot start in the future.", {"compromised_since": "Choose a past date."})
    if account.status == "archived":
        raise ConflictError(f"{account.display_name} is archived.")
    if session.scalar(select(Incident.id).where(Incident.account_id == account.id, Incident.status == "open")) is not None:
        raise ConflictError(f"{account.display_name} is locked down already; see its open incident.")
    incident = Incident(account_id=account.id, status="open", summary=text, compromised_since=since,
                        previous_status=account.status, opened_at=now, opened_by_id=actor.id)
    try:
        with session.begin_nested():
            session.add(incident)
            session.flush()
    except IntegrityError:
        raise ConflictError(f"{account.display_name} was locked down by someone else a moment ago.") from None
    account.status = "locked"
    audit.record(session, "rotation.account_locked", actor=actor, target_type="account", target_id=account.id,
                 details={"account_id": account.id, "incident_id": incident.id, "previous_status": incident.previous_status,
                          "compromised_since": since})
    secrets = list(session.scalars(select(Secret).where(Secret.account_id == account.id).order_by(Secret.id)))
    for secret in secrets:
        open_task(session, actor=actor, secret=secret, reason="compromise", due_at=now, urgent=True, incident=incident,
                  note=f"Incident {incident.id}: {account.display_name} compromised.")
    _tell_about_incident(session, incident, len(secrets))
    session.flush()
    return incident


def _tell_about_incident(session: Session, incident: Incident, secrets: int) -> None:
    account = incident.account
    people = [p for p in (account.crisis_contact, account.business_owner) if p is not None]
    title = f"{account.display_name} is locked down: suspected compromise"
    body = (f"IT marked {account.display_name} ({account.platform_label}) compromised and locked it: only IT can reveal "
            f"its credentials until the incident is closed. {secrets} credential(s) are being rotated.\n\n"
            f"What happened: {incident.summary}")
    link = f"/rotation/incidents/{incident.id}"
    users_by_person = {u.person_id: u for u in session.scalars(
        select(User).where(User.person_id.in_([p.id for p in people]), User.is_active.is_(True)))} if people else {}
    for person in {p.id: p for p in people}.values():
        user = users_by_person.get(person.id)
        if user is not None:
            notifications.notify(session, user=user, kind="rotation.incident", title=title, link=link, body=incident.summary)
        lines = [f"Hello {person.full_name},", "", body]
        if user is not None:
            lines += ["", f"Open it in govern: {base_url()}{link}"]
        lines += ["", "-- ", "govern: official social media accounts under control"]
        notifications.queue_email(session, to=person.email, subject=f"[govern] {title}", body_text="\n".join(lines),
                                  kind="rotation.incident", dedupe_key=f"rotation.incident:{incident.id}:{person.id}")
    audit.record(session, "rotation.incident_notified", target_type="incident", target_id=incident.id,
                 details={"account_id": account.id, "people": [p.id for p in people]})


def get_incident(session: Session, incident_id: int) -> Incident:
    """The incident or NotFoundError."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError("No such incident.")
    return incident


def incident_tasks(session: Session, incident: Incident) -> list[RotationTask]:
    """The rotation tasks opened or joined by an incident."""
    return list(session.scalars(select(RotationTask).where(RotationTask.incident_id == incident.id).order_by(RotationTask.id)))


def close_incident(session: Session, *, actor: Any, incident: Incident, note: str) -> Incident:
    """IT closes the incident once every task is done (or cancelled with a reason); the account is unlocked."""
    _require_custodian(actor)
    text = _text(note, "note", "Write what was found and done; it closes the incident.")
    session.refresh(incident, with_for_update={"of": Incident})
    if incident.status != "open":
        raise ConflictError("This incident is closed already.")
    live = [t for t in incident_tasks(session, incident) if t.is_live]
    if live:
        raise ConflictError(f"{len(live)} rotation task(s) of this incident are not done yet.")
    account = incident.account
    incident.status, incident.closed_at, incident.closed_by_id, incident.close_note = "closed", utcnow(), actor.id, text
    account.status = incident.previous_status if incident.previous_status != "locked" else "active"
    audit.record(session, "rotation.incident_closed", actor=actor, target_type="incident", target_id=incident.id,
                 details={"account_id": account.id, "status": account.status, "note": text})
    audit.record(session, "rotation.account_unlocked", actor=actor, target_type="account", target_id=account.id,
                 details={"account_id": account.id, "incident_id": incident.id, "status": account.status})
    session.flush()
    return incident


def timeline(session: Session, incident: Incident, *, limit: int = TIMELINE_LIMIT) -> list[AuditEvent]:
    """Everything recorded on the account since the compromise may have started, oldest first."""
    account_id = incident.account_id
    secret_ids = [str(i) for i in session.scalars(select(Secret.id).where(Secret.account_id == account_id))]
    conditions = [
        (AuditEvent.target_type == "account") & (AuditEvent.target_id == str(account_id)),
        AuditEvent.details_json.like(f'%"account_id":{account_id},%'),
        AuditEvent.details_json.like(f'%"account_id":{account_id}}}%'),
    ]
    if secret_ids:
        conditions.append((AuditEvent.target_type == "secret") & AuditEvent.target_id.in_(secret_ids))
    until = incident.closed_at
    query = select(AuditEvent).where(AuditEvent.occurred_at >= incident.compromised_since, or_(*conditions))
    if until is not None:
        query = query.where(AuditEvent.occurred_at <= until)
    return list(session.scalars(query.order_by(AuditEvent.id).limit(limit)))


def open_incidents(session: Session) -> list[Incident]:
    """Incidents not closed yet, newest first."""
    return list(session.scalars(select(Incident).where(Incident.status == "open").order_by(Incident.id.desc()).limit(100)))


# --- the queue and the dashboard ---------------------------------------------------------------------------


@dataclass
class Queue:
    """One page of live tasks."""

    tasks: list[RotationTask]
    total: int
    page: int
    per_page: int

    @property
    def has_next(self) -> bool:
        """Whether another page follows."""
        return self.page * self.per_page < self.total


def task_queue(session: Session, *, page: int = 1, per_page: int = 25, status: str = "live") -> Queue:
    """Live tasks, urgent first then by due time: two queries (count and page) whatever the page size."""
    statuses = ("open", "staged") if status == "live" else (status,)
    where = RotationTask.status.in_(statuses)
    total = session.scalar(select(func.count()).select_from(RotationTask).where(where)) or 0
    order = (RotationTask.is_urgent.desc(), RotationTask.due_at, RotationTask.id) if status == "live" else (RotationTask.id.desc(),)
    tasks = list(session.scalars(select(RotationTask).where(where).order_by(*order)
                                 .offset((page - 1) * per_page).limit(per_page)).unique())
    return Queue(tasks, total, page, per_page)


def all_schedules(session: Session, *, now: datetime | None = None) -> list[Schedule]:
    """The schedule of every secret of non-archived accounts (for counts and charts)."""
    secrets = list(session.scalars(select(Secret).join(Account, Account.id == Secret.account_id)
                                   .where(Account.status != "archived").order_by(Secret.id)).unique())
    return schedules(session, secrets, now=now)


@dataclass
class PlatformCount:
    """Due and overdue secrets of one platform."""

    platform: str
    label: str
    due: int = 0
    overdue: int = 0
    rotate_now: int = 0
    total: int = 0


def counts_by_platform(rows: Sequence[Schedule]) -> list[PlatformCount]:
    """Due, overdue and rotate-now counts per platform, platforms with any secret only."""
    result: dict[str, PlatformCount] = {}
    for row in rows:
        account = row.secret.account
        entry = result.setdefault(account.platform, PlatformCount(account.platform, account.platform_label))
        entry.total += 1
        if row.state == "due":
            entry.due += 1
        elif row.state == "overdue":
            entry.overdue += 1
        if row.rotate_now:
            entry.rotate_now += 1
    return sorted(result.values(), key=lambda c: (-c.overdue, -c.due, c.label))


@dataclass
class Bucket:
    """One bar of the age chart."""

    label: str
    count: int
    state: str


AGE_BUCKETS = ((0.25, "0-25%"), (0.5, "25-50%"), (0.75, "50-75%"), (1.0, "75-100%"), (1.5, "100-150%"),
               (2.0, "150-200%"), (float("inf"), "200%+"))


def age_distribution(rows: Sequence[Schedule], *, now: datetime | None = None) -> list[Bucket]:
    """How old each current credential is as a share of its interval (secrets with an interval only)."""
    now = now or utcnow()
    counts = [0] * len(AGE_BUCKETS)
    for row in rows:
        if row.since is None or not row.interval_days:
            continue
        ratio = (now - row.since).total_seconds() / (row.interval_days * 86400)
        for index, (limit, _) in enumerate(AGE_BUCKETS):
            if ratio < limit:
                counts[index] += 1
                break
    states = ["fine", "fine", "fine", "due", "overdue", "overdue", "overdue"]
    return [Bucket(label, counts[i], states[i]) for i, (_, label) in enumerate(AGE_BUCKETS)]


@dataclass
class MonthCompliance:
    """Share of credentials within their interval at the end of a month."""

    label: str
    compliant: int
    total: int

    @property
    def percent(self) -> float | None:
        """Compliance in percent, None without credentials."""
        return None if self.total == 0 else round(100.0 * self.compliant / self.total, 1)


def _month_ends(now: datetime, months: int) -> list[datetime]:
    ends: list[datetime] = []
    year, month = now.year, now.month
    for _ in range(months):
        ends.append(now if not ends else datetime(year, month, 1, tzinfo=now.tzinfo) + _one_month(year, month) - timedelta(microseconds=1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(ends))


def _one_month(year: int, month: int) -> timedelta:
    nxt = datetime(year + (month // 12), month % 12 + 1, 1)
    return nxt - datetime(year, month, 1)


def compliance_history(session: Session, rows: Sequence[Schedule], *, now: datetime | None = None,
                       months: int = 12) -> list[MonthCompliance]:
    """For each of the last ``months`` month ends (the last is now): of the credentials that had a
    value then, how many were younger than their (present) interval. One query for all versions."""
    now = now or utcnow()
    intervals = {r.secret.id: r.interval_days for r in rows if r.interval_days}
    spans: dict[int, list[tuple[datetime, datetime | None]]] = {}
    if intervals:
        for secret_id, confirmed, retired in session.execute(
            select(SecretVersion.secret_id, SecretVersion.confirmed_at, SecretVersion.retired_at)
            .where(SecretVersion.secret_id.in_(list(intervals)), SecretVersion.status != "pending",
                   SecretVersion.confirmed_at.is_not(None))
        ):
            assert confirmed is not None  # the query keeps confirmed versions only
            spans.setdefault(secret_id, []).append((confirmed, retired))
    result = []
    for end in _month_ends(now, months):
        compliant = total = 0
        for secret_id, versions in spans.items():
            in_use = [c for c, r in versions if c <= end and (r is None or r > end)]
            if not in_use:
                continue
            total += 1
            if end - max(in_use) < timedelta(days=intervals[secret_id]):
                compliant += 1
        result.append(MonthCompliance(end.strftime("%b %Y") if end is not now else "now", compliant, total))
    return result


# --- jobs ----------------------------------------------------------------------------------------------


def schedule_due(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Open a scheduled task for every due or overdue secret (idempotent: an open task is kept)."""
    now = now or utcnow()
    rows = all_schedules(session, now=now)
    counts = {"opened": 0, "already_open": 0}
    for row in rows:
        if row.state not in ("due", "overdue") or row.due_at is None:
            continue
        if row.task is not None and "scheduled" in row.task.reasons:
            counts["already_open"] += 1
            continue
        why = "token expires" if row.secret.kind == "api_token" and row.secret.token_expires_at and row.due_at.date() == row.secret.token_expires_at else f"{row.interval_days}-day interval"
        opened = open_task(session, actor=None, secret=row.secret, reason="scheduled", due_at=row.due_at,
                           note=f"Version {row.version} in use since {_fmt(row.since)}; {why}, due {_fmt(row.due_at)}.")
        counts["opened" if opened.created else "already_open"] += 1
    return counts


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


def send_reminders(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """Remind the assignee (or IT) of each overdue task once a day; escalate to admins once a week
    when it stays overdue (after a day for urgent tasks)."""
    now = now or utcnow()
    counts = {"reminders": 0, "escalations": 0}
    overdue = list(session.scalars(select(RotationTask).where(RotationTask.status.in_(("open", "staged")),
                                                              RotationTask.due_at <= now).order_by(RotationTask.id)).unique())
    if not overdue:
        return counts
    team = active_users_with_roles(session, [CUSTODIAN_ROLE])
    admins = active_users_with_roles(session, ["admin"])
    week = now.strftime("%G-W%V")
    for task in overdue:
        what = f"{task.secret.label} of {task.secret.account.display_name}"
        late = now - task.due_at
        link = f"/rotation/tasks/{task.id}"
        users = [task.assignee] if task.assignee is not None and task.assignee.is_active else team
        counts["reminders"] += _remind(
            session, users=users, kind="rotation.reminder", title=f"Rotation overdue: {what}",
            body=f"The rotation of {what} ({REASON_LABELS[task.reason].lower()}) was due {_fmt(task.due_at)} "
                 f"and is {task.status}; it is {late.days} day(s) late.",
            link=link, dedupe_prefix=f"rotation.reminder:{task.id}:{now:%Y-%m-%d}")
        if late >= (ESCALATE_URGENT_AFTER if task.is_urgent else ESCALATE_AFTER):
            counts["escalations"] += _remind(
                session, users=admins, kind="rotation.escalation", title=f"Escalation: rotation of {what} is {late.days} days late",
                body=f"The rotation of {what} ({REASON_LABELS[task.reason].lower()}{', urgent' if task.is_urgent else ''}) "
                     f"was due {_fmt(task.due_at)} and is still {task.status}. Please make sure IT takes it.",
                link=link, dedupe_prefix=f"rotation.escalation:{task.id}:{week}")
    return counts


def _remind(session: Session, *, users: Sequence[User], kind: str, title: str, body: str, link: str,
            dedupe_prefix: str) -> int:
    # Each person gets the email and the in-app notification together, and only when the email's
    # dedupe key is new, so a reminder appears once a day in the app too, even with concurrent runs.
    sent = 0
    for user in users:
        if notifications.email_users(session, users=[user], kind=kind, subject=f"[govern] {title}", body=body, link=link,
                                     dedupe_prefix=dedupe_prefix):
            notifications.notify(session, kind=kind, title=title, user=user, link=link, body=body)
            sent += 1
    return sent


def send_digest(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """The weekly digest for IT of due and overdue rotations (once per ISO week)."""
    now = now or utcnow()
    rows = all_schedules(session, now=now)
    counts = counts_by_platform(rows)
    due = sum(c.due for c in counts)
    overdue = sum(c.overdue for c in counts)
    live = session.scalar(select(func.count()).select_from(RotationTask).where(RotationTask.status.in_(("open", "staged")))) or 0
    lines = [f"This week: {overdue} credential(s) overdue, {due} due soon, {live} rotation task(s) open.", ""]
    for c in counts:
        if c.due or c.overdue or c.rotate_now:
            lines.append(f"- {c.label}: {c.overdue} overdue, {c.due} due, {c.rotate_now} to rotate now (of {c.total})")
    worst = sorted((r for r in rows if r.state == "overdue" and r.due_at), key=lambda r: r.due_at or now)[:20]
    if worst:
        lines += ["", "Most overdue:"]
        lines += [f"- {r.secret.label} of {r.secret.account.display_name}: due {_fmt(r.due_at)}" for r in worst]
    queued = notifications.email_users(session, users=active_users_with_roles(session, [CUSTODIAN_ROLE]), kind="rotation.digest",
                                       subject=f"[govern] Weekly rotation digest: {overdue} overdue, {due} due",
                                       body="\n".join(lines), link="/rotation/",
                                       dedupe_prefix=f"rotation.digest:{now:%G-W%V}")
    return {"digests": queued}


# --- misc -------------------------------------------------------------------------------------------------


@dataclass
class TaskView:
    """What the task page shows besides the task."""

    schedule: Schedule
    items: list[ChecklistItem]
    previous: SecretVersion | None
    people: list[dict[str, Any]] = field(default_factory=list)


def task_view(session: Session, task: RotationTask, *, retention_days: int = DEFAULT_RETENTION_DAYS) -> TaskView:
    """The schedule, checklist and rollback candidate of a task's secret."""
    schedule = schedules(session, [task.secret])[0]
    return TaskView(schedule, checklist(task), previous_version(session, task.secret, retention_days=retention_days), task.people)
