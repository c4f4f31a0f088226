"""Demo data: a small, realistic company built through the real services, so every rule holds.

Northpeak Outdoor (a made-up brand on the reserved .example domain) has five departments,
thirty people, twelve official accounts, published policies, about forty grants (owner and
admin ones approved by a second person), a few time-bound grants, one open request, and two
revocations whose removal from the platform nobody has confirmed yet, and an access review of
the X accounts under way (one item kept, the rest waiting on the owners' home pages). Everything
is deterministic: seeding two fresh instances gives the same company.

When the vault is unsealed, IT has also vaulted the accounts' credentials with clearly fake values
(each starts with "DEMO-ONLY"; the 2FA seeds are base32 of a demo phrase), a publisher has revealed
one, versions are backdated so that some credentials are due and some overdue (with their
scheduled rotation tasks), and the TikTok account is locked down with an open incident.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import PLATFORM_LABELS, Account
from govern.accounts.services import AccountInput, create_account
from govern.auth.kit import AuthKit
from govern.auth.models import User
from govern.auth.users import active_users_with_roles, create_user
from govern.crypto.keyring import Keyring
from govern.db import utcnow
from govern.directory.models import Person
from govern.directory.services import create_person
from govern.errors import ConflictError
from govern.grants.models import Grant
from govern.grants.services import approve_grant, grant_role, request_role, revoke_grant
from govern.incidents.models import Incident
from govern.incidents.services import lock_down
from govern.policies.models import Acknowledgement, PolicyVersion
from govern.policies.services import current_version
from govern.reviews.models import ReviewCampaign, ReviewItem
from govern.reviews.services import decide_item, open_campaign
from govern.rotation.models import RotationTask
from govern.rotation.schedules import schedule_due
from govern.vault.access import reveal
from govern.vault.models import Secret, SecretVersion
from govern.vault.versions import create_secret

COMPANY = "Northpeak Outdoor"
DOMAIN = "northpeak.example"
RECOVERY_MAILBOX = f"social-recovery@{DOMAIN} (shared mailbox, IT)"
RECOVERY_PHONE = "IT on-call phone, +1 555 0100"

#: key, full name, department, title, manager's key (managers come before their reports).
PEOPLE: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("m_head", "Hannah Lindqvist", "Marketing", "Head of Marketing", None),
    ("m_social", "Tomás Alvarez", "Marketing", "Social Media Lead", "m_head"),
    ("m_content1", "Priya Raman", "Marketing", "Content Creator", "m_social"),
    ("m_content2", "Jonas Becker", "Marketing", "Content Creator", "m_social"),
    ("m_video", "Aiko Tanaka", "Marketing", "Video Producer", "m_social"),
    ("m_paid", "Marcus Reid", "Marketing", "Paid Social Specialist", "m_head"),
    ("m_community1", "Léa Martin", "Marketing", "Community Manager", "m_social"),
    ("m_community2", "Daniel Okafor", "Marketing", "Community Manager", "m_social"),
    ("m_intern", "Sofia Rossi", "Marketing", "Marketing Intern", "m_social"),
    ("c_head", "Claire Dubois", "Communications", "Head of Communications", None),
    ("c_pr", "Ethan Brooks", "Communications", "PR Manager", "c_head"),
    ("c_press", "Nadia Haddad", "Communications", "Press Officer", "c_pr"),
    ("c_internal", "Oliver Grant", "Communications", "Internal Communications Specialist", "c_head"),
    ("c_spokes", "Isabel Fernández", "Communications", "Executive Spokesperson", "c_head"),
    ("s_lead", "Kwame Mensah", "Customer Support", "Customer Support Lead", None),
    ("s_team", "Emma Nilsson", "Customer Support", "Social Care Team Lead", "s_lead"),
    ("s_agent1", "Lucas Moreau", "Customer Support", "Social Care Agent", "s_team"),
    ("s_agent2", "Mei Chen", "Customer Support", "Social Care Agent", "s_team"),
    ("s_agent3", "Rafael Costa", "Customer Support", "Social Care Agent", "s_team"),
    ("s_agent4", "Zoe Williams", "Customer Support", "Social Care Agent", "s_team"),
    ("s_qa", "Ahmed Karimi", "Customer Support", "Support Quality Analyst", "s_lead"),
    ("h_dir", "Grace Whitfield", "HR", "HR Director", None),
    ("h_bp", "Samuel Adeyemi", "HR", "HR Business Partner", "h_dir"),
    ("h_talent", "Julia Novak", "HR", "Talent Acquisition Lead", "h_dir"),
    ("h_brand", "Chloe Park", "HR", "Employer Brand Specialist", "h_dir"),
    ("i_mgr", "Viktor Petrov", "IT", "IT Manager", None),
    ("i_sec", "Amara Diallo", "IT", "Security Engineer", "i_mgr"),
    ("i_sys", "Ben Carter", "IT", "Systems Administrator", "i_mgr"),
    ("i_help", "Lina Schmidt", "IT", "IT Support Technician", "i_mgr"),
    ("i_audit", "Ruth Morgan", "IT", "IT Risk & Compliance Analyst", "i_mgr"),
)

#: Logins: person key and app roles (an empty set is plain staff). Owners of accounts are
#: managers, because only an account's owner (or an admin) may grant roles on it.
LOGINS: tuple[tuple[str, frozenset[str]], ...] = (
    ("m_head", frozenset({"manager"})),
    ("m_social", frozenset({"manager"})),
    ("c_head", frozenset({"manager"})),
    ("s_lead", frozenset({"manager"})),
    ("h_dir", frozenset({"hr", "manager"})),
    ("h_bp", frozenset({"hr"})),
    ("i_mgr", frozenset({"it"})),
    ("i_sec", frozenset({"it"})),
    ("i_audit", frozenset({"auditor"})),
    ("s_agent1", frozenset()),
)
#: Who becomes an admin when the instance has none yet (someone must approve owner/admin grants).
FALLBACK_ADMIN = "i_mgr"

#: key, platform, handle, display name, business owner, crisis contact, tier, max credential holders.
ACCOUNTS: tuple[tuple[str, str, str, str, str, str, str, int], ...] = (
    ("ig_main", "instagram", "northpeak", "Northpeak Outdoor", "m_head", "c_head", "critical", 4),
    ("fb_main", "facebook", "northpeak.outdoor", "Northpeak Outdoor", "m_head", "c_head", "high", 4),
    ("tt_main", "tiktok", "northpeak", "Northpeak on TikTok", "m_social", "c_head", "high", 3),
    ("yt_main", "youtube", "NorthpeakTV", "Northpeak TV", "m_head", "c_head", "standard", 3),
    ("th_main", "threads", "northpeak", "Northpeak on Threads", "m_social", "c_head", "standard", 3),
    ("x_news", "x", "northpeak", "Northpeak News", "c_head", "c_pr", "critical", 4),
    ("li_company", "linkedin", "northpeak-outdoor", "Northpeak Outdoor on LinkedIn", "c_head", "c_pr", "high", 3),
    ("bs_main", "bluesky", "northpeak.bsky.social", "Northpeak on Bluesky", "c_head", "c_pr", "standard", 3),
    ("md_main", "mastodon", "northpeak@mastodon.social", "Northpeak on Mastodon", "c_head", "c_pr", "standard", 3),
    ("x_help", "x", "northpeak_help", "Northpeak Help", "s_lead", "c_head", "high", 3),
    ("fb_help", "facebook", "northpeak.help", "Northpeak Help", "s_lead", "c_head", "standard", 3),
    ("ig_careers", "instagram", "northpeak.careers", "Northpeak Careers", "h_dir", "c_pr", "standard", 3),
)

#: person, account, role, reason, days until it ends (None: no end). Granted by the account's
#: owner; owner and admin grants then wait for an admin's approval (four-eyes).
GRANTS: tuple[tuple[str, str, str, str, int | None], ...] = (
    ("m_head", "ig_main", "owner", "Accountable for the brand's main account.", None),
    ("m_social", "ig_main", "admin", "Runs the account day to day; second admin.", None),
    ("m_content1", "ig_main", "publisher", "Publishes the weekly content plan.", None),
    ("m_video", "ig_main", "publisher", "Publishes Reels.", None),
    ("m_community1", "ig_main", "moderator", "Answers comments and direct messages.", None),
    ("m_paid", "ig_main", "advertiser", "Runs paid campaigns.", None),
    ("m_head", "fb_main", "owner", "Accountable for the Facebook Page.", None),
    ("m_social", "fb_main", "admin", "Second admin of the Page.", None),
    ("m_community1", "fb_main", "publisher", "Publishes community posts and events.", None),
    ("m_community2", "fb_main", "moderator", "Moderates comments.", None),
    ("m_paid", "fb_main", "advertiser", "Autumn campaign on Facebook.", 45),
    ("m_social", "tt_main", "owner", "Accountable for TikTok.", None),
    ("m_head", "tt_main", "admin", "Second admin of TikTok.", None),
    ("m_intern", "tt_main", "publisher", "Publishes short videos during the internship.", 75),
    ("m_head", "yt_main", "owner", "Accountable for the YouTube channel.", None),
    ("m_video", "yt_main", "admin", "Uploads and manages videos.", None),
    ("m_paid", "yt_main", "analyst", "Reads video performance.", None),
    ("m_social", "th_main", "owner", "Accountable for Threads.", None),
    ("m_head", "th_main", "admin", "Second admin of Threads.", None),
    ("m_content2", "th_main", "publisher", "Publishes on Threads.", None),
    ("c_head", "x_news", "owner", "Accountable for the news account.", None),
    ("c_pr", "x_news", "admin", "Second admin; press announcements.", None),
    ("c_press", "x_news", "publisher", "Publishes press releases.", None),
    ("c_spokes", "x_news", "publisher", "Posts during the product launch week.", 14),
    ("c_head", "li_company", "owner", "Accountable for the LinkedIn Page.", None),
    ("c_pr", "li_company", "admin", "Second admin of the LinkedIn Page.", None),
    ("h_brand", "li_company", "publisher", "Publishes employer-brand stories.", None),
    ("c_head", "bs_main", "owner", "Accountable for Bluesky.", None),
    ("c_pr", "bs_main", "admin", "Second admin of Bluesky.", None),
    ("c_press", "bs_main", "publisher", "Publishes press releases.", None),
    # Only one admin on Mastodon: the account page shows the risk.
    ("c_head", "md_main", "owner", "Accountable for Mastodon.", None),
    ("c_internal", "md_main", "publisher", "Publishes on Mastodon.", None),
    ("s_lead", "x_help", "owner", "Accountable for the help account.", None),
    ("s_team", "x_help", "admin", "Second admin; runs the social care rota.", None),
    ("s_agent2", "x_help", "publisher", "Replies to customers publicly.", None),
    ("s_agent3", "x_help", "moderator", "Handles direct messages.", None),
    ("s_qa", "x_help", "analyst", "Reviews response times.", None),
    ("s_lead", "fb_help", "owner", "Accountable for the help Page.", None),
    ("s_team", "fb_help", "admin", "Second admin of the help Page.", None),
    ("s_agent2", "fb_help", "moderator", "Answers Messenger conversations.", None),
    ("s_agent4", "fb_help", "moderator", "Answers Messenger conversations.", None),
    ("h_dir", "ig_careers", "owner", "Accountable for the careers account.", None),
    ("h_talent", "ig_careers", "admin", "Second admin; job posts.", None),
    ("h_brand", "ig_careers", "publisher", "Publishes life-at-Northpeak stories.", None),
    # Ended below, so the reports and account pages show history and open removals.
    ("m_content2", "yt_main", "analyst", "Video reporting for the spring campaign.", None),
    ("m_community2", "x_help", "moderator", "Holiday cover for Social Care.", None),
)
#: person, account, role, reason: revoked by the account's owner, removal left unconfirmed.
REVOCATIONS: tuple[tuple[str, str, str, str], ...] = (
    ("m_content2", "yt_main", "analyst", "The spring campaign report is delivered."),
    ("m_community2", "x_help", "moderator", "Holiday cover ended."),
)
#: person (with a staff login), account, role, reason: a request nobody has decided yet.
REQUEST = ("s_agent1", "fb_help", "moderator", "I join the Facebook Help rota next month.")

#: An access review under way: name, platform in scope, days until due, and the grant (person,
#: account, role) its reviewer has already kept.
REVIEW = ("Quarterly access review: X", "x", 14, ("c_pr", "x_news", "admin"))

#: Fake credentials: every value starts with this, so nobody mistakes a demo value for a real one.
FAKE = "DEMO-ONLY"
#: account, age in days of its password's current version (the accounts' intervals are 60 days for
#: critical ones, 90 for the others): overdue, due soon, and fine ones for the rotation dashboard.
PASSWORD_AGES: dict[str, int] = {
    "ig_main": 75, "fb_main": 83, "tt_main": 20, "yt_main": 40, "th_main": 130, "x_news": 12,
    "li_company": 200, "bs_main": 5, "md_main": 86, "x_help": 30, "fb_help": 60, "ig_careers": 95,
}
#: Accounts whose 2FA seed and recovery codes IT keeps too (the critical ones).
TWO_FACTOR = ("ig_main", "x_news")
#: The YouTube upload token (for the scheduling tool) expires soon: due by its own date.
TOKEN = ("yt_main", "YouTube upload API token (scheduling tool)", 9)
#: Who reveals what (a login holding a revealing grant, policy accepted): person, account, reason.
REVEALS = (("m_social", "ig_main", "Sign in on the campaign phone for the spring shoot."),)
#: The account IT locked down, and what happened.
LOCKDOWN = ("tt_main", "Demo incident: TikTok reported a sign-in from an unknown device in another country; "
                       "the session was not ours. Passwords and 2FA are being rotated.")

#: Who has not accepted the standard policy (nobody may hold a credential without it, so these
#: hold none; the analyst's grant shows up as "holders who have not accepted the current policy").
STANDARD_NOT_ACCEPTED = frozenset({"s_qa", "i_sys", "i_help"})

POLICIES = {
    "standard": (
        f"{COMPANY} social media policy",
        "# Our official accounts\n\n"
        "1. Official accounts belong to the company, never to a person.\n"
        "2. Sign in only with the credentials govern gives you, and never share them.\n"
        "3. Post only what the content plan or your lead approved; when in doubt, ask.\n"
        "4. Answer customers politely; move personal data to a private channel.\n"
        "5. In a crisis, stop scheduled posts and call the account's crisis contact.\n"
        "6. Report anything suspicious (a login alert, a post you did not write) to IT at once.\n",
    ),
    "privileged": (
        f"{COMPANY} policy for account owners and admins",
        "# Owners and admins\n\n"
        "In addition to the social media policy:\n\n"
        "1. Keep at least two admins on every account; never remove the last one.\n"
        "2. Grant roles on the platform only when govern shows an approved grant.\n"
        "3. Remove leavers from the platform's own role list the day they leave, and confirm it in govern.\n"
        "4. Keep the recovery email and phone on company-controlled addresses.\n",
    ),
}


@dataclass
class SeedSummary:
    """What the seed created, for the command's report."""

    departments: list[str] = field(default_factory=list)
    people: int = 0
    accounts: int = 0
    platforms: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    acceptances: int = 0
    grants: dict[str, int] = field(default_factory=dict)
    time_bound: int = 0
    open_removals: int = 0
    logins: list[tuple[str, list[str]]] = field(default_factory=list)
    review: str = ""
    review_items: int = 0
    review_open: int = 0
    approver: str = ""
    new_admin: str | None = None
    #: None when the vault was sealed and no credentials were seeded.
    secrets: int | None = None
    rotation: dict[str, int] = field(default_factory=dict)
    incident: str = ""


def email_of(name: str) -> str:
    """first.last@northpeak.example, accents dropped."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{ascii_name.lower().replace(' ', '.')}@{DOMAIN}"


def _start_date(index: int) -> date:
    return date(2017 + index % 8, 1 + (index * 5) % 12, 1 + (index * 7) % 28)


def _refuse_unless_fresh(session: Session) -> None:
    if session.scalar(select(Account.id).limit(1)) is not None:
        raise ConflictError(
            "This instance has accounts already: `govern demo seed` only fills a fresh instance "
            "(run it right after `govern init` on an empty database)."
        )
    if session.scalar(select(Person.id).where(Person.email.like(f"%@{DOMAIN}")).limit(1)) is not None:
        raise ConflictError(f"People of the demo company ({DOMAIN}) exist already; the demo was seeded before.")


def _people(session: Session) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for index, (key, name, department, title, manager) in enumerate(PEOPLE):
        person = create_person(session, actor=None, full_name=name, email=email_of(name), department=department)
        person.employee_id = f"NP-{1001 + index}"
        person.title = title
        person.manager_id = people[manager].id if manager else None
        person.start_date = _start_date(index)
        session.flush()
        audit.record(session, "person.updated", target_type="person", target_id=person.id, details={
            "changes": {"employee_id": person.employee_id, "title": title, "manager_id": person.manager_id,
                        "start_date": person.start_date.isoformat()},
        })
        people[key] = person
    return people


def _logins(session: Session, kit: AuthKit, people: dict[str, Person]) -> tuple[dict[str, User], User, bool]:
    """Create the logins (their setup secrets are discarded); return them and the approving admin."""
    existing_admin = next(iter(active_users_with_roles(session, ["admin"])), None)
    users: dict[str, User] = {}
    for key, roles in LOGINS:
        wanted = set(roles) | ({"admin"} if existing_admin is None and key == FALLBACK_ADMIN else set())
        users[key], _secret = create_user(session, kit, actor=None, person=people[key], roles=wanted)
    return users, existing_admin or users[FALLBACK_ADMIN], existing_admin is None


def _policies(session: Session) -> dict[str, PolicyVersion]:
    """The current policy of each tier, publishing version 1 where a tier has none yet."""
    # The policies area has no publishing service yet: insert the row and audit it here.
    versions: dict[str, PolicyVersion] = {}
    for tier, (title, body) in POLICIES.items():
        version = current_version(session, tier)
        if version is None:
            version = PolicyVersion(tier=tier, version=1, title=title, body_markdown=body, published_at=utcnow())
            session.add(version)
            session.flush()
            audit.record(session, "policy.published", target_type="policy_version", target_id=version.id,
                         details={"tier": tier, "version": 1, "title": title})
        versions[tier] = version
    return versions


def _accept(session: Session, person: Person, version: PolicyVersion) -> None:
    session.add(Acknowledgement(person_id=person.id, policy_version_id=version.id, accepted_at=utcnow()))
    session.flush()
    audit.record(session, "policy.accepted", target_type="policy_version", target_id=version.id,
                 details={"person_id": person.id, "tier": version.tier, "version": version.version})


def _acceptances(session: Session, people: dict[str, Person], versions: dict[str, PolicyVersion]) -> int:
    privileged_holders = {person for person, _, role, _, _ in GRANTS if role in ("owner", "admin")}
    count = 0
    for key, person in people.items():
        if key not in STANDARD_NOT_ACCEPTED:
            _accept(session, person, versions["standard"])
            count += 1
        if key in privileged_holders:
            _accept(session, person, versions["privileged"])
            count += 1
    return count


def _accounts(session: Session, people: dict[str, Person]) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    for key, platform, handle, name, owner, crisis, tier, holders in ACCOUNTS:
        accounts[key] = create_account(session, actor=None, data=AccountInput(
            platform=platform, handle=handle, display_name=name,
            business_owner_id=people[owner].id, crisis_contact_id=people[crisis].id,
            recovery_email_label=RECOVERY_MAILBOX, recovery_phone_label=RECOVERY_PHONE,
            tier=tier, max_credential_holders=holders,
            rotation_interval_days=60 if tier == "critical" else 90,
            notes=f"Demo account of {COMPANY}.",
        ))
    return accounts


def _grants(session: Session, people: dict[str, Person], accounts: dict[str, Account], users: dict[str, User],
            admin: User) -> dict[tuple[str, str, str], Grant]:
    by_person_id = {person.id: key for key, person in people.items()}

    def owner_of(account: str) -> User:
        owner_id = accounts[account].business_owner_id
        assert owner_id is not None  # every demo account has a business owner
        return users[by_person_id[owner_id]]

    made: dict[tuple[str, str, str], Grant] = {}
    now = utcnow()
    for person, account, role, reason, days in GRANTS:
        owner = owner_of(account)
        grant = grant_role(session, actor=owner, person_id=people[person].id, account_id=accounts[account].id,
                           role_code=role, reason=reason, expires_at=now + timedelta(days=days) if days else None)
        if grant.status == "requested":  # four-eyes: an admin, not the requester, approves
            approve_grant(session, actor=admin, grant=grant, note="Approved for the demo.")
        made[(person, account, role)] = grant
    for person, account, role, reason in REVOCATIONS:
        owner = owner_of(account)
        revoke_grant(session, actor=owner, grant=made[(person, account, role)], reason=reason)
    person, account, role, reason = REQUEST
    made[REQUEST[:3]] = request_role(session, actor=users[person], account_id=accounts[account].id,
                                     role_code=role, reason=reason)
    return made


def _review(session: Session, admin: User, users: dict[str, User], people: dict[str, Person],
            grants: dict[tuple[str, str, str], Grant]) -> ReviewCampaign:
    """Open the review campaign and let one reviewer keep one grant."""
    name, platform, days, kept = REVIEW
    campaign = open_campaign(session, actor=admin, name=name, scope_kind="platform", scope_value=platform,
                             due_at=utcnow() + timedelta(days=days))
    item = session.scalars(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id,
                                                    ReviewItem.grant_id == grants[kept].id)).one()
    reviewer = next(users[key] for key, person in people.items() if person.id == item.reviewer_id and key in users)
    decide_item(session, actor=reviewer, item=item, decision="keep", reason="")
    return campaign


def _fake_seed(handle: str) -> str:
    """A valid base32 2FA seed spelling a demo phrase (never a real one)."""
    return base64.b32encode(f"demo-only {handle}"[:20].ljust(20, "!").encode()).decode()


def _vault(session: Session, keyring: Keyring, it: User, accounts: dict[str, Account]) -> list[Secret]:
    """IT vaults fake credentials of every account: a password each, 2FA seed and recovery codes of the
    critical ones, and one API token."""
    made: list[Secret] = []
    for key, account in accounts.items():
        label = PLATFORM_LABELS[account.platform]
        made.append(create_secret(session, actor=it, keyring=keyring, account=account, kind="password",
                                  label=f"{label} login", value=f"{FAKE}-{account.handle}-pw-{len(made) + 1:02d}!",
                                  login=f"social@{DOMAIN}", notes="Demo value: not a real password."))
        if key in TWO_FACTOR:
            made.append(create_secret(session, actor=it, keyring=keyring, account=account, kind="totp",
                                      label=f"{label} 2FA (IT phone)", value=_fake_seed(account.handle)))
            made.append(create_secret(session, actor=it, keyring=keyring, account=account, kind="recovery_codes",
                                      label=f"{label} recovery codes",
                                      value=[f"{FAKE}-{n:04d}-{account.handle[:4]}" for n in range(1, 9)]))
    key, label, days = TOKEN
    made.append(create_secret(session, actor=it, keyring=keyring, account=accounts[key], kind="api_token", label=label,
                              value=f"{FAKE}-token-{accounts[key].handle}", token_expires_at=utcnow().date() + timedelta(days=days)))
    return made


def _backdate(session: Session, accounts: dict[str, Account], secrets: list[Secret]) -> None:
    """Pretend the passwords were vaulted PASSWORD_AGES days ago (other kinds a month ago)."""
    now = utcnow()
    for secret in secrets:
        key = next(k for k, a in accounts.items() if a.id == secret.account_id)
        days = PASSWORD_AGES[key] if secret.kind == "password" else 30
        moment = now - timedelta(days=days)
        session.execute(update(SecretVersion).where(SecretVersion.secret_id == secret.id)
                        .values(created_at=moment, confirmed_at=moment))
    session.flush()


def _rotation(session: Session, keyring: Keyring, users: dict[str, User], people: dict[str, Person],
              accounts: dict[str, Account], secrets: list[Secret]) -> tuple[dict[str, int], Incident]:
    """Reveals, backdated versions, the scheduled rotation tasks, and one lockdown with its incident."""
    for person, account, reason in REVEALS:
        secret = next(s for s in secrets if s.account_id == accounts[account].id and s.kind == "password")
        reveal(session, actor=users[person], keyring=keyring, secret=secret, reason=reason, mfa_fresh=True)
    _backdate(session, accounts, secrets)
    schedule_due(session)
    key, summary = LOCKDOWN
    incident = lock_down(session, actor=users["i_sec"], account=accounts[key], summary=summary,
                         compromised_since=utcnow() - timedelta(days=2))
    counts = dict(session.execute(select(RotationTask.reason, func.count()).where(
        RotationTask.status.in_(("open", "staged"))).group_by(RotationTask.reason)).all())
    return counts, incident


def seed_demo(session: Session, kit: AuthKit, keyring: Keyring | None = None) -> SeedSummary:
    """Fill a fresh instance with the demo company (and, with a keyring, its fake credentials and
    rotation work); refuses when accounts exist. The caller commits."""
    _refuse_unless_fresh(session)
    people = _people(session)
    users, admin, admin_created = _logins(session, kit, people)
    versions = _policies(session)
    acceptances = _acceptances(session, people, versions)
    accounts = _accounts(session, people)
    # Vaulted before the grants, so the two revocations open exposure-driven rotations.
    secrets = _vault(session, keyring, users["i_mgr"], accounts) if keyring is not None else None
    grants = _grants(session, people, accounts, users, admin)
    campaign = _review(session, admin, users, people, grants)
    rotation_counts, incident = (_rotation(session, keyring, users, people, accounts, secrets)
                                 if keyring is not None and secrets is not None else ({}, None))
    review_counts = dict(session.execute(
        select(ReviewItem.decision.is_(None), func.count()).where(ReviewItem.campaign_id == campaign.id)
        .group_by(ReviewItem.decision.is_(None))
    ).all())

    summary = SeedSummary(
        departments=sorted({department for _, _, department, _, _ in PEOPLE}),
        people=len(people),
        accounts=len(accounts),
        platforms=sorted({PLATFORM_LABELS[a.platform] for a in accounts.values()}),
        policies=[f"{v.tier} v{v.version}" for v in versions.values()],
        acceptances=acceptances,
        grants={status: count for status, count in sorted(session.execute(
            select(Grant.status, func.count()).where(Grant.id.in_([g.id for g in grants.values()])).group_by(Grant.status)
        ).all())},
        time_bound=sum(1 for g in grants.values() if g.status == "active" and g.expires_at is not None),
        open_removals=len(REVOCATIONS),
        logins=[(users[key].email, sorted(users[key].roles)) for key, _ in LOGINS],
        review=campaign.name,
        review_items=sum(review_counts.values()),
        review_open=review_counts.get(True, 0),
        approver=admin.email,
        new_admin=users[FALLBACK_ADMIN].email if admin_created else None,
        secrets=len(secrets) if secrets is not None else None,
        rotation=rotation_counts,
        incident=f"{incident.account.display_name}: incident {incident.id}" if incident is not None else "",
    )
    audit.record(session, "demo.seeded", details=_summary_details(summary))
    session.flush()
    return summary


def _summary_details(summary: SeedSummary) -> dict[str, Any]:
    return {"people": summary.people, "accounts": summary.accounts, "grants": summary.grants,
            "logins": len(summary.logins), "acceptances": summary.acceptances, "secrets": summary.secrets,
            "rotation_tasks": summary.rotation, "backdated_versions": summary.secrets is not None}
