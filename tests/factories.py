"""Plain factory functions and helpers for tests."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from govern.auth.kit import AuthKit
from govern.auth.models import User, UserRole
from govern.crypto import totp
from govern.db import utcnow
from govern.directory.models import Person

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

    from govern.offboarding.models import MANUAL_ORDER, OffboardingItem
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
    from govern.accounts.models import Account

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
    from sqlalchemy import func, select

    from govern.policies.models import PolicyVersion

    if version is None:
        version = (db.scalar(select(func.max(PolicyVersion.version)).where(PolicyVersion.tier == tier)) or 0) + 1
    row = PolicyVersion(tier=tier, version=version, title=f"Social media policy ({tier}) v{version}", body_markdown=body)
    db.add(row)
    db.flush()
    return row


def accept_policy(db: Session, person: Person, policy: Any) -> None:
    from govern.policies.models import Acknowledgement

    db.add(Acknowledgement(person_id=person.id, policy_version_id=policy.id))
    db.flush()


def make_grant(db: Session, person: Person, account: Any, role_code: str = "publisher", status: str = "active", **fields: Any) -> Any:
    """A grant row as it would be after the rules passed (tests of other areas start from here)."""
    from govern.grants.models import Grant

    grant = Grant(person_id=person.id, account_id=account.id, role_code=role_code, status=status,
                  reason=fields.pop("reason", "test"), starts_at=fields.pop("starts_at", utcnow()), **fields)
    db.add(grant)
    db.flush()
    return grant
