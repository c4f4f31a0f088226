"""What IT's rotation pages read: the task queue, counts per platform, the charts' figures, and
what a task page shows besides the task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.db import utcnow
from govern.paging import Page, read_page
from govern.rotation.checklist import ChecklistItem, checklist
from govern.rotation.models import RotationTask
from govern.rotation.schedules import Schedule, schedules
from govern.rotation.versions import DEFAULT_RETENTION_DAYS, previous_version
from govern.vault.models import SecretVersion


def task_queue(session: Session, *, page: int = 1, per_page: int = 25, status: str = "live") -> Page[RotationTask]:
    """Live tasks, urgent first then by due time: two queries (count and page) whatever the page size."""
    statuses = ("open", "staged") if status == "live" else (status,)
    where = RotationTask.status.in_(statuses)
    order = (RotationTask.is_urgent.desc(), RotationTask.due_at, RotationTask.id) if status == "live" else (RotationTask.id.desc(),)
    return read_page(session, select(RotationTask).where(where).order_by(*order), page, per_page,
                     count=select(func.count()).select_from(RotationTask).where(where), scalars=True, unique=True)


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
