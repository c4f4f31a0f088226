"""Vault rules: create and change secrets, reveal them (with exposure records), live TOTP codes,
version lifecycle (stage, confirm, retire, destroy), and key-encryption-key rotation.

Services validate, change state, write the audit event and flush; the caller commits, so a
reveal and its audit event and exposure land together or not at all. The keyring is injected.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Integer, Select, and_, bindparam, create_engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased, lazyload, sessionmaker
from sqlalchemy.pool import NullPool

from govern import audit, failpoints
from govern.accounts.models import Account, Role
from govern.accounts.services import can_see_account
from govern.auth.models import User
from govern.crypto import envelope, totp
from govern.crypto.envelope import Binding, Sealed, VaultCryptoError
from govern.crypto.keyring import Keyring
from govern.crypto.totp import TotpFormatError, TotpParams
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, GovernError, InvalidError, NotFoundError
from govern.grants.models import Grant
from govern.vault.models import (
    EXPOSURE_KINDS,
    SECRET_KINDS,
    Exposure,
    KeyCheck,
    Secret,
    SecretVersion,
)

MAX_LABEL = 200
MAX_LOGIN = 320
MAX_URL = 500
MAX_NOTES = 4000
MAX_REASON = 500
MAX_VALUE = {"password": 1024, "api_token": 16384, "note": 20000, "totp": 2048}
MAX_RECOVERY_CODES = 100
MAX_RECOVERY_CODE = 200
DEFAULT_RETENTION_DAYS = 30
#: Who keeps the vault: custodians may reveal any secret, even of a locked account.
CUSTODIAN_ROLE = "it"
#: Who may see a TOTP seed (in addition to being allowed to reveal the secret at all).
SEED_ROLES = frozenset({"it", "admin"})
#: App roles that see every secret's metadata (never its value).
METADATA_ROLES = frozenset({"admin", "it", "auditor"})

#: Seconds a revealed value (password, token, note, recovery codes, 2FA seed) stays on the page.
REVEAL_VISIBLE_SECONDS = 30


class VaultSealedError(GovernError):
    """The vault has no valid keyring; the operator must supply one."""

    status_code = 503


class StepUpRequiredError(GovernError):
    """A second factor verified within the last 5 minutes is needed."""

    status_code = 401


class SecretDecryptError(GovernError):
    """A stored value does not decrypt (tampered row or a missing key); the attempt is audited."""

    status_code = 409


# --- values and their validation --------------------------------------------------------------------


def _bad(field_name: str, message: str) -> InvalidError:
    return InvalidError(message, {field_name: message})


def parse_totp(value: str) -> TotpParams:
    """Validate a base32 seed or an otpauth://totp/ URI; keep digits, period and algorithm."""
    if len(value or "") > MAX_VALUE["totp"]:
        raise _bad("value", "That is too long to be a 2FA seed.")
    try:
        return totp.parse(value)
    except TotpFormatError as exc:
        raise _bad("value", str(exc)) from None


def totp_params(payload: dict[str, Any]) -> TotpParams:
    """The parameters of a stored 2FA seed (older versions may lack some: the defaults apply)."""
    return TotpParams(str(payload["seed"]), int(payload.get("digits", 6)), int(payload.get("period", 30)),
                      str(payload.get("algorithm", "SHA1")).upper())


def _payload(kind: str, value: str | list[str]) -> dict[str, Any]:
    """Validate a value of ``kind`` and return what gets encrypted."""
    if kind == "recovery_codes":
        items = value.splitlines() if isinstance(value, str) else list(value)
        codes = [str(c).strip() for c in items if str(c).strip()]
        if not codes:
            raise _bad("value", "Enter at least one recovery code, one per line.")
        if len(codes) > MAX_RECOVERY_CODES or any(len(c) > MAX_RECOVERY_CODE for c in codes):
            raise _bad("value", f"Up to {MAX_RECOVERY_CODES} codes of up to {MAX_RECOVERY_CODE} characters each.")
        return {"codes": [{"code": c, "used_at": None} for c in codes]}
    if not isinstance(value, str):
        raise _bad("value", "Enter the value as text.")
    if kind == "totp":
        params = parse_totp(value)
        # The parameters are sealed with the seed in the one encrypted value, not in a column: they
        # belong to this version (a rotation may change seed and parameters together, and an old
        # version keeps its own), they need no migration, and an edit to them is caught by the
        # envelope's authentication like an edit to the seed.
        return {"seed": params.seed, "digits": params.digits, "period": params.period, "algorithm": params.algorithm}
    if not value.strip():
        raise _bad("value", "Enter the value to keep in the vault.")
    if len(value) > MAX_VALUE[kind]:
        raise _bad("value", f"Keep the value under {MAX_VALUE[kind]} characters.")
    # Passwords and tokens are kept exactly as typed; a note may lose trailing blank space.
    return {"value": value.rstrip() if kind == "note" else value}


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _secret_strings(payload: dict[str, Any]) -> list[str]:
    if "codes" in payload:
        return [c["code"] for c in payload["codes"]]
    return [str(payload.get("seed") or payload.get("value") or "")]


@dataclass
class Metadata:
    """The non-secret fields of a secret, validated."""

    label: str
    login: str | None
    url: str | None
    notes: str | None
    token_expires_at: date | None


def _metadata(kind: str, label: str, login: str | None, url: str | None, notes: str | None,
              token_expires_at: date | None) -> Metadata:
    label = (label or "").strip()
    errors: dict[str, str] = {}
    if not label:
        errors["label"] = "Give the secret a name, e.g. “Instagram login”."
    elif len(label) > MAX_LABEL:
        errors["label"] = f"Keep the name under {MAX_LABEL} characters."
    login = (login or "").strip() or None
    if login and len(login) > MAX_LOGIN:
        errors["login"] = f"Keep the login under {MAX_LOGIN} characters."
    url = (url or "").strip() or None
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL:
            errors["url"] = "Enter a web address starting with https:// (or leave it empty)."
    notes = (notes or "").strip() or None
    if notes and len(notes) > MAX_NOTES:
        errors["notes"] = f"Keep the notes under {MAX_NOTES} characters."
    if token_expires_at is not None and kind != "api_token":
        errors["token_expires_at"] = "Only API tokens have an expiry date."  # noqa: S105 - a message
    if errors:
        raise InvalidError(next(iter(errors.values())), errors)
    return Metadata(label, login, url, notes, token_expires_at)


def _refuse_value_in_metadata(meta: Metadata, payload: dict[str, Any]) -> None:
    """Metadata is shown on ordinary pages: it must never carry the value itself."""
    fields = {"label": meta.label, "login": meta.login, "url": meta.url, "notes": meta.notes}
    for secret_text in _secret_strings(payload):
        if len(secret_text) < 6:
            continue
        for name, text in fields.items():
            if text and secret_text in text:
                raise _bad(name, "This field contains the secret itself; keep the value only in the value field.")


# --- keys ---------------------------------------------------------------------------------------------


def require_keyring(keyring: Keyring | None) -> Keyring:
    """The keyring, or VaultSealedError with what the operator must do when the vault is sealed."""
    if keyring is None:
        raise VaultSealedError(SEALED_MESSAGE)
    return keyring


SEALED_MESSAGE = (
    "The vault is sealed: govern started without a valid keyring, so no secret can be read or stored. "
    "An operator must supply the key file (GOVERN_VAULT_KEY_FILE, created by `govern keys init`) or the "
    "GOVERN_VAULT_KEYRING variable, check it with `govern keys status`, and restart govern. "
    "Everything else in govern keeps working."
)


def ensure_key_check(session: Session, keyring: Keyring) -> None:
    """Record the primary KEK's check value on first use; refuse a wrong or retired primary key."""
    kek_id = keyring.primary_id
    kcv = envelope.key_check_value(keyring.keys[kek_id])
    # A shared lock: `keys retire` updates this row first, so it waits for wraps in flight.
    row = session.scalar(select(KeyCheck).where(KeyCheck.kek_id == kek_id).with_for_update(read=True))
    if row is None:
        try:
            with session.begin_nested():
                session.add(KeyCheck(kek_id=kek_id, check_value=kcv))
        except IntegrityError:
            row = session.scalar(select(KeyCheck).where(KeyCheck.kek_id == kek_id))
    if row is not None:
        if not hmac.compare_digest(row.check_value, kcv):
            raise VaultSealedError(f"The keyring's key {kek_id} is not the key this database knows (key check value differs). " + SEALED_MESSAGE)
        if row.retired_at is not None:
            raise VaultSealedError(f"The keyring's primary key {kek_id} was retired; restart govern with the current key file.")


def keyring_problem(session: Session, keyring: Keyring) -> str | None:
    """Why this keyring cannot serve this database (wrong key, missing key), or None when it can."""
    for kek_id, check_value in session.execute(select(KeyCheck.kek_id, KeyCheck.check_value)):
        key = keyring.keys.get(kek_id)
        if key is not None and not hmac.compare_digest(envelope.key_check_value(key), check_value):
            return (f"the keyring's key {kek_id} is not the key this database was encrypted with "
                    "(key check value differs): supply the right key file")
    needed = session.execute(
        select(SecretVersion.kek_id, func.count()).where(SecretVersion.status != "destroyed").group_by(SecretVersion.kek_id)
    ).all()
    missing = {kek_id: count for kek_id, count in needed if kek_id not in keyring.keys}
    if missing:
        names = ", ".join(f"{k} ({n} data keys)" for k, n in sorted(missing.items()))
        return f"the keyring lacks key(s) that still wrap data keys: {names}; supply the key file that has them"
    return None


def keyring_problem_at_start(url: str, keyring: Keyring) -> str | None:
    """The start-up check; a database without the vault tables yet (before `db upgrade`) passes.

    It reads through a plain, short-lived engine: govern's own engine opens every SQLite
    transaction with BEGIN IMMEDIATE, which would wait for any writer just to read.
    """
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            return keyring_problem(session, keyring)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


# --- creating and changing ----------------------------------------------------------------------------


def _seal_version(session: Session, keyring: Keyring, secret: Secret, payload: dict[str, Any], *,
                  actor: Any, status: str) -> SecretVersion:
    ensure_key_check(session, keyring)
    number = (session.scalar(select(func.max(SecretVersion.version)).where(SecretVersion.secret_id == secret.id)) or 0) + 1
    sealed = envelope.seal(keyring, _encode(payload), Binding(secret.id, number, secret.kind))
    now = utcnow()
    version = SecretVersion(secret_id=secret.id, version=number, status=status, ciphertext=sealed.ciphertext,
                            wrapped_key=sealed.wrapped_key, kek_id=sealed.kek_id, created_at=now,
                            created_by_id=actor.id, confirmed_at=now if status == "current" else None)
    session.add(version)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("Someone else changed this secret at the same time; reload and try again.") from None
    return version


def _record_setter_exposure(session: Session, actor: Any, secret: Secret, version: SecretVersion, reason: str) -> None:
    # Whoever types a value knows it: rotation and offboarding must count them like a reveal.
    session.add(Exposure(secret_version_id=version.id, secret_id=secret.id, account_id=secret.account_id,
                         user_id=actor.id, person_id=actor.person_id,
                         kind="totp_seed" if secret.kind == "totp" else "value", reason=reason))


def create_secret(session: Session, *, actor: Any, keyring: Keyring | None, account: Account, kind: str, label: str,
                  value: str | list[str], login: str | None = None, url: str | None = None, notes: str | None = None,
                  token_expires_at: date | None = None) -> Secret:
    """Vault a new secret of ``account``: validate, encrypt version 1 (current), audit; the caller commits."""
    ring = require_keyring(keyring)
    if kind not in SECRET_KINDS:
        raise _bad("kind", f"Choose one of: {', '.join(SECRET_KINDS)}.")
    if account.status == "archived":
        raise ConflictError(f"{account.display_name} is archived; it takes no new secrets.")
    meta = _metadata(kind, label, login, url, notes, token_expires_at)
    payload = _payload(kind, value)
    _refuse_value_in_metadata(meta, payload)
    if session.scalar(select(Secret.id).where(Secret.account_id == account.id, Secret.label == meta.label)) is not None:
        raise InvalidError("This account already has a secret with that name.", {"label": "This account already has a secret with that name."})
    now = utcnow()
    secret = Secret(account_id=account.id, kind=kind, label=meta.label, login=meta.login, url=meta.url, notes=meta.notes,
                    token_expires_at=meta.token_expires_at, created_at=now, created_by_id=actor.id,
                    updated_at=now, updated_by_id=actor.id)
    session.add(secret)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError("This account already has a secret with that name.") from None
    version = _seal_version(session, ring, secret, payload, actor=actor, status="current")
    _record_setter_exposure(session, actor, secret, version, "vaulted the value")
    audit.record(session, "vault.secret_created", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": account.id, "kind": kind, "label": meta.label, "version": version.version,
                          "kek_id": version.kek_id})
    session.flush()
    return secret


def update_metadata(session: Session, *, actor: Any, secret: Secret, label: str, login: str | None = None,
                    url: str | None = None, notes: str | None = None, token_expires_at: date | None = None) -> list[str]:
    """Change a secret's name, login, URL, notes or token expiry (no new version); return what changed."""
    meta = _metadata(secret.kind, label, login, url, notes, token_expires_at)
    changed = [name for name in ("label", "login", "url", "notes", "token_expires_at")
               if getattr(secret, name) != getattr(meta, name)]
    if not changed:
        return []
    if "label" in changed and session.scalar(select(Secret.id).where(
            Secret.account_id == secret.account_id, Secret.label == meta.label, Secret.id != secret.id)) is not None:
        raise InvalidError("This account already has a secret with that name.", {"label": "This account already has a secret with that name."})
    for name in changed:
        setattr(secret, name, getattr(meta, name))
    secret.updated_at, secret.updated_by_id = utcnow(), actor.id
    audit.record(session, "vault.secret_updated", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "changed": changed})
    session.flush()
    return changed


def current_version(session: Session, secret: Secret) -> SecretVersion | None:
    """The version in use."""
    return session.scalar(select(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "current"))


def pending_version(session: Session, secret: Secret) -> SecretVersion | None:
    """A staged version waiting for confirmation, if any."""
    return session.scalar(select(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "pending"))


def _retire(version: SecretVersion, now: datetime) -> None:
    version.status = "retired"
    version.retired_at = now


def change_value(session: Session, *, actor: Any, keyring: Keyring | None, secret: Secret, value: str | list[str]) -> SecretVersion:
    """A new current version with ``value``; the old one is retired (kept for the retention period)."""
    ring = require_keyring(keyring)
    payload = _payload(secret.kind, value)
    if pending_version(session, secret) is not None:
        raise ConflictError("A staged new value waits for confirmation; confirm or discard it first.")
    old = current_version(session, secret)
    now = utcnow()
    if old is not None:
        _retire(old, now)
        session.flush()
    version = _seal_version(session, ring, secret, payload, actor=actor, status="current")
    secret.updated_at, secret.updated_by_id = now, actor.id
    _record_setter_exposure(session, actor, secret, version, "changed the value")
    audit.record(session, "vault.value_changed", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "kind": secret.kind, "version": version.version,
                          "retired_version": old.version if old else None})
    session.flush()
    return version


def stage_version(session: Session, *, actor: Any, keyring: Keyring | None, secret: Secret, value: str | list[str]) -> SecretVersion:
    """Rotation step 1: keep a new value as ``pending`` while it is being set on the platform."""
    ring = require_keyring(keyring)
    payload = _payload(secret.kind, value)
    if pending_version(session, secret) is not None:
        raise ConflictError("A staged new value waits for confirmation already.")
    version = _seal_version(session, ring, secret, payload, actor=actor, status="pending")
    _record_setter_exposure(session, actor, secret, version, "staged a new value")
    audit.record(session, "vault.version_staged", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version})
    session.flush()
    return version


def confirm_version(session: Session, *, actor: Any, secret: Secret) -> SecretVersion:
    """Rotation step 2: the staged value works on the platform; it becomes current, the old one retired."""
    version = pending_version(session, secret)
    if version is None:
        raise ConflictError("There is no staged value to confirm.")
    old = current_version(session, secret)
    now = utcnow()
    if old is not None:
        _retire(old, now)
        session.flush()  # the partial unique index allows one current version
    version.status, version.confirmed_at = "current", now
    secret.updated_at, secret.updated_by_id = now, actor.id
    audit.record(session, "vault.version_confirmed", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version,
                          "retired_version": old.version if old else None})
    session.flush()
    return version


def discard_pending(session: Session, *, actor: Any, secret: Secret) -> SecretVersion:
    """Rotation abandoned: the staged value is destroyed at once (it never became current)."""
    version = pending_version(session, secret)
    if version is None:
        raise ConflictError("There is no staged value to discard.")
    _destroy(version, utcnow())
    audit.record(session, "vault.version_discarded", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version})
    session.flush()
    return version


def _destroy(version: SecretVersion, now: datetime) -> None:
    shredded = envelope.destroy(Sealed(version.ciphertext, version.wrapped_key, version.kek_id))
    version.wrapped_key = shredded.wrapped_key
    version.status, version.destroyed_at = "destroyed", now


# --- who may see and reveal --------------------------------------------------------------------------


def _revealing_grant_exists(session: Session, user: Any, account_id: int) -> bool:
    now = utcnow()
    return session.scalar(
        select(Grant.id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == user.person_id, Grant.account_id == account_id, Grant.status == "active",
            Grant.starts_at <= now, (Grant.expires_at.is_(None)) | (Grant.expires_at > now), Role.may_reveal.is_(True),
        ).limit(1)
    ) is not None


def refusal(session: Session, user: Any, secret: Secret, what: str = "value") -> str | None:
    """Why ``user`` may not reveal ``secret`` (``what``: value, totp_code, totp_seed), or None if they may.

    IT are the custodians and may reveal any secret, even of a locked account. Everyone else
    needs an active grant on the account whose role may reveal, on an active account; app
    admins are not custodians (an admin with such a grant may reveal like any holder).
    The TOTP seed is for IT and admins only, on top of that.
    """
    roles = set(user.roles)
    if what == "totp_seed" and not roles & SEED_ROLES:
        return "Only IT and admins may see a 2FA seed."
    if CUSTODIAN_ROLE in roles:
        return None
    if secret.account.status != "active":
        return f"{secret.account.display_name} is {secret.account.status}: only IT may reveal its secrets."
    if getattr(user.person, "status", "active") == "departed":
        return "People who have left may not reveal secrets."
    if not _revealing_grant_exists(session, user, secret.account_id):
        return "You have no active role on this account that may reveal its credentials."
    return None


def can_see_secret(session: Session, user: Any, secret: Secret) -> bool:
    """Whether ``user`` may know the secret exists (name, kind, versions, exposures; never the value)."""
    if set(user.roles) & METADATA_ROLES or can_see_account(user, secret.account):
        return True
    return refusal(session, user, secret) is None


def get_secret(session: Session, secret_id: int) -> Secret:
    """The secret or NotFoundError."""
    secret = session.get(Secret, secret_id)
    if secret is None:
        raise NotFoundError("There is nothing here, or you may not see it.")
    return secret


# --- reveal ----------------------------------------------------------------------------------------------


@dataclass
class LiveCode:
    """A TOTP code now and the next one, never the seed."""

    code: str
    seconds_left: int
    next_code: str
    period: int
    digits: int


@dataclass
class Revealed:
    """What a reveal returns to the one page that shows it."""

    secret: Secret
    version: SecretVersion
    what: str
    value: str | None = None
    codes: list[dict[str, Any]] = field(default_factory=list)
    live: LiveCode | None = None
    totp: TotpParams | None = None

    @property
    def hide_after_seconds(self) -> int:
        """How long the page shows it (its text and its script both read this): a value
        REVEAL_VISIBLE_SECONDS; live 2FA codes until the next code, sent with the first, expires."""
        if self.what == "totp_code" and self.live is not None:
            return self.live.seconds_left + self.live.period
        return REVEAL_VISIBLE_SECONDS


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise _bad("reason", "Say why you need to see it; the reason is recorded.")
    if len(text) > MAX_REASON:
        raise _bad("reason", f"Keep the reason under {MAX_REASON} characters.")
    return text


def decrypt_version(session: Session, *, actor: Any, keyring: Keyring, version: SecretVersion) -> dict[str, Any]:
    """Open a version; a failure is audited as ``vault.decrypt_failed`` and raised as SecretDecryptError."""
    secret = version.secret
    try:
        plain = envelope.open_sealed(keyring, Sealed(version.ciphertext, version.wrapped_key, version.kek_id),
                                     Binding(secret.id, version.version, secret.kind))
        payload: dict[str, Any] = json.loads(plain)
        return payload
    except (VaultCryptoError, ValueError):
        audit.record(session, "vault.decrypt_failed", actor=actor, target_type="secret", target_id=secret.id,
                     outcome="failure", details={"account_id": secret.account_id, "version": version.version,
                                                 "kek_id": version.kek_id})
        session.flush()
        raise SecretDecryptError(
            "This secret's stored value does not decrypt: it was altered in the database or needs a key that is "
            "not in the keyring. Nothing was shown; the attempt was recorded. Tell IT."
        ) from None


def live_code(params: TotpParams, now: float | None = None) -> LiveCode:
    """The current code, the seconds it has left, and the next code."""
    moment = time.time() if now is None else now
    step = params.step(moment)
    return LiveCode(code=params.code(step), seconds_left=int(params.period - (moment % params.period)) or params.period,
                    next_code=params.code(step + 1), period=params.period, digits=params.digits)


ACTIONS = {"value": "vault.revealed", "totp_code": "vault.totp_code_shown", "totp_seed": "vault.totp_seed_revealed"}


def reveal(session: Session, *, actor: Any, keyring: Keyring | None, secret: Secret, reason: str,
           mfa_fresh: bool, what: str = "value") -> Revealed:
    """Show a secret's current value (or a live TOTP code, or the seed) to an allowed actor.

    Refusals are audited. The audit event and the exposure are written with the reveal, in
    the caller's transaction.
    """
    ring = require_keyring(keyring)
    if what not in EXPOSURE_KINDS or (secret.kind == "totp") != (what != "value"):
        raise _bad("what", "This secret cannot be shown that way.")
    why_not = refusal(session, actor, secret, what)
    if why_not is not None:
        record_reveal_denied(session, actor=actor, secret=secret, exposure=what, why=why_not)
        raise ForbiddenError(why_not)
    text = _reason(reason)
    if not mfa_fresh:
        raise StepUpRequiredError("Confirm a code from your authenticator first (needed within the last 5 minutes).")
    version = current_version(session, secret)
    if version is None:
        raise NotFoundError("This secret has no current value.")
    payload = decrypt_version(session, actor=actor, keyring=ring, version=version)
    result = Revealed(secret=secret, version=version, what=what)
    if secret.kind == "totp":
        params = totp_params(payload)
        result.totp = params
        result.live = live_code(params)
    elif secret.kind == "recovery_codes":
        result.codes = payload["codes"]
    else:
        result.value = payload["value"]
    session.add(Exposure(secret_version_id=version.id, secret_id=secret.id, account_id=secret.account_id,
                         user_id=actor.id, person_id=actor.person_id, kind=what, reason=text))
    audit.record(session, ACTIONS[what], actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "version": version.version, "reason": text})
    session.flush()
    return result


def mark_recovery_code_used(session: Session, *, actor: Any, keyring: Keyring | None, secret: Secret, index: int,
                            mfa_fresh: bool) -> SecretVersion:
    """Mark one recovery code used: a new current version, the old one retired."""
    ring = require_keyring(keyring)
    if secret.kind != "recovery_codes":
        raise _bad("index", "Only recovery codes can be marked used.")
    why_not = refusal(session, actor, secret)
    if why_not is not None:
        record_reveal_denied(session, actor=actor, secret=secret, exposure="value", why=why_not)
        raise ForbiddenError(why_not)
    if not mfa_fresh:
        raise StepUpRequiredError("Confirm a code from your authenticator first (needed within the last 5 minutes).")
    old = current_version(session, secret)
    if old is None:
        raise NotFoundError("This secret has no current value.")
    payload = decrypt_version(session, actor=actor, keyring=ring, version=old)
    codes = payload["codes"]
    if not 0 <= index < len(codes):
        raise _bad("index", "No such code.")
    if codes[index]["used_at"] is not None:
        raise ConflictError("That code is marked used already.")
    codes[index]["used_at"] = utcnow().isoformat(timespec="seconds")
    now = utcnow()
    _retire(old, now)
    session.flush()
    version = _seal_version(session, ring, secret, {"codes": codes}, actor=actor, status="current")
    secret.updated_at, secret.updated_by_id = now, actor.id
    _record_setter_exposure(session, actor, secret, version, "marked a recovery code used")
    audit.record(session, "vault.recovery_code_used", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "position": index + 1, "version": version.version,
                          "left": sum(1 for c in codes if c["used_at"] is None)})
    session.flush()
    return version


def record_reveal_denied(session: Session, *, actor: Any, secret: Secret, exposure: str, why: str) -> None:
    """Audit a refused reveal of ``secret`` (``exposure``: value, totp_code, totp_seed) and why."""
    audit.record(session, "vault.reveal_denied", actor=actor, target_type="secret", target_id=secret.id, outcome="denied",
                 details={"account_id": secret.account_id, "exposure": exposure, "why": why})
    session.flush()


# --- lists for pages --------------------------------------------------------------------------------------


@dataclass
class SecretRow:
    """A secret with its current version's number and age, for lists (never its value)."""

    secret: Secret
    version: int | None
    since: datetime | None
    has_pending: bool


def secret_rows(session: Session, secrets: list[Secret]) -> list[SecretRow]:
    """Current version number and date of each secret: one query whatever their number."""
    ids = [s.id for s in secrets]
    current: dict[int, tuple[int, datetime | None]] = {}
    pending: set[int] = set()
    if ids:
        for secret_id, number, status, confirmed, created in session.execute(
            select(SecretVersion.secret_id, SecretVersion.version, SecretVersion.status, SecretVersion.confirmed_at,
                   SecretVersion.created_at).where(SecretVersion.secret_id.in_(ids), SecretVersion.status.in_(("current", "pending")))
        ):
            if status == "current":
                current[secret_id] = (number, confirmed or created)
            else:
                pending.add(secret_id)
    return [SecretRow(s, current.get(s.id, (None, None))[0], current.get(s.id, (None, None))[1], s.id in pending) for s in secrets]


def account_secrets(session: Session, account_id: int) -> list[SecretRow]:
    """Every secret of an account, with the age of its current version: one query.

    A secret has at most one current and one pending version (unique indexes), so the outer joins
    never repeat a secret.
    """
    rows = session.execute(_account_secrets_statement(), {"account_id": account_id})
    return [SecretRow(secret, number, (confirmed or created) if number is not None else None, pending_id is not None)
            for secret, number, confirmed, created, pending_id in rows]


@cache
def _account_secrets_statement() -> Select[*tuple[Any, ...]]:
    """``account_secrets`` over the parameter ``account_id``; built once (aliases are costly to build)."""
    current, pending = aliased(SecretVersion), aliased(SecretVersion)
    return (
        select(Secret, current.version, current.confirmed_at, current.created_at, pending.id)
        .options(lazyload(Secret.account))  # the caller's account, already in the session
        .outerjoin(current, and_(current.secret_id == Secret.id, current.status == "current"))
        .outerjoin(pending, and_(pending.secret_id == Secret.id, pending.status == "pending"))
        .where(Secret.account_id == bindparam("account_id", type_=Integer)).order_by(Secret.label)
    )


def revealable_secrets(session: Session, user: Any, *, page: int, per_page: int = 50) -> tuple[list[SecretRow], int]:
    """The secrets ``user`` may reveal: all for IT; else those of active accounts with a revealing grant."""
    query = select(Secret).join(Account, Account.id == Secret.account_id)
    if CUSTODIAN_ROLE not in set(user.roles):
        now = utcnow()
        accounts = select(Grant.account_id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == user.person_id, Grant.status == "active", Grant.starts_at <= now,
            (Grant.expires_at.is_(None)) | (Grant.expires_at > now), Role.may_reveal.is_(True))
        query = query.where(Secret.account_id.in_(accounts), Account.status == "active")
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    secrets = list(session.scalars(query.order_by(Account.display_name, Secret.label).offset((page - 1) * per_page).limit(per_page)))
    return secret_rows(session, secrets), total


def versions_of(session: Session, secret: Secret) -> list[SecretVersion]:
    """Every version of a secret, newest first (metadata only is shown)."""
    return list(session.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id).order_by(SecretVersion.version.desc())))


@dataclass
class ExposureRow:
    """An exposure with who and what, for pages (plain values: pages only read them)."""

    id: int
    exposed_at: datetime
    secret_id: int
    kind: str
    reason: str
    person_name: str
    user_email: str
    secret_label: str
    account_name: str
    version: int


@cache
def _exposure_rows() -> Select[*tuple[Any, ...]]:
    """The columns and joins of ``exposures``, built once."""
    return (
        select(Exposure.id, Exposure.exposed_at, Exposure.secret_id, Exposure.kind, Exposure.reason, Person.full_name,
               User.email, Secret.label, Account.display_name, SecretVersion.version)
        .join(Person, Person.id == Exposure.person_id).join(User, User.id == Exposure.user_id)
        .join(Secret, Secret.id == Exposure.secret_id).join(Account, Account.id == Exposure.account_id)
        .join(SecretVersion, SecretVersion.id == Exposure.secret_version_id)
    )


def exposures(session: Session, *, secret_id: int | None = None, account_id: int | None = None,
              person_id: int | None = None, page: int = 1, per_page: int = 50) -> tuple[list[ExposureRow], int]:
    """Exposures filtered by secret, account or person, newest first, with a total for paging."""
    params = {"secret_id": secret_id, "account_id": account_id, "person_id": person_id,
              "limit": per_page, "offset": (page - 1) * per_page}
    rows_statement, count_statement = _exposure_statements(secret_id is not None, account_id is not None, person_id is not None)
    rows = session.connection().execute(rows_statement, params).all()
    if page == 1 and len(rows) < per_page:
        total = len(rows)  # the first page holds them all: no count needed
    else:
        total = session.connection().execute(count_statement, params).scalar() or 0
    return [ExposureRow(*row) for row in rows], total


@cache
def _exposure_statements(by_secret: bool, by_account: bool, by_person: bool) -> tuple[Select[*tuple[Any, ...]], Select[*tuple[Any, ...]]]:
    """The page and the count of ``exposures`` for one combination of filters, over bound parameters.

    Built once per combination: SQLAlchemy walks a statement's structure (here five joined tables)
    once per statement object to find its compiled SQL, which cost a tenth of a millisecond a page.
    """
    conditions = []
    if by_secret:
        conditions.append(Exposure.secret_id == bindparam("secret_id", type_=Integer))
    if by_account:
        conditions.append(Exposure.account_id == bindparam("account_id", type_=Integer))
    if by_person:
        conditions.append(Exposure.person_id == bindparam("person_id", type_=Integer))
    rows = (_exposure_rows().where(*conditions).order_by(Exposure.exposed_at.desc(), Exposure.id.desc())
            .offset(bindparam("offset", type_=Integer)).limit(bindparam("limit", type_=Integer)))
    return rows, select(func.count(Exposure.id)).where(*conditions)


# --- retention ---------------------------------------------------------------------------------------------


def purge_retired(session: Session, *, retention_days: int = DEFAULT_RETENTION_DAYS, now: datetime | None = None,
                  limit: int = 1000) -> int:
    """Crypto-shred retired versions older than the retention: overwrite the wrapped key, mark destroyed.

    Returns how many were destroyed (at most ``limit``; the jobs runner calls it until 0).
    """
    if retention_days < 0:
        raise ValueError("retention_days must not be negative")
    moment = now or utcnow()
    cutoff = moment - timedelta(days=retention_days)
    versions = list(session.scalars(
        select(SecretVersion).where(SecretVersion.status == "retired", SecretVersion.retired_at < cutoff)
        .order_by(SecretVersion.id).limit(limit)
    ))
    for version in versions:
        _destroy(version, moment)
        audit.record(session, "vault.version_destroyed", target_type="secret", target_id=version.secret_id,
                     details={"account_id": version.secret.account_id, "version": version.version,
                              "retired_at": version.retired_at, "retention_days": retention_days})
    session.flush()
    return len(versions)


# --- key rotation ---------------------------------------------------------------------------------------------


def rotate_keyring(keyring: Keyring) -> Keyring:
    """A copy of ``keyring`` with a new random primary KEK; older keys stay for unwrapping."""
    fresh = Keyring.generate()
    keys = dict(keyring.keys)
    keys.update(fresh.keys)
    return Keyring(primary_id=fresh.primary_id, keys=keys)


def record_rotation(session: Session, *, old_primary: str, keyring: Keyring) -> None:
    """Record the new primary's check value and audit the rotation."""
    session.add(KeyCheck(kek_id=keyring.primary_id, check_value=envelope.key_check_value(keyring.keys[keyring.primary_id])))
    audit.record(session, "vault.keys_rotated", target_type="kek", target_id=keyring.primary_id,
                 details={"previous_primary": old_primary, "primary": keyring.primary_id})
    session.flush()


@dataclass
class KeyUse:
    """One KEK and how many data keys it wraps."""

    kek_id: str
    in_keyring: bool
    is_primary: bool
    data_keys: int
    recorded: bool
    retired: bool
    check_ok: bool | None


def key_status(session: Session, keyring: Keyring | None) -> list[KeyUse]:
    """Every KEK known to the keyring or the database, with the number of live data keys it wraps."""
    counts = dict(session.execute(
        select(SecretVersion.kek_id, func.count()).where(SecretVersion.status != "destroyed").group_by(SecretVersion.kek_id)
    ).all())
    checks = {row.kek_id: row for row in session.scalars(select(KeyCheck))}
    ids = set(counts) | set(checks) | set(keyring.keys if keyring else ())
    result = []
    for kek_id in sorted(ids):
        key = keyring.keys.get(kek_id) if keyring else None
        check = checks.get(kek_id)
        result.append(KeyUse(
            kek_id=kek_id, in_keyring=key is not None, is_primary=bool(keyring and keyring.primary_id == kek_id),
            data_keys=int(counts.get(kek_id, 0)), recorded=check is not None,
            retired=bool(check and check.retired_at), check_ok=(
                hmac.compare_digest(envelope.key_check_value(key), check.check_value) if key is not None and check else None),
        ))
    return result


def _stale_versions_query(primary: str, after_id: int, limit: int) -> Any:
    return (
        select(SecretVersion.id, SecretVersion.version, SecretVersion.wrapped_key, SecretVersion.kek_id,
               Secret.id, Secret.kind)
        .join(Secret, Secret.id == SecretVersion.secret_id)
        .where(SecretVersion.kek_id != primary, SecretVersion.status != "destroyed", SecretVersion.id > after_id)
        .order_by(SecretVersion.id).limit(limit)
    )


def count_stale(session: Session, keyring: Keyring) -> int:
    """Live data keys not yet wrapped by the primary KEK."""
    return session.scalar(select(func.count()).select_from(SecretVersion).where(
        SecretVersion.kek_id != keyring.primary_id, SecretVersion.status != "destroyed")) or 0


def _update_wrapped_keys(session: Session, primary: str, params: list[tuple[bytes, str, int, str]]) -> None:
    """Write a batch of rewrapped keys, guarded by the old KEK id and status, in one round trip.

    Building SQLAlchemy parameters per row costs more than the cryptography (measured), so the
    statement is fixed text with bound values: one UPDATE ... FROM unnest(arrays) on
    PostgreSQL, one executemany on SQLite.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "UPDATE secret_versions AS sv SET wrapped_key = v.wrapped_key, kek_id = %(primary)s "
            "FROM unnest(%(ids)s::integer[], %(keys)s::bytea[], %(olds)s::varchar[]) AS v(id, wrapped_key, old_kek_id) "
            "WHERE sv.id = v.id AND sv.kek_id = v.old_kek_id AND sv.status <> 'destroyed'",
            {"primary": primary, "ids": [p[2] for p in params], "keys": [p[0] for p in params], "olds": [p[3] for p in params]},
        )
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(
        f"UPDATE secret_versions SET wrapped_key = {mark}, kek_id = {mark} "  # noqa: S608 - placeholders only
        f"WHERE id = {mark} AND kek_id = {mark} AND status <> 'destroyed'",
        params,
    )


@dataclass
class RewrapBatch:
    """What one batch did."""

    seen: int
    rewrapped: int
    failed: list[int]
    last_id: int


def rewrap_batch(session: Session, keyring: Keyring, *, batch_size: int, after_id: int = 0) -> RewrapBatch:
    """Rewrap up to ``batch_size`` data keys (ids above ``after_id``) under the primary KEK; audit; no commit.

    Only the wrapped key and its KEK id change; the ciphertext is untouched. The update is
    guarded by the old KEK id and status, so a row changed meanwhile (destroyed, rewrapped by a
    concurrent run) is left alone.
    """
    # Core rows, not ORM loading: this loop is the hot path of a rewrap.
    rows = session.connection().execute(_stale_versions_query(keyring.primary_id, after_id, batch_size)).all()
    if not rows:
        return RewrapBatch(0, 0, [], after_id)
    params: list[tuple[bytes, str, int, str]] = []
    failed: list[int] = []
    rewrap = envelope.rewrap_many(keyring)
    primary = keyring.primary_id
    for version_id, number, wrapped, kek_id, secret_id, kind in rows:
        try:
            params.append((rewrap(wrapped, kek_id, Binding(secret_id, number, kind)), primary, version_id, kek_id))
        except VaultCryptoError:
            failed.append(version_id)
    if params:
        _update_wrapped_keys(session, primary, params)
    audit.record(session, "vault.rewrap_batch", outcome="failure" if failed else "success", target_type="kek",
                 target_id=keyring.primary_id,
                 details={"rewrapped": len(params), "failed_version_ids": failed[:100], "first_id": rows[0][0],
                          "last_id": rows[-1][0]})
    session.flush()
    return RewrapBatch(len(rows), len(params), failed, rows[-1][0])


@dataclass
class RewrapResult:
    """Totals of a rewrap run."""

    rewrapped: int = 0
    failed: list[int] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0


def rewrap_all(factory: sessionmaker[Session], keyring: Keyring, *, batch_size: int = 5000,
               progress: Callable[[int], None] | None = None) -> RewrapResult:
    """Rewrap every stale data key, one committed transaction per batch: safe to kill, resumable.

    A rerun starts over from the lowest id; rows done before are no longer stale, so it only
    does what is left (the KEK id in each row is the persisted cursor).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    result = RewrapResult()
    started = time.perf_counter()
    after = 0
    while True:
        with factory() as session:
            ensure_key_check(session, keyring)
            batch = rewrap_batch(session, keyring, batch_size=batch_size, after_id=after)
            if batch.seen == 0:
                session.rollback()
                break
            failpoints.hit("vault.rewrap.before_commit", step=result.batches + 1)
            session.commit()
        result.batches += 1
        result.rewrapped += batch.rewrapped
        result.failed.extend(batch.failed)
        after = batch.last_id
        if progress is not None:
            progress(batch.seen)
        failpoints.hit("vault.rewrap.after_batch", step=result.batches)
    result.seconds = time.perf_counter() - started
    return result


def retire_kek(session: Session, keyring: Keyring, kek_id: str) -> Keyring:
    """Mark ``kek_id`` retired (audited) and return the keyring without it; refuse while it wraps data keys.

    The caller commits, then saves the returned keyring to the key file.
    """
    if kek_id not in keyring.keys:
        raise NotFoundError(f"{kek_id} is not in the keyring.")
    if kek_id == keyring.primary_id:
        raise ConflictError(f"{kek_id} is the primary key; rotate first (`govern keys rotate`), then rewrap.")
    now = utcnow()
    # Update first: this takes the row lock that wraps in flight hold shared (ensure_key_check).
    marked = rowcount(session.execute(update(KeyCheck).where(KeyCheck.kek_id == kek_id).values(retired_at=now)))
    if not marked:
        key = keyring.keys[kek_id]
        session.add(KeyCheck(kek_id=kek_id, check_value=envelope.key_check_value(key), retired_at=now))
        session.flush()
    remaining = session.scalar(select(func.count()).select_from(SecretVersion).where(
        SecretVersion.kek_id == kek_id, SecretVersion.status != "destroyed")) or 0
    if remaining:
        raise ConflictError(f"{kek_id} still wraps {remaining} data key(s); run `govern keys rewrap` first.")
    audit.record(session, "vault.kek_retired", target_type="kek", target_id=kek_id, details={"primary": keyring.primary_id})
    session.flush()
    keys = {k: v for k, v in keyring.keys.items() if k != kek_id}
    return Keyring(primary_id=keyring.primary_id, keys=keys)


def kinds() -> Iterable[str]:
    """The kinds of secret, in display order."""
    return SECRET_KINDS
