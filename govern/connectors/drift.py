"""Drift: where the platform (as last synced, or as the owner attested) and govern's grants disagree.

- unmanaged: on the platform with no active grant in govern (worst: a departed or unknown person);
- stale: an active grant in govern, not on the platform;
- mismatch: both, but the platform role is not the granted role (through the mapping table per platform).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.accounts.models import ROLE_CODES, Account
from govern.connectors.matching import match_members
from govern.connectors.models import ATTESTED_PLATFORMS, Attestation, ConnectedAccount, Connection, MemberSnapshot
from govern.grants.models import Grant

#: The platform's role -> govern's role, per connector. Roles not listed map to nothing (no mismatch is claimed).
ROLE_MAP: dict[str, dict[str, str]] = {
    "meta": {"MANAGE": "admin", "CREATE_CONTENT": "publisher", "MODERATE": "moderator", "MESSAGING": "moderator",
             "ADVERTISE": "advertiser", "ANALYZE": "analyst"},
    "linkedin": {"ADMINISTRATOR": "admin", "CONTENT_ADMINISTRATOR": "publisher", "CURATOR": "publisher",
                 "RECRUITING_POSTER": "publisher", "DIRECT_SPONSORED_CONTENT_POSTER": "advertiser",
                 "LEAD_GEN_FORMS_MANAGER": "advertiser", "ANALYST": "analyst"},
    "tiktok": {"ADMIN": "admin", "STANDARD": "publisher", "OPERATOR": "publisher", "ANALYST": "analyst"},
}
#: On the platforms there is no "owner" apart from admin: govern's owner compares as admin.
_SAME = {"owner": "admin"}
KIND_LABELS = {"unmanaged": "Unmanaged access", "stale": "Stale record", "mismatch": "Role mismatch"}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2}


def platform_role(platform: str, roles: Iterable[str]) -> str | None:
    """The strongest govern role the platform roles amount to (tasks such as MANAGE imply the rest)."""
    mapping = ROLE_MAP.get(platform)
    mapped = [mapping.get(r) for r in roles] if mapping is not None else [_SAME.get(r, r) for r in roles]
    known = [r for r in mapped if r in ROLE_CODES]
    return min(known, key=ROLE_CODES.index) if known else None


def _strongest(roles: Iterable[str]) -> str | None:
    known = [_SAME.get(r, r) for r in roles if r in ROLE_CODES]
    return min(known, key=ROLE_CODES.index) if known else None


@dataclass
class DriftItem:
    """One disagreement between the platform and govern on one account."""

    account_id: int
    account_name: str
    kind: str
    severity: str
    person_id: int | None
    person_name: str
    person_status: str | None
    member_id: str | None
    platform_roles: list[str] = field(default_factory=list)
    govern_roles: list[str] = field(default_factory=list)

    @property
    def kind_label(self) -> str:
        """Human name of the kind."""
        return KIND_LABELS[self.kind]

    @property
    def sentence(self) -> str:
        """What is wrong, in plain words."""
        who = self.person_name
        if self.kind == "unmanaged":
            state = {"departed": " (departed)", "leaving": " (leaving)"}.get(self.person_status or "", "")
            if self.person_id is None:
                return f"{who} is on the platform ({', '.join(self.platform_roles)}) and is no one govern knows."
            return f"{who}{state} is on the platform ({', '.join(self.platform_roles)}) with no active grant."
        if self.kind == "stale":
            return f"{who} holds {', '.join(self.govern_roles)} in govern but is not on the platform."
        return (f"{who} is {', '.join(self.platform_roles)} on the platform but holds "
                f"{', '.join(self.govern_roles)} in govern.")

    def as_dict(self) -> dict[str, Any]:
        """The API's form."""
        return {"account_id": self.account_id, "kind": self.kind, "severity": self.severity,
                "person_id": self.person_id, "person_name": self.person_name, "person_status": self.person_status,
                "member_id": self.member_id, "platform_roles": self.platform_roles, "govern_roles": self.govern_roles,
                "description": self.sentence}


@dataclass
class Observed:
    """What the platform says about one account: its members and the platform they are named on."""

    account: Account
    platform: str
    members: list[dict[str, Any]]
    seen_at: Any
    source: str


def observations(session: Session, account_ids: Iterable[int] | None = None) -> list[Observed]:
    """The latest snapshot of each connected account and the latest attestation of each attested account."""
    wanted = sorted(set(account_ids)) if account_ids is not None else None
    latest = select(func.max(MemberSnapshot.id)).group_by(MemberSnapshot.account_id)
    snap_query = select(MemberSnapshot, Connection.platform).join(
        ConnectedAccount, ConnectedAccount.account_id == MemberSnapshot.account_id).join(
        Connection, Connection.id == ConnectedAccount.connection_id).where(MemberSnapshot.id.in_(latest))
    attested = select(func.max(Attestation.id)).group_by(Attestation.account_id)
    att_query = select(Attestation).where(Attestation.id.in_(attested))
    if wanted is not None:
        snap_query = snap_query.where(MemberSnapshot.account_id.in_(wanted))
        att_query = att_query.where(Attestation.account_id.in_(wanted))
    snaps = list(session.execute(snap_query).all())
    atts = list(session.scalars(att_query))
    ids = {s.account_id for s, _ in snaps} | {a.account_id for a in atts}
    accounts = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(ids)))} if ids else {}
    seen: list[Observed] = [Observed(accounts[s.account_id], platform, s.members, s.last_seen_at, "sync")
                            for s, platform in snaps]
    seen += [Observed(accounts[a.account_id], accounts[a.account_id].platform, a.members, a.attested_at, "attestation")
             for a in atts if accounts[a.account_id].platform in ATTESTED_PLATFORMS]
    return sorted(seen, key=lambda o: o.account.id)


def drift_of(session: Session, observed: list[Observed]) -> list[DriftItem]:
    """Every drift item of the observed accounts: a fixed number of queries per platform."""
    if not observed:
        return []
    account_ids = [o.account.id for o in observed]
    grants: dict[int, dict[int, list[Grant]]] = {}
    for grant in session.scalars(select(Grant).where(Grant.account_id.in_(account_ids), Grant.status == "active")).unique():
        grants.setdefault(grant.account_id, {}).setdefault(grant.person_id, []).append(grant)
    matches: dict[str, dict[str, Any]] = {}
    for platform in sorted({o.platform for o in observed}):
        members = [m for o in observed if o.platform == platform for m in o.members]
        matches[platform] = match_members(session, platform, members)
    items: list[DriftItem] = []
    for obs in observed:
        account = obs.account
        held = grants.get(account.id, {})
        on_platform: set[int] = set()
        for member in obs.members:
            person = matches[obs.platform].get(str(member["id"]))
            roles = list(member.get("roles") or [])
            name = person.full_name if person else str(member.get("name") or member.get("email") or member["id"])
            if person is not None:
                on_platform.add(person.id)
            person_grants = held.get(person.id, []) if person is not None else []
            if not person_grants:
                severity = "critical" if person is None or person.status != "active" else "high"
                items.append(DriftItem(account.id, account.display_name, "unmanaged", severity,
                                       person.id if person else None, name, person.status if person else None,
                                       str(member["id"]), roles, []))
                continue
            assert person is not None
            govern_roles = sorted(g.role_code for g in person_grants)
            seen_role = platform_role(obs.platform, roles)
            if seen_role is not None and seen_role != _strongest(govern_roles):
                items.append(DriftItem(account.id, account.display_name, "mismatch", "medium", person.id, name,
                                       person.status, str(member["id"]), roles, govern_roles))
        for person_id, person_grants in held.items():
            if person_id not in on_platform:
                person = person_grants[0].person
                items.append(DriftItem(account.id, account.display_name, "stale", "medium", person_id, person.full_name,
                                       person.status, None, [], sorted(g.role_code for g in person_grants)))
    return sorted(items, key=lambda i: (SEVERITY_ORDER[i.severity], i.account_name, i.person_name))


def account_drift(session: Session, account_id: int) -> list[DriftItem]:
    """The drift of one account (none when it is neither connected nor attested)."""
    return drift_of(session, observations(session, [account_id]))


def company_drift(session: Session) -> list[DriftItem]:
    """The drift of every connected or attested account."""
    return drift_of(session, observations(session))


def drift_count(session: Session) -> int:
    """How many drift items there are (the dashboard's number)."""
    return len(company_drift(session))
