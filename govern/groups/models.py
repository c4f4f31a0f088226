"""Groups the identity provider keeps (SCIM /Groups), and who is in them, from which source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow
from govern.directory.models import Person

#: Where a membership comes from: SCIM provisioning, or the groups claim of an SSO provider ("sso:<slug>").
SCIM_SOURCE = "scim"


class DirectoryGroup(Base):
    """A group of the identity provider (Entra ID, Okta): its name, its id there, its members."""

    __tablename__ = "directory_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255), unique=True)
    #: The provider's own id of the group (Entra's object id, Okta's group id), when it sends one.
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(back_populates="group", cascade="all, delete-orphan",
                                                      order_by="GroupMember.id")


class GroupMember(Base):
    """One person in one group, as one source says (SCIM, or an SSO provider's groups claim)."""

    __tablename__ = "group_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("directory_groups.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    source: Mapped[str] = mapped_column(String(60), default=SCIM_SOURCE)
    #: The label the identity provider gave the member (SCIM members.display), returned as it was sent.
    display: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[DirectoryGroup] = relationship(back_populates="members")
    person: Mapped[Person] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("group_id", "person_id", "source"),)


MAPPING_STATUSES = ("pending", "active")
#: What a mapping did for one member: a grant or an app role it gave; a grant that waits for the person to
#: accept the current policy, or for a login to exist; access the person already held by hand (left alone
#: when they leave the group); or a grant the rules refused (retried at the next change).
EFFECT_STATES = ("granted", "role_added", "held_by_hand", "waiting_policy", "waiting_login", "blocked")


class GroupMapping(Base):
    """A group gives its members an app role, or a role on an account (a grant that follows membership).

    An admin proposes it; one that gives the admin app role, or an account role that needs a second approval
    or reveals credentials, waits for a second admin, as grants do.
    """

    __tablename__ = "group_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("directory_groups.id", ondelete="CASCADE"), index=True)
    app_role: Mapped[str | None] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    role_code: Mapped[str | None] = mapped_column(ForeignKey("roles.code"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    group: Mapped[DirectoryGroup] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("(app_role IS NOT NULL AND account_id IS NULL AND role_code IS NULL) OR "
                        "(app_role IS NULL AND account_id IS NOT NULL AND role_code IS NOT NULL)", name="one_kind"),
        CheckConstraint(f"status IN {MAPPING_STATUSES!r}", name="status"),
    )


class GroupEffect(Base):
    """What one mapping did for one person, so leaving undoes exactly that and nothing given by hand."""

    __tablename__ = "group_effects"

    id: Mapped[int] = mapped_column(primary_key=True)
    mapping_id: Mapped[int] = mapped_column(ForeignKey("group_mappings.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("grants.id"))
    note: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("mapping_id", "person_id"),
                      CheckConstraint(f"state IN {EFFECT_STATES!r}", name="state"))
