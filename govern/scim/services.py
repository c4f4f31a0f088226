"""SCIM rules: bearer tokens, and Users mapped onto directory people (deprovisioning = offboarding).

Parsing and serialising go through scim2-models (pydantic), which also applies PATCH operations
and accepts the identity providers' dialects (Entra ID's "Replace" and "False", Okta's PATCH
with no path and a value object). This module maps its User resource onto a Person:

- the person's email is the work (or primary, or first) email, else userName when it is an email;
  userName is kept as sent (an Entra ID UPN need not be an email); an email change (PUT, PATCH of
  emails or userName) changes the person's email, and an email someone else has is a 409;
- userName, externalId, emails, name and displayName are kept as sent on a ScimIdentity row, so
  they round-trip; the person's full name is name.formatted, else "givenName familyName", else
  displayName;
- the enterprise extension's employeeNumber and department map to the person's;
- active=false starts an immediate offboarding; active=true rehires a departed person (no grant
  comes back); DELETE offboards immediately and hides the resource from SCIM.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from scim2_models import Context, Email, EnterpriseUser, Meta, Name, PatchOp, User
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth import models as auth_models
from govern.db import utcnow
from govern.directory import services as directory
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, get_or_raise
from govern.offboarding import lifecycle
from govern.offboarding.checklist import close_linked_items
from govern.offboarding.models import Offboarding
from govern.offboarding.reading import open_offboarding_of
from govern.offboarding.scheduling import rehire_person
from govern.offboarding.settings import Settings
from govern.scim.models import ScimIdentity, ScimToken

ScimUser = User[EnterpriseUser]
TOKEN_PREFIX = "gscim_"  # noqa: S105 - a public marker, not a secret
MAX_TOKEN_NAME = 100
#: last_used_at is written at most this often, so a busy sync does not write on every call.
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_COUNT = 200


# --- tokens -------------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, actor: auth_models.User, name: str) -> tuple[ScimToken, str]:
    """A new bearer token for an identity provider; the plaintext is returned once, never stored."""
    if "admin" not in getattr(actor, "roles", ()):
        raise ForbiddenError("Only admins create SCIM tokens.")
    name = (name or "").strip()
    if not name or len(name) > MAX_TOKEN_NAME or any(ord(ch) < 32 for ch in name):
        raise InvalidError("Name the token after its identity provider, e.g. \"Okta production\".",
                           {"name": f"One line, at most {MAX_TOKEN_NAME} characters."})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ScimToken(name=name, token_digest=_digest(token), prefix=token[:12], created_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, "scim.token_created", actor=actor, target_type="scim_token", target_id=row.id,
                 details={"name": name, "prefix": row.prefix})
    return row, token


def revoke_token(session: Session, *, actor: auth_models.User, token: ScimToken) -> None:
    """Revoke a token: the identity provider's next call is refused."""
    if "admin" not in getattr(actor, "roles", ()):
        raise ForbiddenError("Only admins revoke SCIM tokens.")
    if token.revoked_at is not None:
        raise ConflictError("This token is revoked already.")
    token.revoked_at = utcnow()
    token.revoked_by_id = actor.id
    session.flush()
    audit.record(session, "scim.token_revoked", actor=actor, target_type="scim_token", target_id=token.id,
                 details={"name": token.name, "prefix": token.prefix})
    close_linked_items(session, ref_type="scim_token", ref_id=token.id, actor=actor)


def list_tokens(session: Session) -> list[ScimToken]:
    """Every token, live ones first (a handful per company)."""
    return list(session.scalars(select(ScimToken).order_by(ScimToken.revoked_at.is_not(None), ScimToken.id.desc())))


def get_token(session: Session, token_id: int) -> ScimToken:
    """Return the token row or raise NotFoundError."""
    return get_or_raise(session, ScimToken, token_id, "No such token.")


@dataclass(frozen=True)
class ScimPrincipal:
    """An identity provider authenticated by a bearer token; acts in audit events as "scim:<name> (token #<id>)"."""

    token_id: int
    name: str
    id: None = None
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"scim"}))
    is_authenticated: bool = True

    @property
    def email(self) -> str:
        """The audit label: the provider's name and which of its tokens."""
        return f"scim:{self.name} (token #{self.token_id})"


def authenticate(session: Session, token: str | None) -> ScimPrincipal | None:
    """The principal of a live token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ScimToken).where(ScimToken.token_digest == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
        row.last_used_at = now
        session.commit()
    return ScimPrincipal(token_id=row.id, name=row.name)


# --- users -----------------------------------------------------------------------------------------


class ScimError(Exception):
    """An error answered in the SCIM error format."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def _identity(session: Session, person: Person) -> ScimIdentity | None:
    return session.get(ScimIdentity, person.id)


def find_user(session: Session, user_id: str) -> tuple[Person, ScimIdentity | None]:
    """The person behind a SCIM id; deleted ones are not found."""
    if not user_id.isdecimal() or len(user_id) > 9:
        raise ScimError(404, f"User {user_id[:40]} not found.")
    person = session.get(Person, int(user_id))
    identity = session.get(ScimIdentity, int(user_id)) if person else None
    if person is None or (identity is not None and identity.deleted_at is not None):
        raise ScimError(404, f"User {user_id} not found.")
    return person, identity


def is_active(session: Session, person: Person) -> bool:
    """SCIM's active: an active person whose offboarding (if any) has not started."""
    return person.status == "active"


def to_resource(session: Session, person: Person, identity: ScimIdentity | None, location: str) -> ScimUser:
    """The SCIM User of a person."""
    if identity is None:
        # A person govern knew before the provider: described from the directory.
        name: Name | None = Name(formatted=person.full_name)
        display_name: str | None = person.full_name
        emails: list[Email] | None = [Email(value=person.email, type=Email.Type.work, primary=True)]
    else:
        # What the provider sent, as sent (an attribute it removed stays removed).
        has_name = identity.formatted_name or identity.given_name or identity.family_name
        name = Name(formatted=identity.formatted_name, given_name=identity.given_name,
                    family_name=identity.family_name) if has_name else None
        display_name = identity.display_name
        emails = [Email.model_validate(e) for e in json.loads(identity.emails_json)] if identity.emails_json else None
    user = ScimUser(
        id=str(person.id), external_id=identity.external_id if identity else None,
        user_name=(identity.user_name if identity else None) or person.email,
        name=name, display_name=display_name,
        title=person.title, active=is_active(session, person), emails=emails,
        meta=Meta(resource_type="User", created=person.created_at, last_modified=person.updated_at, location=location),
    )
    if person.employee_id or person.department:
        user[EnterpriseUser] = EnterpriseUser(employee_number=person.employee_id, department=person.department)
    return user


_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email_of(user: ScimUser) -> str:
    """The person's email: the work (else primary, else first) email, else a userName that is an email.

    The emails win over userName: an identity provider that changes someone's address changes the
    email and may leave userName (an Entra ID UPN, an Okta login) as it was. A given email that is
    not an address is refused rather than skipped, so a typo never leaves the old address in place.
    """
    emails = [e for e in user.emails or [] if e.value]
    ranked = sorted(emails, key=lambda e: (e.type != Email.Type.work, not e.primary))
    if ranked:
        candidate = str(ranked[0].value).strip()
        if not _EMAIL_RE.match(candidate):
            raise ScimError(400, f"The email {candidate[:100]!r} is not an email address.", "invalidValue")
        return candidate.lower()
    if _EMAIL_RE.match((user.user_name or "").strip()):
        return (user.user_name or "").strip().lower()
    raise ScimError(400, "userName (or a work email) must be an email address: govern knows people by their work email.",
                    "invalidValue")


def _full_name(user: ScimUser, email: str) -> str:
    name = user.name
    if name is not None and name.formatted:
        return name.formatted.strip()
    parts = " ".join(p for p in ((name.given_name if name else None), (name.family_name if name else None)) if p)
    return (parts or user.display_name or email.split("@", 1)[0]).strip()[:200]


def _apply(session: Session, *, actor: ScimPrincipal, person: Person | None, user: ScimUser,
           settings: Settings) -> Person:
    """Write a User's values onto a new or existing person (create and replace share this)."""
    email = _email_of(user)
    enterprise = user[EnterpriseUser]
    data = directory.PersonInput(
        full_name=_full_name(user, email), email=email,
        employee_id=(enterprise.employee_number if enterprise else None) or "",
        department=(enterprise.department if enterprise else None) or "",
        title=user.title or "",
        manager=person.manager.email if person is not None and person.manager is not None else "",
        status=person.status if person is not None else "active",
        start_date=person.start_date if person is not None else None,
        end_date=person.end_date if person is not None else None,
    )
    try:
        if person is None:
            person = directory.create_person(
                session, actor=actor, full_name=data.full_name, email=data.email, employee_id=data.employee_id or None,
                department=data.department or None, title=data.title or None, source="scim")
        else:
            directory.update_person(session, actor=actor, person=person, data=data)
    except InvalidError as exc:
        reasons = exc.reasons
        uniqueness = any("already has" in message for message in reasons.values())
        raise ScimError(409 if uniqueness else 400, " ".join(reasons.values()) or exc.message,
                        "uniqueness" if uniqueness else "invalidValue") from None
    identity = _identity(session, person) or ScimIdentity(person_id=person.id)
    identity.user_name = (user.user_name or email).strip()[:320]
    identity.emails_json = json.dumps([e.model_dump(scim_ctx=None, exclude_none=True, mode="json") for e in user.emails]) \
        if user.emails else None
    identity.external_id = user.external_id
    identity.given_name = user.name.given_name if user.name else None
    identity.family_name = user.name.family_name if user.name else None
    identity.formatted_name = user.name.formatted if user.name else None
    identity.display_name = user.display_name
    identity.deleted_at = None
    identity.updated_at = utcnow()
    session.add(identity)
    session.flush()
    _set_active(session, actor=actor, person=person, active=user.active is not False, settings=settings)
    return person


def _set_active(session: Session, *, actor: ScimPrincipal, person: Person, active: bool,
                settings: Settings) -> None:
    """active=false offboards at once (bringing a scheduled offboarding forward); active=true rehires."""
    current = open_offboarding_of(session, person.id)
    try:
        if not active:
            lifecycle.offboard_now(session, actor=actor, person=person, settings=settings, origin="scim",
                                   note="Deactivated by the identity provider.")
        elif person.status == "departed" or (person.status == "leaving" and current is None):
            rehire_person(session, actor=actor, person=person)
    except ConflictError as exc:
        raise ScimError(409, exc.message) from None


def _user_name_taken(session: Session, user_name: str, person_id: int | None) -> bool:
    query = select(ScimIdentity.person_id).where(func.lower(ScimIdentity.user_name) == user_name.strip().lower(),
                                                 ScimIdentity.deleted_at.is_(None))
    if person_id is not None:
        query = query.where(ScimIdentity.person_id != person_id)
    return session.scalar(query.limit(1)) is not None


def create_user(session: Session, *, actor: ScimPrincipal, user: ScimUser, settings: Settings) -> Person:
    """POST /Users: a new person (source scim); a user the provider had deleted comes back."""
    email = _email_of(user)
    if user.user_name and _user_name_taken(session, user.user_name, None):
        raise ScimError(409, f"A user with userName {user.user_name[:100]} exists already.", "uniqueness")
    existing = directory.find_person_by_email(session, email)
    if existing is not None:
        identity = _identity(session, existing)
        if identity is None or identity.deleted_at is None:
            raise ScimError(409, f"A user with userName {email} exists already.", "uniqueness")
        return _apply(session, actor=actor, person=existing, user=user, settings=settings)
    person = _apply(session, actor=actor, person=None, user=user, settings=settings)
    audit.record(session, "scim.user_created", actor=actor, target_type="person", target_id=person.id,
                 details={"email": person.email, "active": user.active is not False})
    return person


def replace_user(session: Session, *, actor: ScimPrincipal, person: Person, user: ScimUser,
                 settings: Settings) -> Person:
    """PUT /Users/<id>: every attribute as given."""
    if user.id is not None and user.id != str(person.id):
        raise ScimError(400, "The id in the body does not match the URL.", "mutability")
    if user.user_name and _user_name_taken(session, user.user_name, person.id):
        raise ScimError(409, f"A user with userName {user.user_name[:100]} exists already.", "uniqueness")
    return _apply(session, actor=actor, person=person, user=user, settings=settings)


def patch_user(session: Session, *, actor: ScimPrincipal, person: Person, identity: ScimIdentity | None,
               body: dict[str, Any], location: str, settings: Settings) -> Person:
    """PATCH /Users/<id>: apply the operations to the current resource, then store the result."""
    patch = PatchOp[ScimUser].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    resource = to_resource(session, person, identity, location)
    if patch.patch(resource):
        return _apply(session, actor=actor, person=person, user=resource, settings=settings)
    return person


def delete_user(session: Session, *, actor: ScimPrincipal, person: Person, settings: Settings) -> None:
    """DELETE /Users/<id>: an immediate offboarding; the person stays in the directory, hidden from SCIM."""
    _set_active(session, actor=actor, person=person, active=False, settings=settings)
    identity = _identity(session, person) or ScimIdentity(person_id=person.id)
    identity.deleted_at = utcnow()
    session.add(identity)
    session.flush()
    audit.record(session, "scim.user_deleted", actor=actor, target_type="person", target_id=person.id,
                 details={"email": person.email})


_FILTER = re.compile(r'^\s*(userName|externalId|emails\.value|emails\[type eq "work"\]\.value|id)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$',
                     re.IGNORECASE)


def list_users(session: Session, *, filter_text: str | None, start_index: int, count: int) -> tuple[list[tuple[Person, ScimIdentity | None]], int]:
    """People as SCIM Users, filtered by an equality on userName, externalId, emails or id."""
    deleted = select(ScimIdentity.person_id).where(ScimIdentity.deleted_at.is_not(None))
    query = select(Person, ScimIdentity).outerjoin(ScimIdentity, ScimIdentity.person_id == Person.id).where(Person.id.not_in(deleted))
    if filter_text:
        match = _FILTER.match(filter_text)
        if match is None:
            raise ScimError(400, 'Only equality filters are supported: userName eq "...", externalId eq "...", '
                                 'emails.value eq "..." or id eq "...".', "invalidFilter")
        attribute, value = match.group(1).lower(), match.group(2).replace('\\"', '"')
        if attribute == "externalid":
            query = query.where(ScimIdentity.external_id == value)
        elif attribute == "id":
            query = query.where(Person.id == (int(value) if value.isdecimal() and len(value) < 10 else -1))
        elif attribute == "username":
            query = query.where(or_(func.lower(ScimIdentity.user_name) == value.strip().lower(),
                                    and_(ScimIdentity.user_name.is_(None), Person.email == value.strip().lower())))
        else:
            query = query.where(Person.email == value.strip().lower())
    total = session.scalar(select(func.count()).select_from(query.with_only_columns(Person.id).subquery())) or 0
    count = max(0, min(count, MAX_COUNT))
    rows = session.execute(query.order_by(Person.id).limit(count).offset(max(start_index, 1) - 1)).all() if count else []
    return [(person, identity) for person, identity in rows], total


def open_offboarding(session: Session, person: Person) -> Offboarding | None:
    """The person's open offboarding (for tests and the admin page)."""
    return open_offboarding_of(session, person.id)


__all__ = ["ScimError", "ScimPrincipal", "ScimUser", "authenticate", "create_token", "create_user", "delete_user",
           "find_user", "list_users", "patch_user", "replace_user", "revoke_token", "to_resource"]
