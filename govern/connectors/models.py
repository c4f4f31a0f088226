"""Platform connections, the accounts each covers, sync runs, member snapshots, platform identities
and the member lists that owners attest for accounts without an API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.accounts.models import Account
from govern.db import Base, utcnow

#: The platforms govern can read (and change) through their API.
CONNECTOR_PLATFORMS = ("meta", "linkedin", "tiktok")
CONNECTOR_LABELS = {"meta": "Meta", "linkedin": "LinkedIn", "tiktok": "TikTok Business Center"}
#: Which govern account platforms each connector covers.
COVERS = {"meta": ("facebook", "instagram", "threads"), "linkedin": ("linkedin",), "tiktok": ("tiktok",)}
#: Accounts on these platforms have no API to list managers: their owner attests the list.
ATTESTED_PLATFORMS = ("youtube", "x")
#: What a platform identity belongs to: a connector, or an attested platform.
IDENTITY_PLATFORMS = CONNECTOR_PLATFORMS + ATTESTED_PLATFORMS
IDENTITY_LABELS = {"meta": "Meta", "linkedin": "LinkedIn", "tiktok": "TikTok", "youtube": "YouTube", "x": "X"}
RUN_STATUSES = ("running", "done", "partial", "failed")


class Connection(Base):
    """A Meta business, a LinkedIn organisation or a TikTok Business Center govern reads through its API."""

    __tablename__ = "connector_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    #: The business id, organisation id or Business Center id.
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    #: The vault secret (kind api_token) holding the platform token; its expiry is watched like any credential.
    secret_id: Mapped[int] = mapped_column(ForeignKey("secrets.id"), index=True)
    #: An admin allowed govern to remove leavers on the platform without a person pressing the button.
    auto_remove: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    last_synced_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"platform IN {CONNECTOR_PLATFORMS!r}", name="platform"),
        UniqueConstraint("platform", "external_id", name="uq_connector_connections_platform_external_id"),
    )

    @property
    def label(self) -> str:
        """Human name of the connector."""
        return CONNECTOR_LABELS.get(self.platform, self.platform)


class ConnectedAccount(Base):
    """A govern account that a connection covers, with the account's id on the platform (page id, organisation id...)."""

    __tablename__ = "connector_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connector_connections.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    platform_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    connection: Mapped[Connection] = relationship(lazy="joined")
    account: Mapped[Account] = relationship(lazy="joined")


class SyncRun(Base):
    """One sync: which accounts it covers and how far it got (a run that dies is continued by the next)."""

    __tablename__ = "connector_sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: "job", "cli" or "web".
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    finished_at: Mapped[datetime | None]
    #: HTTP requests sent to the platforms.
    requests: Mapped[int] = mapped_column(Integer, default=0)
    #: JSON: {"accounts": [ids], "done": {id: members}, "failed": {id: "the platform's error in plain words"}}.
    progress_json: Mapped[str] = mapped_column(Text, default="{}")

    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
                      Index("ix_connector_sync_runs_status_id", "status", "id"))

    @property
    def progress(self) -> dict[str, Any]:
        """The decoded progress."""
        value: dict[str, Any] = json.loads(self.progress_json or "{}")
        return value


class MemberSnapshot(Base):
    """Who held which platform role on an account, as a sync saw it; a new row only when the set changed."""

    __tablename__ = "connector_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    #: When this member set was first seen (it holds until the next snapshot of the account).
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The last sync that saw the same set (only this column changes on an unchanged sync).
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: SHA-256 of the canonical member list: an unchanged set writes no row.
    digest: Mapped[str] = mapped_column(String(64))
    #: JSON list of {"id", "name", "email", "roles"}: never a token.
    members_json: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_connector_snapshots_account_id_taken_at", "account_id", "taken_at"),)

    @property
    def members(self) -> list[dict[str, Any]]:
        """The decoded member list."""
        value: list[dict[str, Any]] = json.loads(self.members_json or "[]")
        return value


class PlatformIdentity(Base):
    """A Person's identity on a platform (LinkedIn member URN, Meta business-scoped id...), linked once, audited."""

    __tablename__ = "connector_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint(f"platform IN {IDENTITY_PLATFORMS!r}", name="platform"),
        UniqueConstraint("platform", "external_id", name="uq_connector_identities_platform_external_id"),
    )

    @property
    def platform_label(self) -> str:
        """The platform's name as people write it."""
        return IDENTITY_LABELS.get(self.platform, self.platform)


class Attestation(Base):
    """The owner of an account without an API states who manages it, as they see it on the platform."""

    __tablename__ = "connector_attestations"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    attested_at: Mapped[datetime] = mapped_column(default=utcnow)
    attested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: JSON list of {"id", "name", "email", "roles"} as the owner typed it.
    members_json: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    #: Stored name of an optional screenshot under the uploads folder.
    screenshot: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_connector_attestations_account_id_attested_at", "account_id", "attested_at"),)

    @property
    def members(self) -> list[dict[str, Any]]:
        """The decoded member list."""
        value: list[dict[str, Any]] = json.loads(self.members_json or "[]")
        return value
