"""What groups give: a mapping from a group to an app role or an account role, and the reconciliation that
makes each member's access follow their membership.

Joining a mapped group grants (through the grants area, so every rule holds: the policy gate makes the
grant wait until the person accepted the current policy); leaving revokes with cause ``group`` (and the
exposure rotations any revoke opens); access the person held by hand is never touched. Only active people
get anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account, Role
from govern.audit.services import Actor
from govern.auth.models import APP_ROLES, User, UserRole
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants import services as grants
from govern.grants.models import Grant
from govern.groups.models import DirectoryGroup, GroupEffect, GroupMapping, GroupMember
from govern.notifications.services import notify

#: States whose access the mapping gave (and leaving takes back); the others gave nothing yet.
GIVEN = ("granted", "role_added")


def describe(mapping: GroupMapping) -> str:
    if mapping.app_role:
        return f"the {mapping.app_role} app role"
    account = mapping.account_id
    return f"{mapping.role_code} on account #{account}"


def needs_second_admin(session: Session, *, app_role: str | None, role_code: str | None) -> bool:
    """The admin app role, and account roles that need a second approval or reveal credentials, as grants do."""
    if app_role is not None:
        return app_role == "admin"
    role = session.get(Role, role_code) if role_code else None
    return bool(role and (role.needs_second_approval or role.may_reveal))


def propose(session: Session, *, actor: User, group: DirectoryGroup, app_role: str | None = None,
            account_id: int | None = None, role_code: str | None = None) -> GroupMapping:
    """An admin maps a group; active at once unless it needs a second admin (then the others are told)."""
    if (app_role is None) == (account_id is None or role_code is None):
        raise InvalidError("Map the group to an app role, or to a role on an account.", reasons={"target": "one"})
    if app_role is not None and app_role not in APP_ROLES:
        raise InvalidError(f"Unknown app role {app_role!r}.", reasons={"app_role": "unknown"})
    if account_id is not None and (session.get(Account, account_id) is None or session.get(Role, role_code) is None):
        raise InvalidError("No such account or role.", reasons={"account_id": "unknown"})
    same = select(GroupMapping.id).where(GroupMapping.group_id == group.id)
    if app_role is not None:
        same = same.where(GroupMapping.app_role == app_role)
    else:
        same = same.where(GroupMapping.account_id == account_id, GroupMapping.role_code == role_code)
    if session.scalar(same.limit(1)) is not None:
        raise ConflictError("This group is mapped to that already.")
    second = needs_second_admin(session, app_role=app_role, role_code=role_code)
    mapping = GroupMapping(group_id=group.id, app_role=app_role, account_id=account_id, role_code=role_code,
                           status="pending" if second else "active", proposed_by_id=actor.id,
                           approved_by_id=None if second else actor.id, decided_at=None if second else utcnow())
    session.add(mapping)
    session.flush()
    audit.record(session, "group.mapping_proposed" if second else "group.mapping_created", actor=actor,
                 target_type="group_mapping", target_id=mapping.id,
                 details={"group": group.display_name, "gives": describe(mapping), "second_admin": second})
    if second:
        others = session.scalars(select(User).join(UserRole, UserRole.user_id == User.id).where(
            UserRole.role == "admin", User.is_active.is_(True), User.id != actor.id)).all()
        notify(session, kind="approval", users=others, link="/admin/groups/",
               title=f"{actor.email} asks to give the members of {group.display_name} {describe(mapping)}: "
                     "a second admin approves it")
    else:
        reconcile_group(session, actor=actor, group=group)
    return mapping


def approve(session: Session, *, actor: User, mapping: GroupMapping) -> GroupMapping:
    """A second admin (not who proposed it) lets a sensitive mapping take effect."""
    if mapping.status != "pending":
        raise ConflictError("This mapping is active already.")
    if "admin" not in actor.roles:
        raise ForbiddenError("Only an admin approves a group mapping.")
    if mapping.proposed_by_id == actor.id:
        raise ForbiddenError("A second admin must approve this: you proposed it.")
    mapping.status, mapping.approved_by_id, mapping.decided_at = "active", actor.id, utcnow()
    audit.record(session, "group.mapping_approved", actor=actor, target_type="group_mapping", target_id=mapping.id,
                 details={"group": mapping.group.display_name, "gives": describe(mapping)})
    reconcile_group(session, actor=actor, group=mapping.group)
    return mapping


def remove(session: Session, *, actor: Actor | None, mapping: GroupMapping) -> None:
    """End a mapping: what it gave is taken back (cause ``group``), then it goes."""
    for effect in list(session.scalars(select(GroupEffect).where(GroupEffect.mapping_id == mapping.id))):
        _undo(session, actor=actor, mapping=mapping, effect=effect)
    audit.record(session, "group.mapping_removed", actor=actor, target_type="group_mapping", target_id=mapping.id,
                 details={"group": mapping.group.display_name, "gives": describe(mapping)})
    session.delete(mapping)
    session.flush()


def mappings_of(session: Session, group_ids: Iterable[int] | None = None) -> list[GroupMapping]:
    query = select(GroupMapping).order_by(GroupMapping.group_id, GroupMapping.id)
    if group_ids is not None:
        query = query.where(GroupMapping.group_id.in_(list(group_ids)))
    return list(session.scalars(query))


def get_mapping(session: Session, mapping_id: int) -> GroupMapping:
    mapping = session.get(GroupMapping, mapping_id)
    if mapping is None:
        raise NotFoundError("No such group mapping.")
    return mapping


# --- reconciliation -------------------------------------------------------------------------------


def reconcile_group(session: Session, *, actor: Actor | None, group: DirectoryGroup) -> None:
    people = set(session.scalars(select(GroupMember.person_id).where(GroupMember.group_id == group.id)))
    people |= set(session.scalars(select(GroupEffect.person_id).join(GroupMapping, GroupMapping.id == GroupEffect.mapping_id)
                                  .where(GroupMapping.group_id == group.id)))
    reconcile_people(session, actor=actor, person_ids=people)


def reconcile_people(session: Session, *, actor: Actor | None, person_ids: Iterable[int]) -> None:
    for person_id in sorted(set(person_ids)):
        reconcile_person(session, actor=actor, person_id=person_id)


def reconcile_person(session: Session, *, actor: Actor | None, person_id: int) -> None:
    """Give what the person's groups map to and they lack; take back what a mapping gave and no longer should."""
    person = session.get(Person, person_id)
    if person is None:
        return
    wanted: dict[int, GroupMapping] = {}
    if person.status == "active":
        rows = session.scalars(select(GroupMapping).join(GroupMember, GroupMember.group_id == GroupMapping.group_id)
                               .where(GroupMember.person_id == person_id, GroupMapping.status == "active"))
        wanted = {m.id: m for m in rows}
    effects = {e.mapping_id: e for e in session.scalars(select(GroupEffect).where(GroupEffect.person_id == person_id))}
    for mapping_id, effect in effects.items():
        if mapping_id not in wanted:
            _undo(session, actor=actor, mapping=session.get(GroupMapping, mapping_id), effect=effect)
    for mapping_id, mapping in wanted.items():
        current = effects.get(mapping_id)
        if current is None or current.state in ("waiting_policy", "waiting_login", "blocked"):
            _give(session, actor=actor, mapping=mapping, person=person, effect=current)


def _give(session: Session, *, actor: Actor | None, mapping: GroupMapping, person: Person,
          effect: GroupEffect | None) -> None:
    if effect is None:
        effect = GroupEffect(mapping_id=mapping.id, person_id=person.id, state="blocked")
        session.add(effect)
    before = effect.state
    if mapping.app_role is not None:
        _give_app_role(session, actor=actor, mapping=mapping, person=person, effect=effect)
    else:
        _give_grant(session, actor=actor, mapping=mapping, person=person, effect=effect)
    session.flush()
    if effect.state != before or effect.state in GIVEN:
        details = {"group": mapping.group.display_name, "gives": describe(mapping), "state": effect.state,
                   "note": effect.note}
        if effect.state in GIVEN:
            audit.record(session, "group.access_given", actor=actor, target_type="person", target_id=person.id,
                         details=details)
        elif effect.state == "held_by_hand":
            audit.record(session, "group.access_held", actor=actor, target_type="person", target_id=person.id,
                         details=details)
        else:
            audit.record(session, "group.access_waits", actor=actor, target_type="person", target_id=person.id,
                         details=details)


def _give_app_role(session: Session, *, actor: Actor | None, mapping: GroupMapping, person: Person,
                   effect: GroupEffect) -> None:
    user = session.scalar(select(User).where(User.person_id == person.id))
    if user is None or not user.is_active:
        effect.state, effect.note = "waiting_login", "no govern login yet"
    elif mapping.app_role in {r.role for r in user.role_rows}:
        effect.state, effect.note = "held_by_hand", None
    else:
        user.role_rows.append(UserRole(user_id=user.id, role=mapping.app_role or ""))
        effect.state, effect.note = "role_added", None


def _give_grant(session: Session, *, actor: Actor | None, mapping: GroupMapping, person: Person,
                effect: GroupEffect) -> None:
    held = session.scalar(select(Grant.id).where(Grant.person_id == person.id, Grant.account_id == mapping.account_id,
                                                 Grant.role_code == mapping.role_code,
                                                 Grant.status.in_(("active", "requested"))).limit(1))
    if held is not None:
        effect.state, effect.note = "held_by_hand", None
        return
    try:
        with session.begin_nested():
            grant = grants.grant_for_group(
                session, actor=actor, person_id=person.id, account_id=mapping.account_id or 0,
                role_code=mapping.role_code or "", reason=f"Member of the group {mapping.group.display_name}",
                requested_by_id=mapping.proposed_by_id, approved_by_id=mapping.approved_by_id)
    except grants.PolicyNotAcceptedError as exc:
        effect.state, effect.note = "waiting_policy", exc.message[:300]
    except (ConflictError, InvalidError) as exc:
        effect.state, effect.note = "blocked", exc.message[:300]
    else:
        effect.state, effect.grant_id, effect.note = "granted", grant.id, None


def _undo(session: Session, *, actor: Actor | None, mapping: GroupMapping | None, effect: GroupEffect) -> None:
    if mapping is not None and effect.state == "granted" and effect.grant_id is not None:
        grant = session.get(Grant, effect.grant_id)
        if grant is not None and grant.status == "active":
            # The reason is the word "group", as an offboarding's is "offboarding"; the group is in the audit event.
            grants.revoke_grant(session, actor=actor if isinstance(actor, User) else None, grant=grant, reason="group",
                                override_reason=f"no longer in the group {mapping.group.display_name}", cause="group",
                                check_permission=False, force=True)
    elif mapping is not None and effect.state == "role_added" and mapping.app_role:
        _take_app_role(session, mapping=mapping, person_id=effect.person_id)
    if mapping is not None and effect.state in GIVEN:
        audit.record(session, "group.access_taken", actor=actor, target_type="person", target_id=effect.person_id,
                     details={"group": mapping.group.display_name, "gives": describe(mapping)})
    session.delete(effect)
    session.flush()


def _take_app_role(session: Session, *, mapping: GroupMapping, person_id: int) -> None:
    """Remove the app role, unless another of the person's mappings gave it too."""
    others = session.scalar(select(GroupEffect.id).join(GroupMapping, GroupMapping.id == GroupEffect.mapping_id).where(
        GroupEffect.person_id == person_id, GroupEffect.state == "role_added", GroupMapping.app_role == mapping.app_role,
        GroupMapping.id != mapping.id).limit(1))
    if others is not None:
        return
    user = session.scalar(select(User).where(User.person_id == person_id))
    if user is not None:
        session.execute(delete(UserRole).where(UserRole.user_id == user.id, UserRole.role == mapping.app_role))
        session.expire(user, ["role_rows"])


def on_policy_accepted(_version: Any, *, session: Session, actor: Any, person_id: int, **_: Any) -> None:
    """A grant that waited for the person's acceptance follows now (govern.events.policy_accepted)."""
    waiting = session.scalar(select(GroupEffect.id).where(GroupEffect.person_id == person_id,
                                                          GroupEffect.state == "waiting_policy").limit(1))
    if waiting is not None:
        reconcile_person(session, actor=actor, person_id=person_id)
