"""Secrets, their encrypted versions, exposures (who saw which version), and KEK check values."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.accounts.models import Account
from govern.db import Base, utcnow

SECRET_KINDS = ("password", "totp", "recovery_codes", "api_token", "note")
KIND_LABELS = {
    "password": "Password", "totp": "2FA seed (TOTP)", "recovery_codes": "Recovery codes",
    "api_token": "API token", "note": "Secure note",
}
#: pending: staged by a rotation, not yet in use; current: the one in use (one per secret);
#: retired: replaced, kept for rollback until the retention ends; destroyed: data key shredded.
VERSION_STATUSES = ("pending", "current", "retired", "destroyed")
#: value: the plaintext; totp_code: live codes only; totp_seed: the 2FA seed itself.
EXPOSURE_KINDS = ("value", "totp_code", "totp_seed")
CURRENT_CONDITION = "status = 'current'"
PENDING_CONDITION = "status = 'pending'"


class Secret(Base):
    """A credential of an account; its value lives only in its encrypted versions."""

    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    #: Login name or email used with a password (metadata, never the value).
    login: Mapped[str | None] = mapped_column(String(320))
    url: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    #: When an API token stops working at the platform (tokens only).
    token_expires_at: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    account: Mapped[Account] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"kind IN {SECRET_KINDS!r}", name="kind"),
        UniqueConstraint("account_id", "label", name="uq_secrets_account_id_label"),
    )

    @property
    def kind_label(self) -> str:
        """Human name of the kind."""
        return KIND_LABELS.get(self.kind, self.kind)


class SecretVersion(Base):
    """One value of a secret: AES-256-GCM ciphertext under its own data key, wrapped by a KEK."""

    __tablename__ = "secret_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    #: The data key, encrypted by the key-encryption key ``kek_id``; zeroed when destroyed.
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: When it became current (a staged version only becomes current once confirmed).
    confirmed_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    destroyed_at: Mapped[datetime | None]

    secret: Mapped[Secret] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"status IN {VERSION_STATUSES!r}", name="status"),
        UniqueConstraint("secret_id", "version", name="uq_secret_versions_secret_id_version"),
        # One current and at most one pending version per secret, even when two requests race.
        Index("uq_secret_versions_current", "secret_id", unique=True,
              sqlite_where=text(CURRENT_CONDITION), postgresql_where=text(CURRENT_CONDITION)),
        Index("uq_secret_versions_pending", "secret_id", unique=True,
              sqlite_where=text(PENDING_CONDITION), postgresql_where=text(PENDING_CONDITION)),
        # Rewrap walks the data keys of one KEK in id order; retire counts them.
        Index("ix_secret_versions_kek_id_id", "kek_id", "id"),
        Index("ix_secret_versions_status_retired_at", "status", "retired_at"),
    )


class Exposure(Base):
    """Someone saw (part of) a secret version: what rotation and offboarding work from."""

    __tablename__ = "exposures"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_version_id: Mapped[int] = mapped_column(ForeignKey("secret_versions.id"), index=True)
    #: Denormalised from the version so account and secret pages list exposures in one query.
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    exposed_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[SecretVersion] = relationship()

    __table_args__ = (
        CheckConstraint(f"kind IN {EXPOSURE_KINDS!r}", name="kind"),
        Index("ix_exposures_account_id_exposed_at", "account_id", "exposed_at"),
        Index("ix_exposures_person_id_exposed_at", "person_id", "exposed_at"),
        Index("ix_exposures_secret_id_exposed_at", "secret_id", "exposed_at"),
    )


class KeyCheck(Base):
    """The key check value of each KEK this database has used: a wrong keyring is caught at start."""

    __tablename__ = "vault_key_checks"

    kek_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: HMAC of a fixed label under the KEK; identifies the key without revealing it.
    check_value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set by `govern keys retire`; a retired KEK never wraps a data key again.
    retired_at: Mapped[datetime | None]
