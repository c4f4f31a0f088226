"""Who held an account at a moment (an auditor's "who was admin of this Page on 3 March"): the member set a
sync saw last at or before it, or for an account without an API the attestation in force then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.connectors.matching import match_members
from govern.connectors.models import ATTESTED_PLATFORMS, Attestation, ConnectedAccount, Connection
from govern.connectors.sync import latest_snapshot, snapshot_at
from govern.db import utcnow


@dataclass
class MembersAt:
    """The members in force at ``at``: where they come from, since when, and each matched to a person or not."""

    account_id: int
    at: datetime
    #: "sync", "attestation", or None when nothing was known by then.
    source: str | None
    seen_from: datetime | None
    #: The last sync that saw the same set (for an attestation: when it was made).
    seen_until: datetime | None
    members: list[dict[str, Any]]


def members_at(session: Session, account: Account, at: datetime | None = None) -> MembersAt:
    """The account's platform members at ``at`` (now when None), each with the person govern matched, if any."""
    moment = at or utcnow()
    connection = session.execute(select(Connection.platform).join(
        ConnectedAccount, ConnectedAccount.connection_id == Connection.id).where(
        ConnectedAccount.account_id == account.id)).scalar_one_or_none()
    if connection is not None:
        snapshot = latest_snapshot(session, account.id) if at is None else snapshot_at(session, account.id, moment)
        if snapshot is None:
            return MembersAt(account.id, moment, None, None, None, [])
        return MembersAt(account.id, moment, "sync", snapshot.taken_at, snapshot.last_seen_at,
                         _matched(session, connection, snapshot.members))
    if account.platform in ATTESTED_PLATFORMS:
        attestation = session.scalar(select(Attestation).where(
            Attestation.account_id == account.id, Attestation.attested_at <= moment)
            .order_by(Attestation.attested_at.desc(), Attestation.id.desc()).limit(1))
        if attestation is not None:
            return MembersAt(account.id, moment, "attestation", attestation.attested_at, attestation.attested_at,
                             _matched(session, account.platform, attestation.members))
    return MembersAt(account.id, moment, None, None, None, [])


def _matched(session: Session, platform: str, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    people = match_members(session, platform, members)
    rows = []
    for member in members:
        person = people.get(str(member["id"]))
        rows.append({**member, "person_id": person.id if person else None,
                     "person_name": person.full_name if person else None})
    return rows
