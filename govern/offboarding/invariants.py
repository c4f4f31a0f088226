"""The leaver invariants: what must hold for every person who is leaving or has departed.

A person becomes ``leaving`` only when their offboarding starts and ``departed`` only when it
completes (see ``govern.offboarding.lifecycle``); the start blocks the login, ends the sessions,
revokes the grants and cancels the requests. So, whatever path changed a person's status:

- no leaving or departed person holds an active grant;
- no leaving or departed person has a pending grant request;
- no leaving or departed person has an active login, or an unused setup secret for one;
- no leaving or departed person has a live web session;
- every leaving person has an offboarding in progress;
- every departed person has a completed offboarding.

``find_violations`` checks them all with one query per invariant, whatever the number of people.
An invariant is one entry of ``CHECKS``: a kind, a sentence, and a query returning
(person id, full name, email, reference, detail) rows; personal API tokens add theirs there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, literal, select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account
from govern.auth.models import SetupToken, User, WebSession
from govern.auth.users import active_users_with_roles
from govern.db import utcnow
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.notifications import services as notifications
from govern.offboarding.models import Offboarding

#: The statuses of someone whose access must be gone.
GONE = ("leaving", "departed")
#: At most this many violations of each kind are listed (each kind is still detected).
MAX_PER_KIND = 1000


@dataclass(frozen=True)
class Violation:
    """One person breaking one invariant; ``ref`` names the row at fault (a grant, a login...)."""

    kind: str
    person_id: int
    full_name: str
    email: str
    ref: str
    detail: str

    @property
    def key(self) -> str:
        """What identifies this violation across runs (no names: they may change)."""
        return f"{self.kind}:{self.person_id}:{self.ref}"

    def line(self) -> str:
        """One line for the CLI, the jobs log and the admins' notice."""
        return f"{self.kind}: {self.full_name} <{self.email}> (person #{self.person_id}): {self.detail}"


@dataclass(frozen=True)
class Check:
    """One invariant: its kind, the rule in words, and the query of the rows that break it."""

    kind: str
    rule: str
    query: Callable[[datetime], Select[*tuple[Any, ...]]]


_PERSON = (Person.id, Person.full_name, Person.email)


def _gone() -> ColumnElement[bool]:
    return Person.status.in_(GONE)


def _grants(status: str) -> Callable[[datetime], Select[*tuple[Any, ...]]]:
    def query(_now: datetime) -> Select[*tuple[Any, ...]]:
        return (select(*_PERSON, Grant.id, Grant.role_code, Account.display_name)
                .join(Grant, Grant.person_id == Person.id).join(Account, Account.id == Grant.account_id)
                .where(_gone(), Grant.status == status).order_by(Person.id, Grant.id))
    return query


def _active_logins(_now: datetime) -> Select[*tuple[Any, ...]]:
    return (select(*_PERSON, User.id, User.email, literal(None))
            .join(User, User.person_id == Person.id).where(_gone(), User.is_active.is_(True)).order_by(Person.id))


def _pending_setups(now: datetime) -> Select[*tuple[Any, ...]]:
    return (select(*_PERSON, SetupToken.id, SetupToken.purpose, literal(None))
            .join(User, User.person_id == Person.id).join(SetupToken, SetupToken.user_id == User.id)
            .where(_gone(), SetupToken.used_at.is_(None), SetupToken.revoked_at.is_(None), SetupToken.expires_at > now)
            .order_by(Person.id, SetupToken.id))


def _sessions(_now: datetime) -> Select[*tuple[Any, ...]]:
    # Sessions are deleted when they end: any row bound to the login is one that still works.
    return (select(*_PERSON, WebSession.public_id, User.id, literal(None))
            .join(User, User.person_id == Person.id).join(WebSession, WebSession.user_id == User.id)
            .where(_gone()).order_by(Person.id, WebSession.public_id))


def _without_offboarding(status: str, offboarding_status: str) -> Callable[[datetime], Select[*tuple[Any, ...]]]:
    def query(_now: datetime) -> Select[*tuple[Any, ...]]:
        has = exists().where(Offboarding.person_id == Person.id, Offboarding.status == offboarding_status)
        return (select(*_PERSON, literal(None), literal(None), literal(None))
                .where(Person.status == status, ~has).order_by(Person.id))
    return query


CHECKS: tuple[Check, ...] = (
    Check("active_grant", "No leaving or departed person holds an active grant.", _grants("active")),
    Check("pending_request", "No leaving or departed person has a pending grant request.", _grants("requested")),
    Check("active_login", "No leaving or departed person has an active login.", _active_logins),
    Check("pending_setup", "No leaving or departed person has an unused setup secret.", _pending_setups),
    Check("live_session", "No leaving or departed person has a live session.", _sessions),
    Check("leaving_without_offboarding", "Every leaving person has an offboarding in progress.",
          _without_offboarding("leaving", "in_progress")),
    Check("departed_without_offboarding", "Every departed person has a completed offboarding.",
          _without_offboarding("departed", "completed")),
)


def _detail(kind: str, a: Any, b: Any, c: Any) -> tuple[str, str]:
    """The reference and the sentence of a violation, from the query's last three columns."""
    if kind == "active_grant":
        return f"grant:{a}", f"active grant #{a} ({b} on {c})"
    if kind == "pending_request":
        return f"grant:{a}", f"pending request #{a} ({b} on {c})"
    if kind == "active_login":
        return f"user:{a}", f"login #{a} ({b}) is active"
    if kind == "pending_setup":
        return f"setup:{a}", f"setup secret #{a} ({b}) can still be redeemed"
    if kind == "live_session":
        return f"session:{a}", f"login #{b} has a live session"
    if kind == "leaving_without_offboarding":
        return "person", "is leaving with no offboarding in progress"
    return "person", "has departed with no completed offboarding"


def find_violations(session: Session, *, now: datetime | None = None,
                    limit: int = MAX_PER_KIND) -> list[Violation]:
    """Every violation of the leaver invariants (at most ``limit`` of each kind), by kind then person."""
    now = now or utcnow()
    found: list[Violation] = []
    for check in CHECKS:
        for person_id, full_name, email, a, b, c in session.execute(check.query(now).limit(limit)):
            ref, detail = _detail(check.kind, a, b, c)
            found.append(Violation(check.kind, person_id, full_name, email, ref, detail))
    return found


@dataclass
class Report:
    """What the jobs step found and whether the admins were told."""

    violations: list[Violation] = field(default_factory=list)
    notified: int = 0

    def counts(self) -> dict[str, int]:
        """Violations by kind, for the job run (kinds with none are left out), and the total."""
        counts: dict[str, int] = {}
        for violation in self.violations:
            counts[violation.kind] = counts.get(violation.kind, 0) + 1
        return {"violations": len(self.violations), **counts, "admins_notified": self.notified}


def digest(violations: list[Violation]) -> str:
    """A short fingerprint of a set of violations: the same set gives the same digest."""
    return hashlib.sha256("\n".join(sorted(v.key for v in violations)).encode()).hexdigest()[:16]


#: The notice lists at most this many violations; `govern check` lists them all.
NOTICE_LINES = 20


def check_and_notify(session: Session, *, now: datetime | None = None, base_url: str = "") -> Report:
    """Find violations and tell every active admin, in govern and by email, once per distinct set.

    The same violations found again by the next run notify nobody: the outbox's dedupe key is the
    set's digest. A new or changed set is a new notice (and one audit event).
    """
    report = Report(find_violations(session, now=now))
    if not report.violations:
        return report
    key = digest(report.violations)
    admins = active_users_with_roles(session, ["admin"])
    lines = [v.line() for v in report.violations[:NOTICE_LINES]]
    if len(report.violations) > NOTICE_LINES:
        lines.append(f"... and {len(report.violations) - NOTICE_LINES} more: run `govern check` on the server.")
    title = f"Leaver check: {len(report.violations)} violation(s) of the offboarding rules"
    body = ("Someone who is leaving or has departed still has access, or left without an offboarding. "
            "Open their offboarding (or start one) and finish it.\n\n" + "\n".join(lines))
    for user in admins:
        queued = notifications.queue_email(session, to=user.email, subject=f"[govern] {title}", kind="invariants.violated",
                                           body_text=f"Hello {user.person.full_name},\n\n{body}\n\nOpen govern: "
                                                     f"{base_url}/offboarding\n\n-- \ngovern: official social media "
                                                     "accounts under control",
                                           dedupe_key=f"invariants:{key}:{user.id}")
        if queued is None:
            continue  # told about this very set before
        notifications.notify(session, user=user, kind="invariants.violated", title=title, link="/offboarding",
                             body="\n".join(lines))
        report.notified += 1
    if report.notified:
        audit.record(session, "invariants.violated", outcome="failure", details={
            "digest": key, "violations": len(report.violations), "counts": report.counts(),
            "admins_notified": report.notified})
    session.flush()
    return report
