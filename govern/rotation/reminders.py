"""What rotation tells people: IT that a rotation is needed now, reminders and escalations of
overdue tasks, and IT's weekly digest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.db import utcnow
from govern.notifications import services as notifications
from govern.rotation.custody import CUSTODIAN_ROLE, day_text
from govern.rotation.dashboard import counts_by_platform
from govern.rotation.models import REASON_LABELS, RotationTask
from govern.rotation.schedules import all_schedules

#: Overdue tasks escalate to admins after this long (urgent ones after a day).
ESCALATE_AFTER = timedelta(days=7)
ESCALATE_URGENT_AFTER = timedelta(days=1)


def notify_it(session: Session, *, title: str, body: str, link: str, dedupe: str) -> None:
    """Tell IT in govern and by email (once per ``dedupe`` key)."""
    users = active_users_with_roles(session, [CUSTODIAN_ROLE])
    notifications.notify(session, users=users, kind="rotation.needed", title=title, link=link, body=body)
    notifications.email_users(session, users=users, kind="rotation.needed", subject=f"[govern] {title}", body=body,
                              link=link, dedupe_prefix=dedupe)


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
        reminded = _remind(
            session, users=users, kind="rotation.reminder", title=f"Rotation overdue: {what}",
            body=f"The rotation of {what} ({REASON_LABELS[task.reason].lower()}) was due {day_text(task.due_at)} "
                 f"and is {task.status}; it is {late.days} day(s) late.",
            link=link, dedupe_prefix=f"rotation.reminder:{task.id}:{now:%Y-%m-%d}")
        if reminded:  # once a day per task: what a webhook subscribed to overdue rotations hears
            audit.record(session, "rotation.overdue_reminded", target_type="rotation_task", target_id=task.id,
                         details={"days_late": late.days, "people": reminded})
        counts["reminders"] += reminded
        if late >= (ESCALATE_URGENT_AFTER if task.is_urgent else ESCALATE_AFTER):
            counts["escalations"] += _remind(
                session, users=admins, kind="rotation.escalation", title=f"Escalation: rotation of {what} is {late.days} days late",
                body=f"The rotation of {what} ({REASON_LABELS[task.reason].lower()}{', urgent' if task.is_urgent else ''}) "
                     f"was due {day_text(task.due_at)} and is still {task.status}. Please make sure IT takes it.",
                link=link, dedupe_prefix=f"rotation.escalation:{task.id}:{week}")
    return counts


def _remind(session: Session, *, users: Sequence[User], kind: str, title: str, body: str, link: str,
            dedupe_prefix: str) -> int:
    # Each person gets the email and the in-app notification together, and only when the email's
    # dedupe key is new, so a reminder appears once a day in the app too, even with concurrent runs.
    # Someone who routes these to their chat or keeps them in the app gets no email: for them the
    # notification of the same title since the day began is what says "already reminded".
    sent = 0
    channels = notifications.channels_of(session, [user.id for user in users], kind)
    for user in users:
        if channels.get(user.id, "email") == "email":
            if notifications.email_users(session, users=[user], kind=kind, subject=f"[govern] {title}", body=body,
                                         link=link, dedupe_prefix=dedupe_prefix):
                notifications.notify(session, kind=kind, title=title, user=user, link=link, body=body)
                sent += 1
        elif not notifications.notified_since(session, user_id=user.id, kind=kind, title=title,
                                              since=utcnow().replace(hour=0, minute=0, second=0, microsecond=0)):
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
        lines += [f"- {r.secret.label} of {r.secret.account.display_name}: due {day_text(r.due_at)}" for r in worst]
    queued = notifications.email_users(session, users=active_users_with_roles(session, [CUSTODIAN_ROLE]), kind="rotation.digest",
                                       subject=f"[govern] Weekly rotation digest: {overdue} overdue, {due} due",
                                       body="\n".join(lines), link="/rotation/",
                                       dedupe_prefix=f"rotation.digest:{now:%G-W%V}")
    return {"digests": queued}

