"""Passkeys (WebAuthn) as a second factor: registration, sign-in, step-up, and the roles that must use one.

The ceremonies are py_webauthn's (options, CBOR/COSE parsing, signature, origin, RP id and flags checks);
this module keeps what govern decides: which credentials a user has, single-use challenges, the
signature counter and backup flags over time, the audit trail, and the factor policy.

The relying party is govern's configured public address (GOVERN_BASE_URL, or GOVERN_WEBAUTHN_RP_ID for
the RP id), never the request's Host header: behind a proxy the browser's origin is the public one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse, WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from govern.audit import services as audit
from govern.auth.models import APP_ROLES, FactorPolicy, Passkey, User, UserRole
from govern.db import utcnow
from govern.errors import InvalidError, NotFoundError
from govern.notifications.services import notify

#: How long a challenge may wait for the authenticator's answer.
CHALLENGE_SECONDS = 300
MAX_PASSKEYS = 20
MAX_RESPONSE_CHARS = 64_000


@dataclass(frozen=True)
class RelyingParty:
    """Who the credentials are bound to: an RP id (a domain) and the origin the browser must report."""

    rp_id: str
    origin: str
    name: str = "govern"


def relying_party(config: Mapping[str, Any]) -> RelyingParty:
    """govern's relying party from its configuration (BASE_URL; WEBAUTHN_RP_ID when set)."""
    base = urlsplit(str(config.get("BASE_URL") or "http://localhost"))
    origin = f"{base.scheme}://{base.netloc}"
    rp_id = str(config.get("WEBAUTHN_RP_ID") or base.hostname or "localhost")
    return RelyingParty(rp_id=rp_id, origin=origin)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def short_id(credential_id: bytes) -> str:
    """The first characters of a credential id, enough to tell passkeys apart in the audit trail."""
    return b64url(credential_id)[:12]


# --- the challenge a ceremony waits on -------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One ceremony's challenge, kept in the server-side session until the answer comes (single use)."""

    value: bytes
    purpose: str
    user_id: int
    issued_at: float

    def to_session(self) -> dict[str, Any]:
        return {"challenge": b64url(self.value), "purpose": self.purpose, "user_id": self.user_id, "at": self.issued_at}

    @staticmethod
    def from_session(data: Any, *, purpose: str, user_id: int) -> Challenge:
        """The stored challenge for ``purpose`` and ``user_id``, or InvalidError when none is waiting."""
        if not isinstance(data, dict) or data.get("purpose") != purpose or data.get("user_id") != user_id:
            raise InvalidError("Start again: no passkey request is waiting.", reasons={"credential": "stale"})
        if time.time() - float(data.get("at", 0)) > CHALLENGE_SECONDS:
            raise InvalidError("That took too long: try the passkey again.", reasons={"credential": "stale"})
        return Challenge(_from_b64url(str(data["challenge"])), purpose, user_id, float(data["at"]))


# --- what a user has ------------------------------------------------------------------------------


def passkeys_of(session: Session, user: User) -> list[Passkey]:
    return list(session.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.id)))


def has_passkey(session: Session, user: User) -> bool:
    return session.scalar(select(Passkey.id).where(Passkey.user_id == user.id).limit(1)) is not None


def passkey_of(session: Session, user: User, passkey_id: int) -> Passkey:
    found = session.get(Passkey, passkey_id)
    if found is None or found.user_id != user.id:
        raise NotFoundError("No such passkey.")
    return found


def _descriptors(passkeys: Iterable[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for key in passkeys:
        transports = []
        for name in json.loads(key.transports_json or "[]"):
            try:
                transports.append(AuthenticatorTransport(name))
            except ValueError:
                continue  # a transport this library does not know yet: only a hint
        out.append(PublicKeyCredentialDescriptor(id=key.credential_id, transports=transports or None))
    return out


# --- registration ---------------------------------------------------------------------------------


def registration_options(session: Session, rp: RelyingParty, user: User) -> tuple[str, Challenge]:
    """The options for navigator.credentials.create() (JSON) and the challenge to keep."""
    existing = passkeys_of(session, user)
    if len(existing) >= MAX_PASSKEYS:
        raise InvalidError(f"You have {MAX_PASSKEYS} passkeys: remove one before adding another.")
    options = generate_registration_options(
        rp_id=rp.rp_id, rp_name=rp.name, user_id=f"govern-user-{user.id}".encode(), user_name=user.email,
        user_display_name=user.person.full_name or user.email, exclude_credentials=_descriptors(existing),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED),
        attestation=AttestationConveyancePreference.NONE, timeout=CHALLENGE_SECONDS * 1000,
    )
    return options_to_json(options), Challenge(options.challenge, "register", user.id, time.time())


def register(session: Session, rp: RelyingParty, *, user: User, challenge: Challenge, response: str,
             name: str) -> Passkey:
    """Check the authenticator's answer to ``challenge`` and keep the new passkey (audited)."""
    name = " ".join((name or "").split())[:80] or "Passkey"
    credential = _parsed(response)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge.value, expected_rp_id=rp.rp_id,
            expected_origin=rp.origin, require_user_verification=True)
    except (InvalidRegistrationResponse, WebAuthnException, ValueError, KeyError, TypeError) as exc:
        audit.record(session, "auth.passkey.refused", actor=user, target_type="user", target_id=user.id,
                     outcome="denied", details={"ceremony": "register", "reason": _reason(exc)})
        raise InvalidError("This passkey could not be registered: " + _reason(exc) + ".",
                           reasons={"credential": "refused"}) from exc
    if session.scalar(select(Passkey.id).where(Passkey.credential_id == verified.credential_id)) is not None:
        raise InvalidError("This passkey is registered already.", reasons={"credential": "duplicate"})
    transports = credential.get("response", {}).get("transports") if isinstance(credential, dict) else None
    passkey = Passkey(
        user_id=user.id, credential_id=verified.credential_id, public_key=verified.credential_public_key,
        sign_count=verified.sign_count, name=name,
        transports_json=json.dumps([t for t in (transports or []) if isinstance(t, str)][:8]),
        aaguid=str(verified.aaguid or "")[:36],
        backup_eligible=verified.credential_device_type == "multi_device",
        backup_state=bool(verified.credential_backed_up))
    session.add(passkey)
    session.flush()
    audit.record(session, "auth.passkey.registered", actor=user, target_type="passkey", target_id=passkey.id,
                 details={"name": name, "credential": short_id(passkey.credential_id),
                          "synced": passkey.backup_eligible})
    return passkey


# --- sign-in and step-up --------------------------------------------------------------------------


def authentication_options(session: Session, rp: RelyingParty, user: User, purpose: str) -> tuple[str, Challenge]:
    """The options for navigator.credentials.get() with the user's passkeys (JSON), and the challenge."""
    options = generate_authentication_options(
        rp_id=rp.rp_id, allow_credentials=_descriptors(passkeys_of(session, user)),
        user_verification=UserVerificationRequirement.REQUIRED, timeout=CHALLENGE_SECONDS * 1000)
    return options_to_json(options), Challenge(options.challenge, purpose, user.id, time.time())


def verify(session: Session, rp: RelyingParty, *, user: User, challenge: Challenge, response: str) -> Passkey:
    """Check an assertion for ``challenge`` by one of ``user``'s passkeys; user verification is required.

    A signature counter that did not move forward (when either side counts) means two authenticators
    may hold the same key: refused, audited and told to the user and the admins.
    """
    credential = _parsed(response)
    raw_id = credential.get("rawId") if isinstance(credential, dict) else None
    try:
        credential_id = _from_b64url(str(raw_id))
    except (ValueError, TypeError):
        credential_id = b""
    passkey = session.scalar(select(Passkey).where(Passkey.credential_id == credential_id,
                                                   Passkey.user_id == user.id)) if credential_id else None
    if passkey is None:
        _refuse(session, user, challenge.purpose, "not one of your passkeys")
    assert passkey is not None
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge.value, expected_rp_id=rp.rp_id,
            expected_origin=rp.origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count, require_user_verification=True)
    except (InvalidAuthenticationResponse, WebAuthnException, ValueError, KeyError, TypeError) as exc:
        reason = _reason(exc)
        if "sign count" in str(exc):
            _counter_went_back(session, user, passkey)
        _refuse(session, user, challenge.purpose, reason, passkey=passkey)
    if (verified.credential_device_type == "multi_device") != passkey.backup_eligible:
        # The backup-eligible flag is fixed for a credential's life (WebAuthn L3, 6.1.3): a change is not it.
        _refuse(session, user, challenge.purpose, "its backup eligibility changed", passkey=passkey)
    passkey.sign_count = verified.new_sign_count
    passkey.backup_state = bool(verified.credential_backed_up)
    passkey.last_used_at = utcnow()
    audit.record(session, "auth.passkey.used", actor=user, target_type="passkey", target_id=passkey.id,
                 details={"purpose": challenge.purpose, "credential": short_id(passkey.credential_id)})
    return passkey


def _counter_went_back(session: Session, user: User, passkey: Passkey) -> None:
    admins = session.scalars(select(User).join(UserRole, UserRole.user_id == User.id)
                             .where(UserRole.role == "admin", User.is_active.is_(True))).all()
    notify(session, kind="security", users={u.id: u for u in [*admins, user]}.values(),
           title=f"The passkey “{passkey.name}” of {user.email} was refused: its counter went back, "
                 "so a copy of it may exist. Remove it and register a new one.")


def _refuse(session: Session, user: User, purpose: str, reason: str, *, passkey: Passkey | None = None) -> None:
    audit.record(session, "auth.passkey.refused", actor=user, target_type="passkey" if passkey else "user",
                 target_id=passkey.id if passkey else user.id, outcome="denied",
                 details={"ceremony": purpose, "reason": reason})
    raise InvalidError(f"The passkey was refused: {reason}.", reasons={"credential": "refused"})


def _parsed(response: str) -> Any:
    if not response or len(response) > MAX_RESPONSE_CHARS:
        raise InvalidError("No passkey answer arrived: try again.", reasons={"credential": "missing"})
    try:
        value = json.loads(response)
    except ValueError as exc:
        raise InvalidError("The passkey answer was not readable: try again.", reasons={"credential": "bad"}) from exc
    if not isinstance(value, dict):
        raise InvalidError("The passkey answer was not readable: try again.", reasons={"credential": "bad"})
    return value


def _reason(exc: Exception) -> str:
    """py_webauthn's reason in a few plain words (its messages name no secret)."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    if "origin" in text.lower():
        return "it was made for another site"
    if "rp id" in text.lower():
        return "it belongs to another site"
    if "challenge" in text.lower():
        return "it answered another request"
    if "verif" in text.lower() and "user" in text.lower():
        return "the authenticator did not check it was you (PIN, fingerprint or face)"
    if "sign count" in text.lower():
        return "its counter went back, so a copy of it may exist"
    return text[:120]


# --- managing passkeys ----------------------------------------------------------------------------


def rename(session: Session, *, user: User, passkey_id: int, name: str) -> Passkey:
    passkey = passkey_of(session, user, passkey_id)
    name = " ".join((name or "").split())[:80]
    if not name:
        raise InvalidError("Give the passkey a name.", reasons={"name": "Give the passkey a name."})
    old, passkey.name = passkey.name, name
    audit.record(session, "auth.passkey.renamed", actor=user, target_type="passkey", target_id=passkey.id,
                 details={"from": old, "to": name})
    return passkey


def remove(session: Session, *, user: User, passkey_id: int) -> None:
    """Remove one of ``user``'s passkeys (audited); the last one may go unless the policy needs one and
    the user has no other factor left to sign in with."""
    passkey = passkey_of(session, user, passkey_id)
    audit.record(session, "auth.passkey.removed", actor=user, target_type="passkey", target_id=passkey.id,
                 details={"name": passkey.name, "credential": short_id(passkey.credential_id)})
    session.delete(passkey)


# --- the factor policy ----------------------------------------------------------------------------


def policy_roles(session: Session) -> frozenset[str]:
    row = session.scalar(select(FactorPolicy).order_by(FactorPolicy.id).limit(1))
    return frozenset(json.loads(row.passkey_roles_json)) if row else frozenset()


def set_policy_roles(session: Session, *, actor: User, roles: Iterable[str]) -> frozenset[str]:
    """Which app roles must use a passkey (audited)."""
    wanted = frozenset(roles)
    unknown = wanted - set(APP_ROLES)
    if unknown:
        raise InvalidError(f"Unknown role: {', '.join(sorted(unknown))}.", reasons={"roles": "unknown"})
    row = session.scalar(select(FactorPolicy).order_by(FactorPolicy.id).limit(1))
    if row is None:
        row = FactorPolicy(passkey_roles_json="[]")
        session.add(row)
    before = sorted(json.loads(row.passkey_roles_json or "[]"))
    row.passkey_roles_json = json.dumps(sorted(wanted))
    row.updated_at, row.updated_by_id = utcnow(), actor.id
    audit.record(session, "auth.factor_policy.changed", actor=actor, target_type="factor_policy", target_id=1,
                 details={"passkey_roles_before": before, "passkey_roles": sorted(wanted)})
    return wanted


def passkey_required(session: Session, user: User) -> bool:
    """Whether ``user`` must use a passkey (one of their app roles is in the policy)."""
    required = policy_roles(session)
    return bool(required and required & user.roles)


#: The server-side session's keys: the challenge a ceremony waits on, and "register a passkey before
#: anything else" (the policy requires one and the user signed in without).
CHALLENGE_KEY = "webauthn"
ENROLMENT_KEY = "passkey_enrolment"
