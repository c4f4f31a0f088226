"""Plain factory functions for tests, and Company: the one builder of the small company a test needs."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.audit.models import AuditChainHead, AuditEvent
from govern.audit.services import event_content, link_hash
from govern.auth.kit import AuthKit
from govern.auth.models import User, UserRole
from govern.crypto import totp
from govern.crypto.auditkeys import AuditKeys, ChainKey
from govern.crypto.keyring import Keyring
from govern.db import utcnow
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.offboarding.models import MANUAL_ORDER, OffboardingItem
from govern.policies.models import Acknowledgement, PolicyVersion
from govern.vault.models import Secret
from govern.vault.versions import create_secret
from tests.support import TEST_AUDIT_KEYS

_counter = itertools.count(1)
DEFAULT_PASSWORD = "correct horse battery staple 2026"


@dataclass
class TestUser:
    """A user with what a test needs to sign in as them."""

    user: User
    password: str
    seed: str

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def email(self) -> str:
        return self.user.email


def make_person(db: Session, **fields: Any) -> Person:
    """A person; ``status="leaving"`` or ``"departed"`` offboards them for real (see offboard)."""
    n = next(_counter)
    status = fields.pop("status", "active")
    person = Person(full_name=fields.pop("full_name", f"Person {n}"), email=fields.pop("email", f"person{n}@example.com"), **fields)
    db.add(person)
    db.flush()
    if status != "active":
        offboard(db, person, status)
    return person


def offboard(db: Session, person: Person, status: str = "departed") -> Any:
    """Make ``person`` leaving (an offboarding in progress, one HR item open) or departed (completed).

    The only way a person leaves is an offboarding: the leaver invariants checked after every
    test (tests/conftest.py) hold for the people this makes.
    """
    from datetime import timedelta

    from govern.offboarding.scheduling import schedule_offboarding
    from govern.offboarding.settings import Settings
    from govern.offboarding.start import start_offboarding
    assert status in ("leaving", "departed"), status
    run = schedule_offboarding(db, actor=None, person=person, effective_at=utcnow() + timedelta(hours=1),
                                           settings=Settings())
    if status == "leaving":
        db.add(OffboardingItem(offboarding_id=run.id, key="manual:1", kind="manual", owner="hr",
                               title="Collect the laptop", sort_order=MANUAL_ORDER))
        db.flush()
    start_offboarding(db, run)
    assert person.status == status, person.status
    return run


def make_user(db: Session, kit: AuthKit, *, roles: tuple[str, ...] = (), password: str = DEFAULT_PASSWORD,
              email: str | None = None, with_mfa: bool = True, full_name: str | None = None) -> TestUser:
    n = next(_counter)
    email = email or f"user{n}@example.com"
    person = make_person(db, email=email, full_name=full_name or f"User {n}")
    user = User(person=person, email=email, password_hash=kit.hashing.hash(password), password_changed_at=utcnow())
    db.add(user)
    db.flush()
    seed = totp.new_seed()
    if with_mfa:
        user.mfa_seed_sealed = kit.mfa_box.seal(seed.encode(), f"govern:users.mfa_seed:{user.id}".encode())
        user.mfa_enabled_at = utcnow()
    for role in roles:
        db.add(UserRole(user_id=user.id, role=role))
    db.commit()
    db.refresh(user)
    return TestUser(user, password, seed)


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a page's form."""
    response = client.get(path)
    return csrf_from(response.get_data(as_text=True))


def fresh_code(db: Session, who: TestUser) -> str:
    """A TOTP code for the current step, after forgetting the last accepted step.

    Only for tests that sign the same user in repeatedly within 30 seconds; replay tests
    never use it.
    """
    db.execute(update(User).where(User.id == who.id).values(last_totp_step=0))
    db.commit()
    return totp.code_at(who.seed)


def login(client: FlaskClient, db: Session, who: TestUser, *, next_path: str = "") -> Any:
    """Sign in through the real pages: password, then a TOTP code."""
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token, "email": who.email, "password": who.password, "next": next_path})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/login/code")
    response = client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": fresh_code(db, who)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def signed_in(app: Flask, db: Session, kit: AuthKit, *roles: str) -> tuple[TestUser, FlaskClient]:
    """A new user with ``roles``, signed in on a fresh client."""
    who = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, who)
    return who, client


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, *, token_page: str = "/account", **kwargs: Any) -> Any:
    """POST with the session's CSRF token."""
    payload = {"csrf_token": csrf_token(client, token_page), **(data or {})}
    return client.post(path, data=payload, **kwargs)


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("govern_session")
    return cookie.value if cookie else None


def wait_for_next_step() -> None:
    """Sleep into the next TOTP step (used sparingly)."""
    time.sleep(totp.PERIOD - (time.time() % totp.PERIOD) + 0.05)


# --- registry -------------------------------------------------------------------------------------


def make_account(db: Session, **fields: Any) -> Any:
    """An active Instagram account unless told otherwise."""
    n = next(_counter)
    handle = fields.pop("handle", f"acct{n}")
    platform = fields.pop("platform", "instagram")
    account = Account(platform=platform, handle=handle, url=fields.pop("url", f"https://www.instagram.com/{handle}"),
                      display_name=fields.pop("display_name", f"Account {n}"), **fields)
    db.add(account)
    db.flush()
    return account


def publish_policy(db: Session, tier: str = "standard", version: int | None = None, body: str = "Be kind. Keep credentials secret.") -> Any:
    """Publish a policy version directly (the policies area has the real flow)."""
    if version is None:
        version = (db.scalar(select(func.max(PolicyVersion.version)).where(PolicyVersion.tier == tier)) or 0) + 1
    row = PolicyVersion(tier=tier, version=version, title=f"Social media policy ({tier}) v{version}", body_markdown=body)
    db.add(row)
    db.flush()
    return row


def accept_policy(db: Session, person: Person, policy: Any) -> None:
    db.add(Acknowledgement(person_id=person.id, policy_version_id=policy.id))
    db.flush()


def make_grant(db: Session, person: Person, account: Any, role_code: str = "publisher", status: str = "active", **fields: Any) -> Any:
    """A grant row as it would be after the rules passed (tests of other areas start from here)."""
    grant = Grant(person_id=person.id, account_id=account.id, role_code=role_code, status=status,
                  reason=fields.pop("reason", "test"), starts_at=fields.pop("starts_at", utcnow()), **fields)
    db.add(grant)
    db.flush()
    return grant


# --- the audit trail ------------------------------------------------------------------------------


def chain_head(session: Session) -> tuple[int, str]:
    """The head row: (last_event_id, last_hash)."""
    head = session.execute(select(AuditChainHead.last_event_id, AuditChainHead.last_hash)).one()
    return head.last_event_id, head.last_hash


#: The chain key of every test app (tests/support.py's TEST_AUDIT_KEYS).
TEST_CHAIN_KEY = AuditKeys.from_json(TEST_AUDIT_KEYS).chain_key()


def append_events(session: Session, count: int, *, action: str = "test.bulk", start: datetime | None = None,
                  step: timedelta = timedelta(seconds=1), key: ChainKey | None = TEST_CHAIN_KEY,
                  **fields: Any) -> list[int]:
    """Append ``count`` correctly chained events in one bulk INSERT (far faster than record()).

    They are keyed with the test apps' audit key, as record() keys them; ``key=None`` writes plain links.

    ``fields`` may set actor_label, actor_user_id, target_type, target_id or details_json for every
    event; occurred_at starts at ``start`` and grows by ``step``. Returns the new ids, oldest first.
    """
    last_id, prev = chain_head(session)
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    base: dict[str, Any] = {"actor_user_id": None, "actor_label": "test", "ip": None, "session_ref": None,
                            "request_id": None, "action": action, "target_type": None, "target_id": None,
                            "outcome": "success", "details_json": "{}"}
    base.update(fields)
    rows = []
    for n in range(1, count + 1):
        row = {**base, "id": last_id + n, "occurred_at": start + step * (n - 1)}
        content = event_content(event_id=row["id"], **{k: v for k, v in row.items() if k != "id"})
        row["prev_hash"], row["hash"] = prev, link_hash(prev, content, key)
        row["key_id"] = key.key_id if key else None
        prev = row["hash"]
        rows.append(row)
    if rows:
        session.execute(insert(AuditEvent.__table__), rows)
        session.execute(update(AuditChainHead).where(AuditChainHead.id == 1)
                        .values(last_event_id=last_id + count, last_hash=prev))
    session.flush()
    return [row["id"] for row in rows]


def allow_tampering(bind: Session | Connection) -> None:
    """Switch off the append-only triggers inside the current transaction (undone by rollback)."""
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    if dialect.name == "postgresql":
        bind.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    else:
        bind.execute(text("DROP TRIGGER audit_events_no_update"))
        bind.execute(text("DROP TRIGGER audit_events_no_delete"))


# --- the company ----------------------------------------------------------------------------------

#: Whoever holds, owns or manages: a user who signs in, their User row, or a person without a login.
Someone = TestUser | User | Person


def person_of(someone: Someone) -> Person:
    """The person behind a TestUser, a User or a Person."""
    if isinstance(someone, TestUser):
        return someone.user.person
    return someone.person if isinstance(someone, User) else someone


class Company:
    """The small company a test builds, each part kept under the name it was given.

        company.add_staff("admin", "manager")             # company.admin, company.manager: users with that app role
        company.add_user("olga", "manager", full_name="Olga Owner", department="Marketing")
        company.add_person("report", full_name="Rita Report", manager=company.manager)
        company.add_account("account", owner=company.manager, display_name="Acme Instagram")
        company.add_grant("report_publisher", company.report, company.account, "publisher")
        company.add_policies(accepted_by=[company.report])   # company.standard, company.privileged
        company.commit()

    Users are TestUsers (``.user`` is the row a service takes as its actor; ``login`` signs them
    in); people, accounts, grants, policies and secrets are the rows themselves. Every builder
    flushes and returns what it made; ``commit()`` before a test client reads it.
    The ``company`` fixture (tests/conftest.py) gives an empty one; an area's conftest or a test
    module may override ``company`` to build the cast its tests share (tests/reviews/conftest.py).
    """

    def __init__(self, app: Flask, db: Session) -> None:
        self.app, self.db = app, db
        self.kit: AuthKit = app.extensions["govern.auth"]

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"the company has no {name!r} yet: build it first (company.add_user(), add_person() ...)")

    def add(self, name: str, thing: Any) -> Any:
        """Keep ``thing`` as company.<name>; a row not yet in the session is added and flushed."""
        assert name not in vars(self) and not hasattr(type(self), name), f"the company already has a {name!r}"
        if hasattr(type(thing), "__table__") and thing not in self.db:
            self.db.add(thing)
            self.db.flush()
        setattr(self, name, thing)
        return thing

    def add_user(self, name: str, *roles: str, full_name: str | None = None, email: str | None = None,
                 manager: Someone | None = None, **person_fields: Any) -> TestUser:
        """A user with MFA and these app roles; ``manager`` and ``person_fields`` go to their person."""
        who = make_user(self.db, self.kit, roles=roles, full_name=full_name, email=email)
        if manager is not None:
            person_fields["manager_id"] = person_of(manager).id
        for field, value in person_fields.items():
            setattr(who.user.person, field, value)
        self.db.flush()
        return self.add(name, who)

    def add_staff(self, *roles: str) -> Company:
        """One user per app role, named for it: ``add_staff("it", "hr")`` makes company.it and company.hr."""
        for role in roles:
            self.add_user(role, role)
        return self

    def add_person(self, name: str, *, manager: Someone | None = None, **fields: Any) -> Person:
        """A person without a login (``status="departed"`` offboards them for real, see make_person)."""
        if manager is not None:
            fields["manager_id"] = person_of(manager).id
        return self.add(name, make_person(self.db, **fields))

    def add_account(self, name: str, *, owner: Someone | None = None, **fields: Any) -> Account:
        """An account (Instagram unless told otherwise); ``owner`` is its business owner."""
        if owner is not None:
            fields["business_owner_id"] = person_of(owner).id
        return self.add(name, make_account(self.db, **fields))

    def add_grant(self, name: str, holder: Someone, account: Account, role_code: str = "publisher", **fields: Any) -> Grant:
        """A grant row as the rules would have left it (active unless ``status`` says otherwise)."""
        return self.add(name, make_grant(self.db, person_of(holder), account, role_code, **fields))

    def add_policy(self, tier: str = "standard") -> PolicyVersion:
        """Publish a version of the ``tier`` policy, kept as company.<tier>."""
        return self.add(tier, publish_policy(self.db, tier))

    def add_policies(self, *, accepted_by: tuple[Someone, ...] | list[Someone] = ()) -> tuple[PolicyVersion, PolicyVersion]:
        """Publish company.standard and company.privileged; ``accepted_by`` accepted both."""
        standard, privileged = self.add_policy("standard"), self.add_policy("privileged")
        for someone in accepted_by:
            accept_policy(self.db, person_of(someone), standard)
            accept_policy(self.db, person_of(someone), privileged)
        return standard, privileged

    def add_secret(self, name: str, ring: Keyring, *, account: Account | None = None, kind: str = "password",
                   value: str | list[str] = "Old-Password-123!", label: str | None = None, by: TestUser | None = None,
                   **fields: Any) -> Secret:
        """A secret vaulted through the vault's service, by company.it unless ``by`` says who."""
        actor = (by or self.it).user
        secret = create_secret(self.db, actor=actor, keyring=ring, account=account or self.account, kind=kind,
                                     label=label or f"{kind} secret", value=value, **fields)
        return self.add(name, secret)

    def account_team(self) -> Company:
        """IT, an admin, an auditor, a manager who owns company.account, its publisher and analyst, a
        stranger, and company.other_account: the cast of the vault, rotation and audit sentence tests."""
        self.add_staff("it", "admin", "auditor", "manager")
        self.add_user("publisher")
        self.add_user("analyst")
        self.add_user("stranger")
        self.add_account("account", owner=self.manager, display_name="Acme Instagram")
        self.add_account("other_account", display_name="Other account")
        self.add_grant("publisher_grant", self.publisher, self.account, "publisher")
        self.add_grant("analyst_grant", self.analyst, self.account, "analyst")
        return self.commit()

    def client_for(self, who: TestUser) -> FlaskClient:
        """A fresh test client signed in as ``who`` (commits first, so the app sees the company)."""
        self.commit()
        client = self.app.test_client()
        login(client, self.db, who)
        return client

    def commit(self) -> Company:
        """Commit what was built (the test's outer transaction still rolls it all back)."""
        self.db.commit()
        return self
