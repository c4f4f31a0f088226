"""When a secret must rotate: intervals (by kind, account or the secret's own), each secret's
schedule, and the job that opens a task for what is due."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, select
from sqlalchemy.orm import Session, lazyload

from govern import audit
from govern.accounts.models import Account
from govern.auth.models import User
from govern.db import utcnow
from govern.errors import InvalidError
from govern.rotation.custody import day_text, require_custodian
from govern.rotation.models import RotationInterval, RotationTask
from govern.rotation.tasks import open_task
from govern.vault.models import Secret, SecretVersion

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
    already (``vault.listing.secret_rows``); one query fewer.
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


def _schedule_statements() -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """The interval overrides and the open tasks of the secrets bound as ``secret_ids``."""
    secret_ids: BindParameter[list[int]] = bindparam("secret_ids", expanding=True)
    intervals = select(RotationInterval.secret_id, RotationInterval.interval_days).where(
        RotationInterval.secret_id.in_(secret_ids))
    # The tasks' secrets are the ones given (already in the session), so they are not joined in again.
    tasks = (select(RotationTask).options(lazyload(RotationTask.secret), lazyload(RotationTask.assignee))
             .where(RotationTask.secret_id.in_(secret_ids), RotationTask.status.in_(("open", "staged"))))
    return intervals, tasks


def set_interval(session: Session, *, actor: User, secret: Secret, days: int | None, inherit: bool = False) -> None:
    """IT sets a secret's own interval (``days``; None: never), or returns it to the default (``inherit``)."""
    require_custodian(actor)
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


def all_schedules(session: Session, *, now: datetime | None = None) -> list[Schedule]:
    """The schedule of every secret of non-archived accounts (for counts and charts)."""
    secrets = list(session.scalars(select(Secret).join(Account, Account.id == Secret.account_id)
                                   .where(Account.status != "archived").order_by(Secret.id)).unique())
    return schedules(session, secrets, now=now)


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
                           note=f"Version {row.version} in use since {day_text(row.since)}; {why}, due {day_text(row.due_at)}.")
        counts["opened" if opened.created else "already_open"] += 1
    return counts

