"""Groups and their members, as the identity provider says: each source (SCIM, an SSO provider's groups
claim) adds and removes only its own membership rows, and every change is audited with who made it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.groups import mappings
from govern.groups.models import SCIM_SOURCE, DirectoryGroup, GroupMapping, GroupMember

MAX_NAME = 255
MAX_MEMBERS_PER_CALL = 10_000


def sso_source(provider_slug: str) -> str:
    return f"sso:{provider_slug}"[:60]


@dataclass(frozen=True)
class MemberChange:
    """What one call changed in a group's members (person ids)."""

    added: tuple[int, ...]
    removed: tuple[int, ...]


def get_group(session: Session, group_id: int) -> DirectoryGroup:
    group = session.get(DirectoryGroup, group_id)
    if group is None:
        raise NotFoundError("No such group.")
    return group


def list_groups(session: Session, *, display_name: str | None = None, external_id: str | None = None,
                group_id: int | None = None, start_index: int = 1, count: int = 100) -> tuple[list[DirectoryGroup], int]:
    """Groups in id order, filtered by an exact display name, external id or id; and how many match."""
    query = select(DirectoryGroup)
    if display_name is not None:
        query = query.where(func.lower(DirectoryGroup.display_name) == display_name.strip().lower())
    if external_id is not None:
        query = query.where(DirectoryGroup.external_id == external_id)
    if group_id is not None:
        query = query.where(DirectoryGroup.id == group_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(DirectoryGroup.id).limit(max(0, count)).offset(max(start_index, 1) - 1))) \
        if count > 0 else []
    return rows, total


def _name(display_name: str) -> str:
    name = " ".join((display_name or "").split())
    if not name:
        raise InvalidError("A group needs a displayName.", reasons={"displayName": "required"})
    if len(name) > MAX_NAME:
        raise InvalidError(f"A group's displayName has at most {MAX_NAME} characters.", reasons={"displayName": "too long"})
    return name


def _unique(session: Session, name: str, *, except_id: int | None = None) -> None:
    clash = select(DirectoryGroup.id).where(func.lower(DirectoryGroup.display_name) == name.lower())
    if except_id is not None:
        clash = clash.where(DirectoryGroup.id != except_id)
    if session.scalar(clash.limit(1)) is not None:
        raise ConflictError(f"A group named {name!r} exists already.")


def _people(session: Session, person_ids: Iterable[int]) -> list[int]:
    """The given ids, each an existing person (else InvalidError naming the first unknown one)."""
    wanted = sorted(set(person_ids))
    if len(wanted) > MAX_MEMBERS_PER_CALL:
        raise InvalidError(f"At most {MAX_MEMBERS_PER_CALL} members in one request.", reasons={"members": "too many"})
    found = set(session.scalars(select(Person.id).where(Person.id.in_(wanted)))) if wanted else set()
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InvalidError(f"No user with id {missing[0]}: members must be users provisioned to govern.",
                           reasons={"members": "unknown"})
    return wanted


def create_group(session: Session, *, actor: Actor | None, display_name: str, external_id: str | None,
                 member_ids: Sequence[int] = (), source: str = SCIM_SOURCE,
                 displays: Mapping[int, str] | None = None) -> DirectoryGroup:
    name = _name(display_name)
    _unique(session, name)
    members = _people(session, member_ids)
    group = DirectoryGroup(display_name=name, external_id=(external_id or None) and external_id[:MAX_NAME])
    session.add(group)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError(f"A group named {name!r} exists already.") from None
    audit.record(session, "group.created", actor=actor, target_type="group", target_id=group.id,
                 details={"display_name": name, "external_id": group.external_id, "source": source})
    if members:
        set_members(session, actor=actor, group=group, person_ids=members, source=source, displays=displays)
    return group


def rename_group(session: Session, *, actor: Actor | None, group: DirectoryGroup, display_name: str | None = None,
                 external_id: str | None = None) -> None:
    """A new display name and/or external id (unchanged when None)."""
    changes: dict[str, object] = {}
    if display_name is not None:
        name = _name(display_name)
        if name != group.display_name:
            _unique(session, name, except_id=group.id)
            changes["display_name"] = {"from": group.display_name, "to": name}
            group.display_name = name
    if external_id is not None and (external_id or None) != group.external_id:
        changes["external_id"] = {"from": group.external_id, "to": external_id or None}
        group.external_id = (external_id or None) and external_id[:MAX_NAME]
    if changes:
        group.updated_at = utcnow()
        audit.record(session, "group.updated", actor=actor, target_type="group", target_id=group.id, details=changes)


def member_ids(session: Session, group: DirectoryGroup, source: str | None = None) -> list[int]:
    """The people in ``group`` (from ``source``, or any), each once, in id order."""
    query = select(GroupMember.person_id).where(GroupMember.group_id == group.id)
    if source is not None:
        query = query.where(GroupMember.source == source)
    return sorted(set(session.scalars(query)))


def members_of(session: Session, groups: Sequence[DirectoryGroup]) -> dict[int, list[tuple[Person, str | None]]]:
    """Every listed group's people (any source, each once) with the label SCIM gave them, in one query."""
    out: dict[int, dict[int, tuple[Person, str | None]]] = {g.id: {} for g in groups}
    if groups:
        rows = session.execute(select(GroupMember.group_id, GroupMember.display, Person)
                               .join(Person, Person.id == GroupMember.person_id)
                               .where(GroupMember.group_id.in_(list(out))).order_by(Person.id, GroupMember.id))
        for group_id, display, person in rows:
            if person.id not in out[group_id] or display:
                out[group_id][person.id] = (person, display)
    return {gid: list(people.values()) for gid, people in out.items()}


def set_members(session: Session, *, actor: Actor | None, group: DirectoryGroup, person_ids: Iterable[int],
                source: str = SCIM_SOURCE, displays: Mapping[int, str] | None = None) -> MemberChange:
    """Make ``source``'s members of ``group`` exactly ``person_ids`` (``displays``: the labels sent for them)."""
    wanted = set(_people(session, person_ids))
    current = set(member_ids(session, group, source))
    _relabel(session, group, source, displays, wanted & current)
    return _apply(session, actor=actor, group=group, add=wanted - current, remove=current - wanted, source=source,
                  displays=displays)


def add_members(session: Session, *, actor: Actor | None, group: DirectoryGroup, person_ids: Iterable[int],
                source: str = SCIM_SOURCE, displays: Mapping[int, str] | None = None) -> MemberChange:
    wanted = set(_people(session, person_ids))
    current = set(member_ids(session, group, source))
    _relabel(session, group, source, displays, wanted & current)
    return _apply(session, actor=actor, group=group, add=wanted - current, remove=set(), source=source,
                  displays=displays)


def _relabel(session: Session, group: DirectoryGroup, source: str, displays: Mapping[int, str] | None,
             person_ids: set[int]) -> None:
    """A member sent again with another label keeps the new one (a label is not a membership change)."""
    if not displays or not person_ids:
        return
    for row in session.scalars(select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.source == source,
                                                         GroupMember.person_id.in_(sorted(person_ids)))):
        if row.person_id in displays:
            row.display = displays[row.person_id][:255] or None


def remove_members(session: Session, *, actor: Actor | None, group: DirectoryGroup, person_ids: Iterable[int] | None,
                   source: str = SCIM_SOURCE) -> MemberChange:
    """Remove the given people (all of ``source``'s members when None); unknown ids change nothing."""
    current = set(member_ids(session, group, source))
    gone = current if person_ids is None else current & set(person_ids)
    return _apply(session, actor=actor, group=group, add=set(), remove=gone, source=source)


def _apply(session: Session, *, actor: Actor | None, group: DirectoryGroup, add: set[int], remove: set[int],
           source: str, displays: Mapping[int, str] | None = None) -> MemberChange:
    for person_id in sorted(add):
        display = (displays or {}).get(person_id)
        session.add(GroupMember(group_id=group.id, person_id=person_id, source=source, display=(display or None)
                                and display[:255]))
    if remove:
        session.execute(delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.source == source,
                                                  GroupMember.person_id.in_(sorted(remove))))
    change = MemberChange(tuple(sorted(add)), tuple(sorted(remove)))
    if add or remove:
        session.flush()
        session.expire(group, ["members"])
        group.updated_at = utcnow()
        audit.record(session, "group.members_changed", actor=actor, target_type="group", target_id=group.id,
                     details={"source": source, "added": list(change.added), "removed": list(change.removed)})
        # What the group's mappings give follows at once, in the same transaction.
        mappings.reconcile_people(session, actor=actor, person_ids=(*change.added, *change.removed))
    return change


def delete_group(session: Session, *, actor: Actor | None, group: DirectoryGroup) -> None:
    """Delete a group: what its mappings gave is taken back first (cause ``group``)."""
    for mapping in list(session.scalars(select(GroupMapping).where(GroupMapping.group_id == group.id))):
        mappings.remove(session, actor=actor, mapping=mapping)
    audit.record(session, "group.deleted", actor=actor, target_type="group", target_id=group.id,
                 details={"display_name": group.display_name, "members": len(member_ids(session, group))})
    session.delete(group)
    session.flush()


def sync_claim(session: Session, *, actor: Actor | None, provider_slug: str, person: Person,
               claim_values: Iterable[str]) -> list[DirectoryGroup]:
    """An SSO sign-in's groups claim: the person is in the groups whose external id or display name the claim
    names (as that provider's membership), and in no other group by that provider. Unknown names are ignored:
    groups come from SCIM or an admin, never from a claim alone. Returns the person's groups by this claim."""
    values = {str(v) for v in claim_values if str(v).strip()}
    source = sso_source(provider_slug)
    named = list(session.scalars(select(DirectoryGroup).where(
        (DirectoryGroup.external_id.in_(values)) | (DirectoryGroup.display_name.in_(values))))) if values else []
    wanted = {g.id for g in named}
    held = set(session.scalars(select(GroupMember.group_id).where(GroupMember.person_id == person.id,
                                                                   GroupMember.source == source)))
    for group in named:
        if group.id not in held:
            _apply(session, actor=actor, group=group, add={person.id}, remove=set(), source=source)
    for group_id in sorted(held - wanted):
        _apply(session, actor=actor, group=get_group(session, group_id), add=set(), remove={person.id}, source=source)
    return named
