"""OpenID providers, the identities they vouch for, and who must sign in through them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from govern.db import Base, utcnow


class SsoProvider(Base):
    """An OpenID Connect identity provider people may sign in through (Okta, Entra ID...)."""

    __tablename__ = "sso_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The short name in the sign-in address (/login/sso/<slug>).
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The issuer identifier; discovery reads <issuer>/.well-known/openid-configuration.
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    #: The name of the environment variable that holds the client secret (never the secret itself).
    client_secret_env: Mapped[str] = mapped_column(String(100))
    #: Space-separated email domains accepted from this provider (empty: any domain).
    allowed_domains: Mapped[str] = mapped_column(Text, default="")
    #: The id-token claim that lists the person's groups ("groups" at Okta and Entra ID).
    groups_claim: Mapped[str] = mapped_column(String(100), default="groups")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def domains(self) -> list[str]:
        """The allowed email domains, lower-cased."""
        return [d.lower().lstrip("@") for d in self.allowed_domains.split() if d.strip()]


class SsoIdentity(Base):
    """A provider's subject, linked to a govern user at the first sign-in."""

    __tablename__ = "sso_identities"
    __table_args__ = (UniqueConstraint("provider_id", "subject", name="uq_sso_identities_provider_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("sso_providers.id", ondelete="CASCADE"))
    #: The id token's ``sub``: stable for the person at that provider.
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The groups the last id token named (JSON list), to see what changed at the next sign-in.
    groups_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class SsoSettings(Base):
    """Who must sign in through SSO (one row, id 1): everyone, or the holders of some app roles."""

    __tablename__ = "sso_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    required_for_all: Mapped[bool] = mapped_column(default=False)
    #: Space-separated app roles whose holders may not sign in with a password.
    required_roles: Mapped[str] = mapped_column(Text, default="")
    #: The one admin who may still sign in with password and second factor (every use audited).
    break_glass_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
