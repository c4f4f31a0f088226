"""Groups the identity provider keeps (SCIM /Groups), and who is in them, from which source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
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
