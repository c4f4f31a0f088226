"""Who is who: a platform member is a Person by verified email where the platform gives one, else by a
platform identity recorded on the Person. Anyone else is unmatched, never guessed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.connectors.models import PlatformIdentity
from govern.directory.models import Person


def match_members(session: Session, platform: str, members: Iterable[Mapping[str, Any]]) -> dict[str, Person | None]:
    """Member id -> Person (or None), in two queries whatever the number of members."""
    rows = list(members)
    emails = sorted({str(m["email"]).lower() for m in rows if m.get("email")})
    by_email: dict[str, Person] = {}
    for start in range(0, len(emails), 500):
        chunk = emails[start:start + 500]
        by_email.update({p.email.lower(): p for p in session.scalars(
            select(Person).where(func.lower(Person.email).in_(chunk)))})
    ids = sorted({str(m["id"]) for m in rows})
    by_identity: dict[str, Person] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for identity, person in session.execute(
                select(PlatformIdentity, Person).join(Person, Person.id == PlatformIdentity.person_id)
                .where(PlatformIdentity.platform == platform, PlatformIdentity.external_id.in_(chunk))):
            by_identity[identity.external_id] = person
    matched: dict[str, Person | None] = {}
    for member in rows:
        email = str(member.get("email") or "").lower()
        matched[str(member["id"])] = by_email.get(email) if email else None
        if matched[str(member["id"])] is None:
            matched[str(member["id"])] = by_identity.get(str(member["id"]))
    return matched
