"""Policy versions and acknowledgements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow


class PolicyVersion(Base):
    """One published version of the policy for one tier (e.g. standard, privileged)."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    tier: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    #: Markdown; rendered with raw HTML disabled.
    body_markdown: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (UniqueConstraint("tier", "version", name="uq_policy_versions_tier_version"),)


class Acknowledgement(Base):
    """A person accepted a policy version."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    accepted_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("person_id", "policy_version_id", name="uq_acknowledgements_person_version"),)


class AcknowledgementLink(Base):
    """A one-time link, sent by email, with which a person without a login accepts a policy version.

    Only the SHA-256 digest of its token is stored; the link works once, until ``expires_at``, for
    the version it names (a newer version makes it void), and sending a new one voids the old.
    """

    __tablename__ = "acknowledgement_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[datetime]
    #: When it was used to accept, or voided by a newer link; either way it works no more.
    used_at: Mapped[datetime | None]
    #: The grant that waited for the acceptance (shown to the sender afterwards), if any.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    role_code: Mapped[str | None] = mapped_column(String(16))
    #: The request (a grant waiting for approval) that waited for it, if any.
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("grants.id"))
