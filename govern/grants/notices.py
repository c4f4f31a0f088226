"""Who hears about a grant: approvers of a request, the requester of a decision, the holder of an
expired grant. In-app notifications and emails, written in the transaction of the grant change."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.auth.models import User, UserRole
from govern.auth.users import active_users_with_roles
from govern.grants.models import Grant
from govern.notifications import services as notifications


def _what(grant: Grant) -> str:
    return f"{grant.role.name} on {grant.account.display_name} for {grant.person.full_name}"


def approvers(session: Session, grant: Grant) -> list[User]:
    """Who should decide a request: the account's owner and the person's manager when they may;
    the app admins only when neither can."""
    from govern.grants.services import may_decide  # noqa: PLC0415 grants.services imports this module to send its notices

    near = {grant.account.business_owner_id, grant.person.manager_id} - {None}
    candidates = list(session.scalars(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .where(User.is_active.is_(True), User.person_id.in_(near), UserRole.role.in_(("manager", "admin")))
        .distinct()
    )) if near else []
    chosen = [u for u in candidates if may_decide(u, grant)]
    if not chosen:
        chosen = [u for u in active_users_with_roles(session, ["admin"])[:50] if may_decide(u, grant)]
    return chosen


def approval_needed(session: Session, grant: Grant) -> None:
    """A request waits for a decision: tell whoever can decide it, in govern and by email."""
    users = approvers(session, grant)
    title = f"Approval needed: {_what(grant)}"
    notifications.notify(session, users=users, kind="grant.approval_needed", title=title, link="/grants/")
    notifications.email_users(
        session, users=users, kind="grant.approval_needed", subject=f"[govern] {title}",
        body=f"{_what(grant)} is waiting for your decision (four-eyes: someone other than the requester must decide).",
        link="/grants/", dedupe_prefix=f"grant.approval_needed:{grant.id}")


def _people_users(session: Session, grant: Grant) -> list[User]:
    ids = {grant.requested_by_id}
    users = list(session.scalars(select(User).where(User.is_active.is_(True), User.id.in_(ids - {None})))) if ids - {None} else []
    holder = session.scalar(select(User).where(User.person_id == grant.person_id, User.is_active.is_(True)))
    if holder is not None and holder.id not in {u.id for u in users}:
        users.append(holder)
    return users


def decided(session: Session, grant: Grant, *, actor_id: int | None) -> None:
    """A request was approved or rejected: tell the requester and the grantee (not the decider)."""
    users = [u for u in _people_users(session, grant) if u.id != actor_id]
    verb = "approved" if grant.status == "active" else "rejected"
    title = f"Request {verb}: {_what(grant)}"
    notifications.notify(session, users=users, kind=f"grant.{verb}", title=title, link="/grants/",
                         body=grant.decision_note if verb == "rejected" else None)
    notifications.email_users(session, users=users, kind=f"grant.{verb}", subject=f"[govern] {title}",
                              body=f"Your request for {_what(grant)} was {verb}.", link="/grants/",
                              dedupe_prefix=f"grant.{verb}:{grant.id}")


def expired(session: Session, grant: Grant) -> None:
    """A time-bound grant ended: tell its holder."""
    holder = session.scalar(select(User).where(User.person_id == grant.person_id, User.is_active.is_(True)))
    if holder is None:
        return
    title = f"Access ended: {grant.role.name} on {grant.account.display_name}"
    notifications.notify(session, user=holder, kind="grant.expired", title=title, link="/grants/")
    notifications.email_users(session, users=[holder], kind="grant.expired", subject=f"[govern] {title}",
                              body=f"Your time-bound {grant.role.name} role on {grant.account.display_name} has ended. "
                                   "Ask for it again in govern if you still need it.",
                              link="/grants/", dedupe_prefix=f"grant.expired:{grant.id}")
