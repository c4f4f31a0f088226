"""Accounts, the role catalogue and how each role maps to the platforms' own role names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow
from govern.directory.models import Person

PLATFORMS = (
    "facebook", "instagram", "x", "linkedin", "tiktok", "youtube", "threads",
    "pinterest", "snapchat", "bluesky", "mastodon", "other",
)
PLATFORM_LABELS = {
    "facebook": "Facebook", "instagram": "Instagram", "x": "X", "linkedin": "LinkedIn",
    "tiktok": "TikTok", "youtube": "YouTube", "threads": "Threads", "pinterest": "Pinterest",
    "snapchat": "Snapchat", "bluesky": "Bluesky", "mastodon": "Mastodon", "other": "Other",
}
ACCOUNT_STATUSES = ("active", "locked", "archived")
ACCOUNT_TIERS = ("standard", "high", "critical")
ROLE_CODES = ("owner", "admin", "publisher", "moderator", "advertiser", "analyst")


class Account(Base):
    """An official social media account of the company."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    #: Without the leading @, lower-cased for uniqueness per platform.
    handle: Mapped[str] = mapped_column(String(120))
    url: Mapped[str] = mapped_column(String(500))
    display_name: Mapped[str] = mapped_column(String(200))
    business_owner_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    crisis_contact_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    #: Who holds the recovery email: a person, or else a named shared mailbox.
    recovery_email_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    recovery_email_label: Mapped[str | None] = mapped_column(String(200))
    recovery_phone_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    recovery_phone_label: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    status: Mapped[str] = mapped_column(String(16), default="active")
    rotation_interval_days: Mapped[int] = mapped_column(Integer, default=90)
    max_credential_holders: Mapped[int] = mapped_column(Integer, default=3)
    #: No account may depend on one person.
    min_admins: Mapped[int] = mapped_column(Integer, default=2)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    business_owner: Mapped[Person | None] = relationship(foreign_keys=[business_owner_id])
    crisis_contact: Mapped[Person | None] = relationship(foreign_keys=[crisis_contact_id])
    recovery_email_person: Mapped[Person | None] = relationship(foreign_keys=[recovery_email_person_id])
    recovery_phone_person: Mapped[Person | None] = relationship(foreign_keys=[recovery_phone_person_id])

    __table_args__ = (
        UniqueConstraint("platform", "handle", name="uq_accounts_platform_handle"),
        CheckConstraint(f"platform IN {PLATFORMS!r}", name="platform"),
        CheckConstraint(f"status IN {ACCOUNT_STATUSES!r}", name="status"),
        CheckConstraint(f"tier IN {ACCOUNT_TIERS!r}", name="tier"),
        CheckConstraint("min_admins >= 1 AND max_credential_holders >= 1 AND rotation_interval_days >= 1", name="limits"),
        Index("ix_accounts_status_platform", "status", "platform"),
        # The access report's account and platform sorts walk accounts in these orders.
        Index("ix_accounts_display_name_id", "display_name", "id"),
        Index("ix_accounts_platform_display_name_id", "platform", "display_name", "id"),
    )

    @property
    def platform_label(self) -> str:
        """Human name of the platform."""
        return PLATFORM_LABELS.get(self.platform, self.platform)


class Role(Base):
    """A role of the catalogue: what a person may do on an account."""

    __tablename__ = "roles"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300))
    #: Holders may reveal the account's shared credentials.
    may_reveal: Mapped[bool] = mapped_column(default=False)
    #: Grants of this role need a second person's approval (four-eyes).
    needs_second_approval: Mapped[bool] = mapped_column(default=False)
    #: Counts towards the account's minimum number of admins.
    is_admin_role: Mapped[bool] = mapped_column(default=False)
    #: The policy tier its holders must have accepted.
    policy_tier: Mapped[str] = mapped_column(String(32), default="standard")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class PlatformRoleName(Base):
    """The platform's own name for a catalogue role (shown when granting, used for removal tasks)."""

    __tablename__ = "platform_role_names"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: A platform, or a family such as "meta_business" shared by Facebook and Instagram.
    platform: Mapped[str] = mapped_column(String(32))
    role_code: Mapped[str] = mapped_column(ForeignKey("roles.code"))
    #: Which of the platform's role systems this name belongs to, e.g. "Meta business portfolio".
    system: Mapped[str] = mapped_column(String(80))
    platform_role: Mapped[str] = mapped_column(String(120))

    __table_args__ = (UniqueConstraint("platform", "role_code", "system", name="uq_platform_role_names_mapping"),)
