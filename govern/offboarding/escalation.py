"""Overdue checklist items: remind the owner, then escalate to the next in line."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.config import base_url
from govern.db import utcnow
from govern.notifications import services as notifications
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.settings import OWNER_LABELS, Settings


def escalate_overdue(session: Session, *, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Items past due escalate to their owner(s) and HR: an email through the outbox and an in-app
    notification, once per item per escalation period (the outbox's dedupe keys make re-runs no-ops).
    """
    now = now or utcnow()
    period = timedelta(hours=settings.escalation_hours)
    rows = session.execute(
        select(OffboardingItem, Offboarding).join(Offboarding, Offboarding.id == OffboardingItem.offboarding_id)
        .where(Offboarding.status == "in_progress", OffboardingItem.status == "open",
               OffboardingItem.due_at.is_not(None), OffboardingItem.due_at < now)
        .order_by(OffboardingItem.offboarding_id, OffboardingItem.sort_order, OffboardingItem.id)
    ).unique().all()
    counts = {"overdue_items": len(rows), "emails": 0, "notifications": 0}
    if not rows:
        return counts
    by_role = {role: active_users_with_roles(session, [role]) for role in ("it", "hr", "admin")}
    manager_ids = {item.owner_person_id for item, _ in rows if item.owner == "manager" and item.owner_person_id}
    managers: dict[int, User] = {u.person_id: u for u in session.scalars(
        select(User).where(User.person_id.in_(manager_ids), User.is_active.is_(True)))} if manager_ids else {}
    escalated: dict[int, list[int]] = {}
    for item, offboarding in rows:
        assert item.due_at is not None
        step = int((now - item.due_at) / period)
        if item.owner == "manager":
            owners = [managers[item.owner_person_id]] if item.owner_person_id in managers else []
        elif item.kind == "token_revoke":
            owners = by_role["admin"]  # only admins revoke SCIM tokens
        else:
            owners = by_role[item.owner]
        recipients = {u.id: u for u in [*owners, *by_role["hr"]]}
        if not recipients:
            recipients = {u.id: u for u in by_role["admin"]}
        late = now - item.due_at
        hours = int(late.total_seconds() // 3600)
        title = f"Overdue offboarding item: {offboarding.person.full_name}"
        link = f"/offboarding/{offboarding.id}#item-{item.id}"
        body = (f"{item.title}\n\nOwner: {OWNER_LABELS[item.owner]}. Due {item.due_at:%Y-%m-%d %H:%M} UTC, "
                f"{hours} hour(s) ago. Offboarding #{offboarding.id} of {offboarding.person.full_name} cannot complete "
                "until it is done.")
        for user in recipients.values():
            lines = [f"Hello {user.person.full_name},", "", body, "", f"Open it in govern: {base_url()}{link}",
                     "", "-- ", "govern: official social media accounts under control"]
            queued = notifications.queue_email(
                session, to=user.email, subject=f"[govern] {title}", body_text="\n".join(lines),
                kind="offboarding.escalation", dedupe_key=f"offboarding.escalate:{item.id}:{step}:{user.id}")
            if queued is None:
                continue  # this period's escalation went out already
            counts["emails"] += 1
            escalated.setdefault(offboarding.id, [])
            if item.id not in escalated[offboarding.id]:
                escalated[offboarding.id].append(item.id)
            notifications.notify(session, user=user, kind="offboarding.escalation", title=title, link=link, body=item.title)
            counts["notifications"] += 1
    for offboarding_id, item_ids in escalated.items():
        audit.record(session, "offboarding.escalated", target_type="offboarding", target_id=offboarding_id,
                     details={"items": item_ids, "period_hours": settings.escalation_hours})
    session.flush()
    return counts
