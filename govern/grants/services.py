"""Grant rules: who may grant what to whom, four-eyes approval, limits, expiry and revocation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, not_, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, selectinload

from govern import audit
from govern.accounts.models import Account, Role
from govern.accounts.services import platform_role_label, platform_role_labels
from govern.audit.services import Actor
from govern.auth.models import User
from govern.auth.roles import is_admin
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, get_or_raise
from govern.events import access_lost
from govern.grants import notices
from govern.grants.models import Grant, PlatformRemoval
from govern.policies.models import PolicyVersion
from govern.policies.services import current_version, has_accepted

MAX_REASON = 2000


class PolicyNotAcceptedError(ConflictError):
    """The grantee has not accepted the current policy of the role's tier (the grant form offers to send it)."""

    def __init__(self, message: str, *, person: Person, version: PolicyVersion) -> None:
        super().__init__(message)
        self.person = person
        self.version = version


# --- who may act --------------------------------------------------------------------------------


def may_manage(user: User, account: Account, person: Person) -> bool:
    """Managers grant and revoke on the accounts they own and for their reports; admins anywhere."""
    if is_admin(user):
        return True
    if "manager" not in user.roles:
        return False
    return account.business_owner_id == user.person_id or person.manager_id == user.person_id


def may_manage_account(user: User, account: Account) -> bool:
    """Whether ``user`` may grant and revoke on ``account`` for anyone (admin, or its owner as manager)."""
    return is_admin(user) or ("manager" in user.roles and account.business_owner_id == user.person_id)


def consenting_owner_id(account: Account, person: Person, role: Role) -> int | None:
    """The person whose consent a grant of ``role`` to ``person`` on ``account`` needs: the
    account's business owner when the role reveals the shared credentials, the owner is active and
    is not the grantee; None when no owner's consent applies (then the usual deciders decide)."""
    owner = account.business_owner
    if not role.may_reveal or owner is None or owner.status != "active" or owner.id == person.id:
        return None
    return owner.id


def awaits_owner(grant: Grant) -> bool:
    """True when a requested revealing grant still waits for its account owner's approval: someone
    other than the owner asked for it."""
    owner_id = consenting_owner_id(grant.account, grant.person, grant.role)
    requester = grant.requested_by
    return owner_id is not None and (requester is None or requester.person_id != owner_id)


def may_decide(user: User, grant: Grant) -> bool:
    """Requests are decided by an admin, the account's owner, or the grantee's manager; never by
    the grantee or by whoever asked for it (four-eyes). A revealing role on an account whose owner
    did not ask for it is decided by that owner alone: they answer for who knows its credentials."""
    if user.person_id == grant.person_id or user.id == grant.requested_by_id:
        return False
    if awaits_owner(grant):
        return grant.account.business_owner_id == user.person_id
    if is_admin(user):
        return True
    return grant.account.business_owner_id == user.person_id or grant.person.manager_id == user.person_id


def decision_queue(session: Session, user: User, *, limit: int = 500) -> tuple[list[Grant], int]:
    """Requests ``user`` may decide (``may_decide`` in SQL), oldest first, and how many there are."""
    if not (is_admin(user) or "manager" in user.roles):
        return [], 0
    owner, grantee, requester = aliased(Person), aliased(Person), aliased(User)
    # awaits_owner in SQL; never NULL, so its negation below keeps the rows it should.
    awaiting = and_(Role.may_reveal, owner.id.is_not(None), owner.status == "active", owner.id != Grant.person_id,
                    or_(Grant.requested_by_id.is_(None), requester.person_id.is_(None), requester.person_id != owner.id))
    usual = true() if is_admin(user) else or_(Account.business_owner_id == user.person_id,
                                              grantee.manager_id == user.person_id)
    query = (select(Grant, func.count().over())
             .join(Account, Account.id == Grant.account_id)
             .join(Role, Role.code == Grant.role_code)
             .join(grantee, grantee.id == Grant.person_id)
             .outerjoin(owner, owner.id == Account.business_owner_id)
             .outerjoin(requester, requester.id == Grant.requested_by_id)
             .where(Grant.status == "requested", Grant.person_id != user.person_id,
                    or_(Grant.requested_by_id.is_(None), Grant.requested_by_id != user.id),
                    or_(and_(awaiting, owner.id == user.person_id), and_(not_(awaiting), usual)))
             .options(selectinload(Grant.requested_by)))  # may_decide and awaits_owner read who asked
    rows = list(session.execute(query.order_by(Grant.requested_at, Grant.id).limit(limit)).unique())
    return [row[0] for row in rows], (rows[0][1] if rows else 0)


# --- rules ---------------------------------------------------------------------------------------


def _reason(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidError("Say why this access is needed.", {"reason": "Say why this access is needed."})
    if len(text) > MAX_REASON:
        raise InvalidError(f"Keep the reason under {MAX_REASON} characters.", {"reason": "Too long."})
    return text


def _check_rules(session: Session, *, person: Person, account: Account, role: Role, starts_at: datetime,
                 expires_at: datetime | None, exclude_grant_id: int | None = None) -> None:
    """Every rule a new or approved grant must meet, each with its own message."""
    if person.status != "active":
        raise ConflictError(f"{person.full_name} is {person.status}; no new access can be granted.")
    if account.status != "active":
        raise ConflictError(f"{account.display_name} is {account.status}; no new access can be granted.")
    if expires_at is not None and (expires_at <= utcnow() or expires_at <= starts_at):
        raise InvalidError("The end date must be in the future and after the start.", {"expires_at": "Choose a later date."})
    live = select(Grant.id).where(
        Grant.person_id == person.id, Grant.account_id == account.id, Grant.role_code == role.code,
        Grant.status.in_(("requested", "active")),
    )
    if exclude_grant_id is not None:
        live = live.where(Grant.id != exclude_grant_id)
    if session.scalar(live.limit(1)) is not None:
        raise ConflictError(f"{person.full_name} already holds or has requested {role.name} on {account.display_name}.")
    if role.may_reveal:
        holders = session.scalar(
            select(func.count(func.distinct(Grant.person_id)))
            .join(Role, Role.code == Grant.role_code)
            .where(Grant.account_id == account.id, Grant.status == "active", Role.may_reveal.is_(True), Grant.person_id != person.id)
        ) or 0
        if holders >= account.max_credential_holders:
            raise ConflictError(
                f"{account.display_name} already has {holders} credential holders, its maximum; "
                "revoke one first or raise the account's limit."
            )
        check_policy_accepted(session, person, role)


def check_policy_accepted(session: Session, person: Person, role: Role) -> None:
    """The policy gate: the grantee of a revealing role accepted the current policy of its tier."""
    if not role.may_reveal:
        return
    version = current_version(session, role.policy_tier)
    if version is None:
        raise ConflictError(f"No {role.policy_tier} social media policy is published yet; an admin must publish one before {role.name} can be granted.")
    if not has_accepted(session, person.id, version):
        raise PolicyNotAcceptedError(
            f"{person.full_name} must first accept the current {role.policy_tier} policy (version {version.version}).",
            person=person, version=version)


def _load(session: Session, person_id: int, account_id: int, role_code: str) -> tuple[Person, Account, Role]:
    person, account, role = session.get(Person, person_id), session.get(Account, account_id), session.get(Role, role_code)
    if person is None or account is None or role is None:
        raise NotFoundError("No such person, account or role.")
    return person, account, role


def grant_role(
    session: Session, *, actor: User, person_id: int, account_id: int, role_code: str, reason: str,
    starts_at: datetime | None = None, expires_at: datetime | None = None,
) -> Grant:
    """A manager or admin grants a role. Owner and admin roles wait for a second person's approval;
    a role that reveals the credentials waits for the account owner's, unless the owner grants it."""
    person, account, role = _load(session, person_id, account_id, role_code)
    if not may_manage(actor, account, person):
        raise ForbiddenError("You may grant roles only on accounts you own or to people who report to you.")
    reason = _reason(reason)
    starts_at = starts_at or utcnow()
    _check_rules(session, person=person, account=account, role=role, starts_at=starts_at, expires_at=expires_at)
    owner_id = consenting_owner_id(account, person, role)
    needs_owner = owner_id is not None and owner_id != actor.person_id
    needs_second = role.needs_second_approval or needs_owner
    grant = Grant(
        person_id=person.id, account_id=account.id, role_code=role.code, reason=reason,
        status="requested" if needs_second else "active", requested_by_id=actor.id,
        approved_by_id=None if needs_second else actor.id, decided_at=None if needs_second else utcnow(),
        starts_at=starts_at, expires_at=expires_at,
    )
    _insert(session, grant)
    audit.record(session, "grant.requested" if needs_second else "grant.created", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, person, account, role)
                 | {"four_eyes": role.needs_second_approval, "owner_approval": needs_owner})
    if needs_second:
        notices.approval_needed(session, grant)
    return grant


def grant_for_group(session: Session, *, actor: Actor | None, person_id: int, account_id: int, role_code: str,
                    reason: str, requested_by_id: int | None, approved_by_id: int | None) -> Grant:
    """A grant that follows a group mapping (govern.groups): active at once, the mapping being its approval (a
    second admin approved a mapping whose role asks for one); every other rule of a new grant holds, the policy
    gate included (PolicyNotAcceptedError: the group's grant waits until the person accepts)."""
    person, account, role = _load(session, person_id, account_id, role_code)
    reason = _reason(reason)
    now = utcnow()
    _check_rules(session, person=person, account=account, role=role, starts_at=now, expires_at=None)
    grant = Grant(person_id=person.id, account_id=account.id, role_code=role.code, reason=reason, status="active",
                  requested_by_id=requested_by_id, approved_by_id=approved_by_id, decided_at=now, starts_at=now)
    _insert(session, grant)
    audit.record(session, "grant.created", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, person, account, role) | {"cause": "group"})
    return grant


def request_role(session: Session, *, actor: User, account_id: int, role_code: str, reason: str,
                 expires_at: datetime | None = None) -> Grant:
    """Staff ask for a role for themselves; the account owner or their manager decides."""
    person, account, role = _load(session, actor.person_id, account_id, role_code)
    reason = _reason(reason)
    starts_at = utcnow()
    if person.status != "active":
        raise ConflictError("Only active staff can request access.")
    if account.status != "active":
        raise ConflictError(f"{account.display_name} is {account.status}; it takes no requests.")
    if expires_at is not None and expires_at <= starts_at:
        raise InvalidError("The end date must be in the future.", {"expires_at": "Choose a later date."})
    grant = Grant(person_id=person.id, account_id=account.id, role_code=role.code, reason=reason, status="requested",
                  requested_by_id=actor.id, starts_at=starts_at, expires_at=expires_at)
    _insert(session, grant)
    audit.record(session, "grant.requested", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, person, account, role) | {"self_request": True})
    notices.approval_needed(session, grant)
    return grant


def _insert(session: Session, grant: Grant) -> None:
    session.add(grant)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError("That person already holds or has requested this role on this account.") from None


def approve_grant(session: Session, *, actor: User, grant: Grant, note: str = "") -> Grant:
    """A second, different person approves a request; every rule is checked again."""
    if grant.status != "requested":
        raise ConflictError(f"This request is {grant.status} already.")
    if grant.requested_by_id == actor.id:
        raise ForbiddenError("A second person must approve this: you asked for it.")
    if not may_decide(actor, grant):
        if awaits_owner(grant) and actor.person_id != grant.person_id:
            owner = grant.account.business_owner
            assert owner is not None
            raise ForbiddenError(f"{owner.full_name}, the business owner of {grant.account.display_name}, "
                                 f"approves who may reveal its credentials.")
        raise ForbiddenError("You may not decide this request.")
    _check_rules(session, person=grant.person, account=grant.account, role=grant.role,
                 starts_at=grant.starts_at, expires_at=grant.expires_at, exclude_grant_id=grant.id)
    as_owner = awaits_owner(grant)
    grant.status = "active"
    grant.approved_by_id = actor.id
    grant.decided_at = utcnow()
    grant.decision_note = note.strip()[:MAX_REASON] or None
    if grant.starts_at < grant.decided_at:
        grant.starts_at = grant.decided_at
    session.flush()
    audit.record(session, "grant.approved", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, grant.person, grant.account, grant.role) | {"owner_approval": as_owner})
    notices.decided(session, grant, actor_id=actor.id)
    return grant


def reject_grant(session: Session, *, actor: User, grant: Grant, note: str) -> Grant:
    """Turn down a request, with a reason."""
    if grant.status != "requested":
        raise ConflictError(f"This request is {grant.status} already.")
    if not may_decide(actor, grant) and grant.requested_by_id != actor.id:
        raise ForbiddenError("You may not decide this request.")
    note = _reason(note)  # validate before changing anything
    grant.status = "rejected"
    grant.decided_at = utcnow()
    grant.approved_by_id = None
    grant.decision_note = note
    session.flush()
    audit.record(session, "grant.rejected", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, grant.person, grant.account, grant.role))
    notices.decided(session, grant, actor_id=actor.id)
    return grant


def _other_admins(session: Session, grant: Grant) -> int:
    return session.scalar(
        select(func.count()).select_from(Grant).join(Role, Role.code == Grant.role_code)
        .where(Grant.account_id == grant.account_id, Grant.status == "active", Role.is_admin_role.is_(True), Grant.id != grant.id)
    ) or 0


def revoke_grant(session: Session, *, actor: User | None, grant: Grant, reason: str, override_reason: str = "",
                 cause: str = "manual", check_permission: bool = True, force: bool = False) -> PlatformRemoval:
    """End an active grant and open the "remove from the platform's role list" confirmation.

    Revoking the account's last admin is refused unless an app admin overrides it with a reason,
    or the caller forces it with a reason (offboarding: the leaver's access must end regardless).
    """
    if grant.status != "active":
        raise ConflictError(f"This grant is {grant.status}, not active.")
    # No actor (the system) passes only with check_permission=False: it has no roles to check.
    if check_permission and (actor is None or not may_manage(actor, grant.account, grant.person)):
        raise ForbiddenError("You may revoke roles only on accounts you own or of people who report to you.")
    reason = _reason(reason)
    overridden = False
    if grant.role.is_admin_role and grant.account.status != "archived" and _other_admins(session, grant) == 0:
        if not ((force or (actor is not None and is_admin(actor))) and override_reason.strip()):
            raise ConflictError(
                f"{grant.person.full_name} is the last admin of {grant.account.display_name}. Grant another admin first, "
                "or, as an app admin, override with a reason."
            )
        overridden = True
    grant.status = "revoked"
    grant.ended_at = utcnow()
    grant.revoked_by_id = actor.id if actor is not None else None
    grant.revoke_reason = reason
    removal = _open_removal(session, grant)
    audit.record(session, "grant.revoked", actor=actor, target_type="grant", target_id=grant.id,
                 details=_describe(grant, grant.person, grant.account, grant.role)
                 | {"cause": cause, "last_admin_override": overridden, "override_reason": override_reason.strip() or None})
    access_lost.send(grant, session=session, actor=actor, person=grant.person, account=grant.account,
                     reason="offboarding" if cause == "offboarding" else "exposure")
    return removal


def revoke_grants_of_leaver(session: Session, *, actor: Actor | None, grants: Sequence[Grant], reason: str, cause: str,
                            override_reason: str) -> int:
    """Revoke many active grants of one person at once (offboarding), forced like ``revoke_grant(force=True)``;
    returns how many.

    The same rows and audit events as revoking them one by one, in a fixed number of statements:
    the other-admin counts are read once and kept up to date as each grant ends. Rotation of what
    the person could see is the caller's job (it opens every task of the leaver in one go), so no
    govern.events.access_lost is sent.
    """
    reason = _reason(reason)
    override = override_reason.strip()
    if not override:
        raise InvalidError("Say why the last admins may be revoked.")
    grants = [g for g in grants if g.status == "active"]
    if not grants:
        return 0
    accounts = sorted({g.account_id for g in grants})
    admins = dict(session.execute(
        select(Grant.account_id, func.count()).join(Role, Role.code == Grant.role_code)
        .where(Grant.account_id.in_(accounts), Grant.status == "active", Role.is_admin_role.is_(True))
        .group_by(Grant.account_id)
    ).all())
    labels = platform_role_labels(session, [(g.account, g.role_code) for g in grants])
    now = utcnow()
    removals: list[dict[str, Any]] = []
    entries: list[audit.Entry] = []
    for grant in grants:
        overridden = False
        if grant.role.is_admin_role:
            admins[grant.account_id] = admins.get(grant.account_id, 1) - 1  # this grant stops counting
            overridden = grant.account.status != "archived" and admins[grant.account_id] == 0
        grant.status = "revoked"
        grant.ended_at = now
        grant.revoked_by_id = actor.id if actor is not None else None
        grant.revoke_reason = reason
        removals.append({"grant_id": grant.id, "account_id": grant.account_id, "person_id": grant.person_id,
                         "platform_role": labels[(grant.account_id, grant.role_code)]})
        entries.append(audit.Entry("grant.revoked", actor=actor, target_type="grant", target_id=grant.id,
                                   details=_describe(grant, grant.person, grant.account, grant.role)
                                   | {"cause": cause, "last_admin_override": overridden,
                                      "override_reason": override}))
    session.flush()
    session.execute(insert(PlatformRemoval), removals)  # one executemany; the checklist reads them back
    audit.record_many(session, entries)
    return len(removals)


def _open_removal(session: Session, grant: Grant) -> PlatformRemoval:
    removal = PlatformRemoval(grant_id=grant.id, account_id=grant.account_id, person_id=grant.person_id,
                              platform_role=platform_role_label(session, grant.account, grant.role_code))
    session.add(removal)
    session.flush()
    return removal


def expire_grants(session: Session, *, now: datetime | None = None) -> dict[str, int]:
    """End time-bound grants whose end has come (the jobs runner calls this; so does the CLI).

    An expiring last admin stays active, and the refusal is audited, so no account is orphaned.
    """
    now = now or utcnow()
    result = {"expired": 0, "kept_last_admin": 0, "requests_lapsed": 0}
    due = session.scalars(
        select(Grant).where(Grant.status.in_(("active", "requested")), Grant.expires_at.is_not(None), Grant.expires_at <= now)
        # OF grants: the joined person, account and role are the nullable side of outer joins,
        # which PostgreSQL refuses to lock (and they need no lock).
        .order_by(Grant.id).with_for_update(skip_locked=True, of=Grant)
    ).all()
    for grant in due:
        if grant.status == "requested":
            grant.status = "rejected"
            grant.decided_at = now
            grant.decision_note = "The requested period ended before anyone decided."
            audit.record(session, "grant.request_lapsed", target_type="grant", target_id=grant.id,
                         details=_describe(grant, grant.person, grant.account, grant.role))
            result["requests_lapsed"] += 1
            continue
        if grant.role.is_admin_role and grant.account.status != "archived" and _other_admins(session, grant) == 0:
            audit.record(session, "grant.expiry_refused_last_admin", target_type="grant", target_id=grant.id, outcome="denied",
                         details=_describe(grant, grant.person, grant.account, grant.role))
            result["kept_last_admin"] += 1
            continue
        grant.status = "expired"
        grant.ended_at = now
        _open_removal(session, grant)
        audit.record(session, "grant.expired", target_type="grant", target_id=grant.id,
                     details=_describe(grant, grant.person, grant.account, grant.role))
        access_lost.send(grant, session=session, actor=None, person=grant.person, account=grant.account,
                         reason="exposure")
        notices.expired(session, grant)
        result["expired"] += 1
    session.flush()
    return result


def confirm_removal(session: Session, *, actor: User, removal: PlatformRemoval, note: str) -> PlatformRemoval:
    """A human confirms they removed the person from the platform's own role list."""
    if removal.confirmed_at is not None:
        raise ConflictError("This removal was confirmed already.")
    account = session.get(Account, removal.account_id)
    assert account is not None
    if not (is_admin(actor) or "it" in actor.roles or account.business_owner_id == actor.person_id):
        raise ForbiddenError("Only IT, an admin or the account's owner can confirm removals.")
    removal.confirmed_at = utcnow()
    removal.confirmed_by_id = actor.id
    removal.note = note.strip()[:MAX_REASON] or None
    session.flush()
    audit.record(session, "grant.platform_removal_confirmed", actor=actor, target_type="grant", target_id=removal.grant_id,
                 details={"account_id": removal.account_id, "person_id": removal.person_id, "platform_role": removal.platform_role})
    return removal


def confirm_removal_by_connector(session: Session, *, removal: PlatformRemoval, note: str) -> PlatformRemoval:
    """A platform connector removed the person on the platform and a sync confirmed it (no person acted)."""
    if removal.confirmed_at is not None:
        raise ConflictError("This removal was confirmed already.")
    removal.confirmed_at = utcnow()
    removal.confirmed_by_id = None
    removal.note = note.strip()[:MAX_REASON] or None
    session.flush()
    audit.record(session, "grant.platform_removal_confirmed", target_type="grant", target_id=removal.grant_id,
                 details={"account_id": removal.account_id, "person_id": removal.person_id,
                          "platform_role": removal.platform_role, "via": "connector"})
    return removal


def get_grant(session: Session, grant_id: int) -> Grant:
    """Return the grant or raise NotFoundError."""
    return get_or_raise(session, Grant, grant_id, "No such grant.")


def _describe(grant: Grant, person: Person, account: Account, role: Role) -> dict[str, Any]:
    return {
        "person_id": person.id, "account_id": account.id, "role": role.code, "status": grant.status,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
    }
