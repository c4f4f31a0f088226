"""Bearer tokens of identity providers (stored as digests) and the SCIM ids of people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow


class ScimToken(Base):
    """A bearer token an admin created for an identity provider; revoked, never deleted."""

    __tablename__ = "scim_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    #: SHA-256 of the token (it is 256 random bits, so no slow hash is needed).
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters, so admins can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ScimIdentity(Base):
    """What the identity provider knows a person by; the SCIM resource id is the person's id."""

    __tablename__ = "scim_identities"

    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
    #: The userName as the provider sent it (usually the email; Entra ID may send a UPN).
    user_name: Mapped[str | None] = mapped_column(String(320), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    #: The emails list as the provider sent it (JSON), returned as is; the person's email is its work one.
    emails_json: Mapped[str | None] = mapped_column(Text)
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    formatted_name: Mapped[str | None] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    #: The identity provider deleted the user: SCIM answers 404; the person stays in the directory.
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
