"""Who may see and reveal a secret, and the reveal itself (audited, with its exposure record)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Role
from govern.accounts.services import can_see_account
from govern.audit.services import Actor
from govern.auth.models import User
from govern.crypto import envelope
from govern.crypto.envelope import Binding, Sealed, VaultCryptoError
from govern.crypto.keyring import Keyring
from govern.crypto.totp import TotpParams
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, NotFoundError
from govern.grants.models import Grant
from govern.vault.errors import SecretDecryptError, StepUpRequiredError
from govern.vault.keys import require_keyring
from govern.vault.models import EXPOSURE_KINDS, Exposure, Secret, SecretVersion
from govern.vault.values import MAX_REASON, invalid_field, totp_params
from govern.vault.versions import current_version, record_setter_exposure, retire_version, seal_version

#: Who keeps the vault: custodians may reveal any secret, even of a locked account.
CUSTODIAN_ROLE = "it"
#: Who may see a TOTP seed (in addition to being allowed to reveal the secret at all).
SEED_ROLES = frozenset({"it", "admin"})
#: App roles that see every secret's metadata (never its value).
METADATA_ROLES = frozenset({"admin", "it", "auditor"})

#: Seconds a revealed value (password, token, note, recovery codes, 2FA seed) stays on the page.
REVEAL_VISIBLE_SECONDS = 30

# --- who may see and reveal --------------------------------------------------------------------------


def _revealing_grant_exists(session: Session, user: User, account_id: int) -> bool:
    now = utcnow()
    return session.scalar(
        select(Grant.id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == user.person_id, Grant.account_id == account_id, Grant.status == "active",
            Grant.starts_at <= now, (Grant.expires_at.is_(None)) | (Grant.expires_at > now), Role.may_reveal.is_(True),
        ).limit(1)
    ) is not None


def refusal(session: Session, user: User, secret: Secret, what: str = "value") -> str | None:
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


def can_see_secret(session: Session, user: User, secret: Secret) -> bool:
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
        raise invalid_field("reason", "Say why you need to see it; the reason is recorded.")
    if len(text) > MAX_REASON:
        raise invalid_field("reason", f"Keep the reason under {MAX_REASON} characters.")
    return text


def decrypt_version(session: Session, *, actor: Actor, keyring: Keyring, version: SecretVersion) -> dict[str, Any]:
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


def reveal(session: Session, *, actor: User, keyring: Keyring | None, secret: Secret, reason: str,
           mfa_fresh: bool, what: str = "value") -> Revealed:
    """Show a secret's current value (or a live TOTP code, or the seed) to an allowed actor.

    Refusals are audited. The audit event and the exposure are written with the reveal, in
    the caller's transaction.
    """
    ring = require_keyring(keyring)
    if what not in EXPOSURE_KINDS or (secret.kind == "totp") != (what != "value"):
        raise invalid_field("what", "This secret cannot be shown that way.")
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


def mark_recovery_code_used(session: Session, *, actor: User, keyring: Keyring | None, secret: Secret, index: int,
                            mfa_fresh: bool) -> SecretVersion:
    """Mark one recovery code used: a new current version, the old one retired."""
    ring = require_keyring(keyring)
    if secret.kind != "recovery_codes":
        raise invalid_field("index", "Only recovery codes can be marked used.")
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
        raise invalid_field("index", "No such code.")
    if codes[index]["used_at"] is not None:
        raise ConflictError("That code is marked used already.")
    codes[index]["used_at"] = utcnow().isoformat(timespec="seconds")
    now = utcnow()
    retire_version(old, now)
    session.flush()
    version = seal_version(session, ring, secret, {"codes": codes}, actor=actor, status="current")
    secret.updated_at, secret.updated_by_id = now, actor.id
    record_setter_exposure(session, actor, secret, version, "marked a recovery code used")
    audit.record(session, "vault.recovery_code_used", actor=actor, target_type="secret", target_id=secret.id,
                 details={"account_id": secret.account_id, "position": index + 1, "version": version.version,
                          "left": sum(1 for c in codes if c["used_at"] is None)})
    session.flush()
    return version


def record_reveal_denied(session: Session, *, actor: Actor, secret: Secret, exposure: str, why: str) -> None:
    """Audit a refused reveal of ``secret`` (``exposure``: value, totp_code, totp_seed) and why."""
    audit.record(session, "vault.reveal_denied", actor=actor, target_type="secret", target_id=secret.id, outcome="denied",
                 details={"account_id": secret.account_id, "exposure": exposure, "why": why})
    session.flush()


