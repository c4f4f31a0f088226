"""Users, their app roles, web sessions, recovery codes, setup tokens and login throttles."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow
from govern.directory.models import Person

APP_ROLES = ("admin", "it", "manager", "hr", "auditor")


class User(Base):
    """A login to govern, tied to a Person."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), unique=True)
    #: The login name, lower-cased.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: argon2id PHC string; None until the user completes setup.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    #: The TOTP seed, sealed with AES-256-GCM under the MFA key (never stored in clear).
    mfa_seed_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    mfa_enabled_at: Mapped[datetime | None]
    #: The last TOTP time step accepted; a code at or below it is a replay.
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]
    deactivated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: The IANA zone pages show this user times in (Europe/Paris); None: the organisation's GOVERN_TIME_ZONE.
    time_zone: Mapped[str | None] = mapped_column(String(64))

    person: Mapped[Person] = relationship(lazy="joined")
    role_rows: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", foreign_keys="UserRole.user_id"
    )

    @property
    def roles(self) -> frozenset[str]:
        """The user's app roles (every user is also plain staff), within the cap of the request's API token."""
        held = frozenset(row.role for row in self.role_rows)
        cap: frozenset[str] | None = self.__dict__.get("_role_cap")
        return held if cap is None else held & cap

    def cap_roles(self, roles: frozenset[str]) -> None:
        """Act, for the rest of this request, with no more than ``roles`` (an API token's cap).

        A plain attribute of this instance, never stored: the request's session, and the cap with it,
        end with the request.
        """
        self.__dict__["_role_cap"] = frozenset(roles)

    @property
    def has_mfa(self) -> bool:
        """True once a TOTP authenticator has been enrolled and confirmed."""
        return self.mfa_seed_sealed is not None and self.mfa_enabled_at is not None

    # Flask-Login's user protocol.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class UserRole(Base):
    """One app role held by a user."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint(f"role IN {APP_ROLES!r}", name="role"),)


class WebSession(Base):
    """Server-side session state; the browser's cookie holds only a random token."""

    __tablename__ = "web_sessions"

    #: SHA-256 of the cookie token, so a database reader cannot ride a session.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: A random handle for listing and ending the session on a page.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: When the full login (password and second factor) completed; the absolute limit counts from here.
    authenticated_at: Mapped[datetime | None]
    #: When a second factor was last verified in this session (step-up freshness).
    mfa_verified_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))


class RecoveryCode(Base):
    """A one-time recovery code, stored as an argon2id hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class SetupToken(Base):
    """A one-time secret that lets a user set a password and enrol a second factor."""

    __tablename__ = "setup_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: "setup" (new user: password and TOTP) or "mfa_reset" (existing password, new TOTP).
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    #: When the secret was typed in: it is spent then, and only the web session that redeemed it
    #: may finish the setup (a replay, even a concurrent one, is refused).
    redeemed_at: Mapped[datetime | None]
    #: When the setup finished (the authenticator was confirmed).
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint("purpose IN ('setup', 'mfa_reset')", name="purpose"),)


class LoginThrottle(Base):
    """Failure counters per account and per client IP (the database throttle store)."""

    __tablename__ = "login_throttles"

    #: "account:<sha256 of email>" or "ip:<address>".
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Consecutive failures since the last success; lockouts do not clear it (NIST's hard cap).
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


API_TOKEN_KINDS = ("personal", "service")


class ApiToken(Base):
    """A bearer token of the API (/api/v1): stored as a digest, shown once, revoked, never deleted.

    Every token acts as a user: a personal token as the user who made it, a service token as the
    login of the person who owns it (who answers for the integration). Its roles are that user's
    roles, capped by ``roles_json`` for a service token, and its ``scopes`` cap what it may call.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 of the whole token (256 random bits: no slow hash needed).
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token's first characters ("govp_Ab3d"), so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    #: The user the token acts as.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: The person who answers for the token (the user's person; for a service token, its owner).
    owner_person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    #: JSON list of scopes (govern.auth.apitokens.SCOPES).
    scopes_json: Mapped[str] = mapped_column(Text)
    #: JSON list of app roles a service token may use at most; None: all of the user's roles.
    roles_json: Mapped[str | None] = mapped_column(Text)
    #: JSON list of account ids whose secrets a ``secrets:reveal`` token may reveal.
    account_ids_json: Mapped[str | None] = mapped_column(Text)
    #: A service token that may reveal works only once a second IT user approved it.
    approved_at: Mapped[datetime | None]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(String(200))

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    owner: Mapped[Person] = relationship(foreign_keys=[owner_person_id])

    __table_args__ = (CheckConstraint(f"kind IN {API_TOKEN_KINDS!r}", name="kind"),)


class Passkey(Base):
    """A WebAuthn credential (a passkey or a security key) a user registered as a second factor.

    Only the public key is stored: the private key never leaves the authenticator.
    """

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The authenticator's credential id (raw bytes; at most 1,023 by the specification).
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    #: The COSE public key the registration returned.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The authenticator's signature counter; 0 for the many that do not count.
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(80))
    #: JSON list of transports the browser reported ("internal", "usb", "hybrid"...), a hint for sign-in.
    transports_json: Mapped[str] = mapped_column(Text, default="[]")
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    #: Backup eligible (BE): a synced passkey rather than one bound to a device; fixed at registration.
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    #: Backup state (BS) as of the last use.
    backup_state: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class FactorPolicy(Base):
    """One row: the app roles whose users must use a phishing-resistant factor (a passkey)."""

    __tablename__ = "factor_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: JSON list of app roles.
    passkey_roles_json: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime | None]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
