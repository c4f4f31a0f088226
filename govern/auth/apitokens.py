"""Tokens of the API (/api/v1): scopes, creating, approving, revoking, and who a token acts as.

A token is shown once and stored as a SHA-256 digest. Its text starts with a prefix secret scanners
know (``govp_`` personal, ``govs_`` service) and ends with a CRC-32 of the rest, so a scanner (and
govern) can tell a real-looking token from noise without asking the database.
"""

from __future__ import annotations

import binascii
import json
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Session, joinedload

from govern import audit
from govern.auth.models import APP_ROLES, ApiToken, User
from govern.crypto.tokens import token_digest
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError

PREFIXES = {"personal": "govp_", "service": "govs_"}
_ALPHABET = string.ascii_letters + string.digits
_BODY_LENGTH = 40  # about 238 bits
_CHECK_LENGTH = 6
TOKEN_LENGTH = 5 + _BODY_LENGTH + _CHECK_LENGTH
#: How long a personal token may live at most (the form offers shorter).
MAX_LIFETIME = timedelta(days=366)
#: A token's last use is written at most this often (a write per request would cost every call).
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_NAME = 100


@dataclass(frozen=True)
class Scope:
    """What a scope lets a token call: endpoints of these permissions (govern.web.POLICY)."""

    description: str
    permissions: tuple[str, ...]
    #: Only a service token approved by a second IT user may hold it.
    service_only: bool = False


#: Every scope a token may hold; an API endpoint names one of them and one permission of POLICY.
SCOPES: dict[str, Scope] = {
    "people:read": Scope("Read people in your scope, their grants and exposures.", ("directory.read",)),
    "people:write": Scope("Add and edit people.", ("directory.manage",)),
    "accounts:read": Scope("Read accounts, their holders, roles and secrets' metadata.", ("accounts.read",)),
    "accounts:write": Scope("Add and edit accounts.", ("accounts.manage",)),
    "grants:read": Scope("Read grants: your own, and those of the people and accounts in your scope.",
                         ("grants.request",)),
    "grants:write": Scope("Request, approve, reject and revoke grants.", ("grants.manage", "grants.request")),
    "policies:read": Scope("Read policies and who accepted them.", ("staff", "reports.read")),
    "policies:write": Scope("Publish policies (admins) and accept them (everyone).", ("policies.manage", "policies.accept")),
    "reviews:read": Scope("Read access review campaigns and their items, and the items you are to decide.",
                          ("reviews.read", "reviews.decide")),
    "reviews:write": Scope("Open and close campaigns; decide review items.", ("reviews.manage", "reviews.decide")),
    "rotation:read": Scope("Read rotation tasks and exposures.", ("rotation.read",)),
    "offboarding:read": Scope("Read offboardings, their checklists and evidence.",
                              ("offboarding.read", "offboarding.evidence")),
    "offboarding:write": Scope("Start offboardings and work their checklist items.",
                               ("offboarding.manage", "offboarding.work")),
    "audit:read": Scope("Read the audit trail.", ("audit.read",)),
    "secrets:reveal": Scope("Reveal the current value of secrets of named accounts.", ("vault.reveal",),
                            service_only=True),
}


def _checksum(body: str) -> str:
    value = binascii.crc32(body.encode())
    out = ""
    for _ in range(_CHECK_LENGTH):
        value, digit = divmod(value, len(_ALPHABET))
        out = _ALPHABET[digit] + out
    return out


def new_token_text(kind: str) -> str:
    """A fresh token of ``kind``: prefix, 40 random characters, a checksum of the two."""
    head = PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    return head + _checksum(head)


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's shape and checksum (no database involved)."""
    if len(text) != TOKEN_LENGTH or text[:5] not in PREFIXES.values():
        return False
    head, check = text[:-_CHECK_LENGTH], text[-_CHECK_LENGTH:]
    return all(ch in _ALPHABET for ch in head[5:]) and secrets.compare_digest(check, _checksum(head))


def _json_list(raw: str | None) -> list[Any]:
    return list(json.loads(raw)) if raw else []


def scopes_of(token: ApiToken) -> frozenset[str]:
    """The scopes a token holds."""
    return frozenset(_json_list(token.scopes_json))


def role_cap_of(token: ApiToken) -> frozenset[str] | None:
    """The app roles a service token may use at most (None: all of its user's roles)."""
    return None if token.roles_json is None else frozenset(_json_list(token.roles_json))


def account_ids_of(token: ApiToken) -> frozenset[int]:
    """Accounts whose secrets a ``secrets:reveal`` token may reveal."""
    return frozenset(int(x) for x in _json_list(token.account_ids_json))


def status_of(token: ApiToken, now: datetime | None = None) -> str:
    """active, revoked, expired, or awaiting approval."""
    moment = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= moment:
        return "expired"
    if "secrets:reveal" in scopes_of(token) and token.approved_at is None:
        return "awaiting approval"
    return "active"


# --- creating -----------------------------------------------------------------------------------------


def _roles_allow(roles: frozenset[str], permission_names: Iterable[str], policy: dict[str, frozenset[str]]) -> bool:
    held = roles | {"staff"}
    return any("*" in policy[name] or policy[name] & held for name in permission_names)


@dataclass
class TokenRequest:
    """What the form (or a test) asks for."""

    name: str
    scopes: Sequence[str]
    expires_at: datetime
    #: Service tokens: the person who answers for it, the roles it may use, the accounts it may reveal.
    owner: Person | None = None
    roles: Sequence[str] = field(default_factory=tuple)
    account_ids: Sequence[int] = field(default_factory=tuple)


def _check_common(request: TokenRequest, now: datetime, reasons: dict[str, str]) -> str:
    name = " ".join((request.name or "").split())
    if not name or len(name) > MAX_NAME:
        reasons["name"] = f"Name the token after what uses it (at most {MAX_NAME} characters)."
    unknown = sorted(set(request.scopes) - set(SCOPES))
    if not request.scopes:
        reasons["scopes"] = "Choose at least one scope."
    elif unknown:
        reasons["scopes"] = f"Unknown scopes: {', '.join(unknown)[:200]}."
    if request.expires_at <= now:
        reasons["expires_at"] = "The expiry must be in the future."
    elif request.expires_at > now + MAX_LIFETIME:
        reasons["expires_at"] = "A token lives at most one year: choose an earlier expiry."
    return name


def create_personal_token(session: Session, *, actor: User, request: TokenRequest,
                          policy: dict[str, frozenset[str]]) -> tuple[ApiToken, str]:
    """A token acting as ``actor`` with ``request.scopes``, never more than ``actor``'s roles allow."""
    now = utcnow()
    reasons: dict[str, str] = {}
    name = _check_common(request, now, reasons)
    if "scopes" not in reasons:
        service_only = sorted(s for s in request.scopes if SCOPES[s].service_only)
        beyond = sorted(s for s in request.scopes if not _roles_allow(actor.roles, SCOPES[s].permissions, policy))
        if service_only:
            reasons["scopes"] = "A personal token can never reveal secrets; IT creates service tokens for that."
        elif beyond:
            reasons["scopes"] = f"Your roles do not allow {', '.join(beyond)}: a token never gets more than you have."
    if reasons:
        raise InvalidError("Check the highlighted fields.", reasons)
    return _insert(session, actor=actor, kind="personal", name=name, user=actor, owner_id=actor.person_id,
                   scopes=sorted(set(request.scopes)), roles=None, account_ids=None, expires_at=request.expires_at)


def create_service_token(session: Session, *, actor: User, request: TokenRequest,
                         policy: dict[str, frozenset[str]]) -> tuple[ApiToken, str]:
    """A token for an integration, owned by ``request.owner`` and acting as their login within ``request.roles``.

    Admins create service tokens; one that may reveal secrets is created by IT for named accounts and
    works only once a second IT user approves it.
    """
    now = utcnow()
    reasons: dict[str, str] = {}
    name = _check_common(request, now, reasons)
    reveal = "secrets:reveal" in request.scopes
    if reveal and "it" not in actor.roles:
        raise ForbiddenError("Only IT create tokens that may reveal secrets.")
    if not reveal and "admin" not in actor.roles:
        raise ForbiddenError("Only admins create service tokens.")
    owner = request.owner
    login = None
    if owner is None:
        reasons["owner"] = "Choose the person who answers for this integration."
    elif owner.status != "active":
        reasons["owner"] = f"{owner.full_name} is {owner.status}: choose someone who is staying."
    else:
        login = session.scalar(select(User).where(User.person_id == owner.id))
        if login is None or not login.is_active:
            reasons["owner"] = f"{owner.full_name} has no active govern login; the token acts as its owner's login."
    roles = sorted(set(request.roles))
    if not roles or set(roles) - set(APP_ROLES):
        reasons["roles"] = f"Choose the app roles the integration needs, among {', '.join(APP_ROLES)}."
    elif login is not None and set(roles) - set(login.roles):
        reasons["roles"] = f"{login.email} does not hold {', '.join(sorted(set(roles) - set(login.roles)))}."
    account_ids = sorted({int(a) for a in request.account_ids})
    if reveal and not account_ids:
        reasons["account_ids"] = "Name the accounts whose secrets the integration may reveal."
    if reasons:
        raise InvalidError("Check the highlighted fields.", reasons)
    assert owner is not None and login is not None
    return _insert(session, actor=actor, kind="service", name=name, user=login, owner_id=owner.id,
                   scopes=sorted(set(request.scopes)), roles=roles, account_ids=account_ids if reveal else None,
                   expires_at=request.expires_at)


def _insert(session: Session, *, actor: User, kind: str, name: str, user: User, owner_id: int, scopes: list[str],
            roles: list[str] | None, account_ids: list[int] | None, expires_at: datetime) -> tuple[ApiToken, str]:
    text = new_token_text(kind)
    token = ApiToken(kind=kind, name=name, token_digest=token_digest(text), prefix=text[:9], user_id=user.id,
                     owner_person_id=owner_id, scopes_json=json.dumps(scopes),
                     roles_json=None if roles is None else json.dumps(roles),
                     account_ids_json=None if account_ids is None else json.dumps(account_ids),
                     created_by_id=actor.id, expires_at=expires_at)
    session.add(token)
    session.flush()
    details: dict[str, Any] = {"kind": kind, "name": name, "prefix": token.prefix, "scopes": scopes,
                               "acts_as": user.email, "expires_at": expires_at.isoformat(timespec="seconds")}
    if roles is not None:
        details["roles"] = roles
    if account_ids:
        details["account_ids"] = account_ids
    audit.record(session, "api_token.created", actor=actor, target_type="api_token", target_id=token.id, details=details)
    return token, text


def approve_service_token(session: Session, *, actor: User, token: ApiToken) -> ApiToken:
    """A second IT user approves a token that may reveal secrets."""
    if "it" not in actor.roles:
        raise ForbiddenError("Only IT approve tokens that may reveal secrets.")
    if status_of(token) != "awaiting approval":
        raise ConflictError("This token is not waiting for an approval.")
    if actor.id in (token.created_by_id, token.user_id):
        raise ForbiddenError("A second IT user approves: not who created the token, nor who it acts as.")
    token.approved_at, token.approved_by_id = utcnow(), actor.id
    audit.record(session, "api_token.approved", actor=actor, target_type="api_token", target_id=token.id,
                 details={"prefix": token.prefix, "name": token.name})
    return token


# --- revoking -----------------------------------------------------------------------------------------


def revoke_token(session: Session, *, actor: User | None, token: ApiToken, reason: str) -> bool:
    """Revoke ``token`` now (False when it was revoked already)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at, token.revoked_by_id = utcnow(), actor.id if actor is not None else None
    token.revoke_reason = (reason or "revoked")[:200]
    audit.record(session, "api_token.revoked", actor=actor, target_type="api_token", target_id=token.id,
                 details={"prefix": token.prefix, "name": token.name, "kind": token.kind, "reason": token.revoke_reason})
    return True


def revoke_by_value(session: Session, text: str) -> bool:
    """Revoke the token whose text this is, whoever sends it (a leaked token found by a scanner)."""
    if not looks_like_token(text):
        return False
    token = session.scalar(select(ApiToken).where(ApiToken.token_digest == token_digest(text)))
    if token is None:
        return False
    return revoke_token(session, actor=None, token=token, reason="revoked by value (reported as leaked)")


def revoke_personal_tokens_of(session: Session, *, actor: Any, person_id: int, reason: str) -> int:
    """Revoke every personal token of a leaver (in the offboarding's transaction); returns how many."""
    tokens = session.scalars(select(ApiToken).where(
        ApiToken.owner_person_id == person_id, ApiToken.kind == "personal", ApiToken.revoked_at.is_(None)))
    count = 0
    for token in tokens:
        count += revoke_token(session, actor=actor if isinstance(actor, User) else None, token=token, reason=reason)
    return count


def service_tokens_owned_by(session: Session, person_id: int) -> list[ApiToken]:
    """Live service tokens a person answers for (the offboarding asks for a new owner of each)."""
    return list(session.scalars(select(ApiToken).where(
        ApiToken.owner_person_id == person_id, ApiToken.kind == "service", ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > utcnow()).order_by(ApiToken.id)))


def change_owner(session: Session, *, actor: User, token: ApiToken, owner: Person) -> ApiToken:
    """Give a service token a new owner: it then acts as their login, within the same roles."""
    if "admin" not in actor.roles:
        raise ForbiddenError("Only admins change who owns a service token.")
    if token.kind != "service" or token.revoked_at is not None:
        raise ConflictError("Only a live service token changes owner.")
    login = session.scalar(select(User).where(User.person_id == owner.id))
    if owner.status != "active" or login is None or not login.is_active:
        raise InvalidError("Check the highlighted fields.",
                           {"owner": f"{owner.full_name} has no active login: choose someone who is staying."})
    missing = sorted((role_cap_of(token) or frozenset()) - login.roles)
    if missing:
        raise InvalidError("Check the highlighted fields.",
                           {"owner": f"{login.email} does not hold {', '.join(missing)}, which this token uses."})
    old = token.owner_person_id
    token.owner_person_id, token.user_id = owner.id, login.id
    audit.record(session, "api_token.owner_changed", actor=actor, target_type="api_token", target_id=token.id,
                 details={"prefix": token.prefix, "old_owner_person_id": old, "new_owner": owner.email})
    return token


# --- reading and using --------------------------------------------------------------------------------


def get_token(session: Session, token_id: int) -> ApiToken:
    """The token or NotFoundError."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError("No such token.")
    return token


def tokens_of_user(session: Session, user_id: int) -> list[ApiToken]:
    """A user's personal tokens, newest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == "personal")
                                .order_by(ApiToken.id.desc()).limit(200)))


def service_tokens(session: Session) -> list[ApiToken]:
    """Every service token, newest first, with its owner."""
    return list(session.scalars(select(ApiToken).where(ApiToken.kind == "service")
                                .options(joinedload(ApiToken.owner)).order_by(ApiToken.id.desc()).limit(500)))


@dataclass(frozen=True)
class Refusal:
    """Why a presented token does not work (said in the 401, audited as api_token.refused)."""

    reason: str
    token_id: int | None = None


#: The token with its user, the user's person and roles, in one statement built once (as the web session's own
#: lookup, govern.auth.sessions): a statement object built per request costs SQLAlchemy a walk of it each time.
_TOKEN_AND_USER = (select(ApiToken).where(ApiToken.token_digest == bindparam("digest", type_=String))
                   .options(joinedload(ApiToken.user).joinedload(User.role_rows)))


def usable_token(session: Session, text: str) -> ApiToken | Refusal:
    """The live token whose text this is, with its user, or why not."""
    if not looks_like_token(text):
        return Refusal("malformed")
    token = session.execute(_TOKEN_AND_USER, {"digest": token_digest(text)}).unique().scalar_one_or_none()
    if token is None:
        return Refusal("unknown")
    status = status_of(token)
    if status != "active":
        return Refusal(status.replace(" ", "_"), token.id)
    user = token.user
    if not user.is_active or user.person.status != "active":
        return Refusal("owner_inactive", token.id)
    return token


def touch(token: ApiToken, ip: str | None) -> bool:
    """Record the token's use (at most once a minute, or when the address changes); True when it changed."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_INTERVAL and token.last_used_ip == ip:
        return False
    token.last_used_at, token.last_used_ip = now, (ip or "")[:64] or None
    return True
