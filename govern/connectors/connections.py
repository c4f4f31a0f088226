"""Connections: IT connects a Meta business, a LinkedIn organisation or a TikTok Business Center, lists the
govern accounts it covers, and links people's platform identities. The token stays in the vault."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import Account
from govern.audit.services import Actor
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.connectors.clients.base import ConnectorError, HttpBase
from govern.connectors.clients.linkedin import LinkedInClient
from govern.connectors.clients.meta import MetaClient
from govern.connectors.clients.tiktok import TikTokClient
from govern.connectors.models import (
    CONNECTOR_LABELS,
    CONNECTOR_PLATFORMS,
    COVERS,
    IDENTITY_PLATFORMS,
    ConnectedAccount,
    Connection,
    PlatformIdentity,
)
from govern.crypto.keyring import Keyring
from govern.directory.models import Person
from govern.errors import ConflictError, ForbiddenError, InvalidError, get_or_raise
from govern.notifications import services as notifications
from govern.vault.access import decrypt_version
from govern.vault.models import Secret, SecretVersion


@dataclass(frozen=True)
class SystemActor:
    """govern itself, when a job acts (reads a token, removes a leaver automatically)."""

    id: int | None = None
    email: str = "govern (connectors)"


SYSTEM = SystemActor()


@dataclass
class Settings:
    """Where each platform answers, the vault's keyring, and how to wait between retries."""

    meta_url: str = "https://graph.facebook.com/v21.0"
    linkedin_url: str = "https://api.linkedin.com"
    linkedin_version: str = "202411"
    tiktok_url: str = "https://business-api.tiktok.com"
    keyring: Keyring | None = None
    sleep: Callable[[float], None] = time.sleep
    backoff_start: float = 1.0
    max_attempts: int = 5
    transport: httpx.BaseTransport | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], keyring: Keyring | None, **extra: Any) -> Settings:
        """Settings from the app's configuration (GOVERN_META_GRAPH_URL, GOVERN_LINKEDIN_API_URL, GOVERN_TIKTOK_API_URL)."""
        return cls(meta_url=str(config.get("META_GRAPH_URL") or cls.meta_url),
                   linkedin_url=str(config.get("LINKEDIN_API_URL") or cls.linkedin_url),
                   linkedin_version=str(config.get("LINKEDIN_VERSION") or cls.linkedin_version),
                   tiktok_url=str(config.get("TIKTOK_API_URL") or cls.tiktok_url), keyring=keyring, **extra)


def may_manage(actor: Actor | None) -> bool:
    """IT and admins manage connections."""
    roles = set(getattr(actor, "roles", ()) or ())
    return bool(roles & {"it", "admin"})


def token_of(session: Session, settings: Settings, connection: Connection, actor: Actor | None) -> str:
    """The connection's token, decrypted from the vault's current version; never logged or audited."""
    if settings.keyring is None:
        raise ConnectorError("The vault is sealed: govern cannot read the platform token.")
    version = session.scalar(select(SecretVersion).where(SecretVersion.secret_id == connection.secret_id,
                                                         SecretVersion.status == "current"))
    if version is None:
        raise ConnectorError("The connection's token has no current value in the vault.")
    payload = decrypt_version(session, actor=actor or SYSTEM, keyring=settings.keyring, version=version)
    return str(payload.get("value") or "")


def client_for(session: Session, settings: Settings, connection: Connection, actor: Actor | None = None) -> HttpBase:
    """A client of the connection's platform, holding its token."""
    token = token_of(session, settings, connection, actor)
    common: dict[str, Any] = {"sleep": settings.sleep, "backoff_start": settings.backoff_start,
                              "max_attempts": settings.max_attempts, "transport": settings.transport}
    if connection.platform == "meta":
        return MetaClient(settings.meta_url, token, **common)
    if connection.platform == "linkedin":
        return LinkedInClient(settings.linkedin_url, token, version=settings.linkedin_version, **common)
    return TikTokClient(settings.tiktok_url, token, **common)


def get_connection(session: Session, connection_id: int) -> Connection:
    """Return the connection or raise NotFoundError."""
    return get_or_raise(session, Connection, connection_id, "No such connection.")


def _clean_id(value: str, field: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > 100 or any(ch.isspace() or ch in "/?#&" for ch in text):
        raise InvalidError("Enter the platform's id (letters, digits, no spaces or slashes).", {field: "Enter the id."})
    return text


def create_connection(session: Session, *, actor: User, platform: str, external_id: str, name: str,
                      secret: Secret, auto_remove: bool = False) -> Connection:
    """Connect a Meta business, LinkedIn organisation or TikTok Business Center through a vaulted api_token."""
    if not may_manage(actor):
        raise ForbiddenError("Only IT or an admin can connect a platform.")
    if platform not in CONNECTOR_PLATFORMS:
        raise InvalidError("Choose Meta, LinkedIn or TikTok.", {"platform": "Choose a platform."})
    if secret.kind != "api_token":
        raise InvalidError("The token must be a vault secret of kind API token.", {"secret": "Choose an API token."})
    if auto_remove and "admin" not in (actor.roles or ()):
        raise ForbiddenError("Only an admin can allow automatic removal.")
    name = (name or "").strip()[:200] or f"{CONNECTOR_LABELS[platform]} {external_id}"
    connection = Connection(platform=platform, external_id=_clean_id(external_id, "external_id"), name=name,
                            secret_id=secret.id, auto_remove=auto_remove, created_by_id=actor.id)
    session.add(connection)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError("This platform id is connected already.") from None
    audit.record(session, "connectors.connected", actor=actor, target_type="connection", target_id=connection.id,
                 details={"platform": platform, "external_id": connection.external_id, "secret_id": secret.id,
                          "auto_remove": auto_remove})
    return connection


def set_auto_remove(session: Session, *, actor: User, connection: Connection, allowed: bool) -> Connection:
    """An admin allows (or stops) automatic removal of leavers on this connection."""
    if "admin" not in (actor.roles or ()):
        raise ForbiddenError("Only an admin can change automatic removal.")
    connection.auto_remove = allowed
    session.flush()
    audit.record(session, "connectors.auto_remove_changed", actor=actor, target_type="connection",
                 target_id=connection.id, details={"auto_remove": allowed})
    return connection


def cover_account(session: Session, *, actor: User, connection: Connection, account: Account,
                  platform_id: str) -> ConnectedAccount:
    """The connection covers ``account``, known on the platform as ``platform_id`` (page id, organisation id...)."""
    if not may_manage(actor):
        raise ForbiddenError("Only IT or an admin can change a connection.")
    if account.platform not in COVERS[connection.platform]:
        raise InvalidError(f"A {connection.label} connection covers {', '.join(COVERS[connection.platform])} accounts.",
                           {"account": "Not an account of this platform."})
    row = ConnectedAccount(connection_id=connection.id, account_id=account.id,
                           platform_id=_clean_id(platform_id, "platform_id"))
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError(f"{account.display_name} is covered by a connection already.") from None
    audit.record(session, "connectors.account_covered", actor=actor, target_type="account", target_id=account.id,
                 details={"connection_id": connection.id, "platform_id": row.platform_id})
    return row


def link_identity(session: Session, *, actor: User, person: Person, platform: str,
                  external_id: str) -> PlatformIdentity:
    """Record that ``person`` is ``external_id`` on ``platform`` (IT, an admin, or the person themselves)."""
    if not (may_manage(actor) or actor.person_id == person.id):
        raise ForbiddenError("Only IT, an admin or the person can link a platform identity.")
    if platform not in IDENTITY_PLATFORMS:
        raise InvalidError("Choose a platform.", {"platform": "Choose a platform."})
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        raise InvalidError("Enter the platform id (e.g. urn:li:person:…).", {"external_id": "Enter the id."})
    row = PlatformIdentity(person_id=person.id, platform=platform, external_id=external_id, created_by_id=actor.id)
    session.add(row)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ConflictError("This platform identity is linked to someone already.") from None
    audit.record(session, "connectors.identity_linked", actor=actor, target_type="person", target_id=person.id,
                 details={"platform": platform, "external_id": external_id, "by_the_person": not may_manage(actor)})
    if not may_manage(actor):
        # A link decides whom a platform member counts as: IT sees every one a person made for themselves.
        notifications.notify(session, kind="connectors.identity", users=active_users_with_roles(session, ["it"]),
                             link=f"/people/{person.id}",
                             title=f"{person.full_name} linked their {platform} identity {external_id}",
                             body="Check that it is theirs; unlink it from their page if not.")
    return row


def unlink_identity(session: Session, *, actor: User, identity: PlatformIdentity) -> None:
    """Undo a wrong link (IT or an admin); the member is unmatched again at the next drift."""
    if not may_manage(actor):
        raise ForbiddenError("Only IT or an admin can unlink a platform identity.")
    details = {"platform": identity.platform, "external_id": identity.external_id}
    person_id = identity.person_id
    session.delete(identity)
    session.flush()
    audit.record(session, "connectors.identity_unlinked", actor=actor, target_type="person", target_id=person_id,
                 details=details)


def identities_of(session: Session, person_id: int) -> list[PlatformIdentity]:
    """The platform identities linked to a person."""
    return list(session.scalars(select(PlatformIdentity).where(PlatformIdentity.person_id == person_id)
                                .order_by(PlatformIdentity.platform, PlatformIdentity.id)))


def connected_accounts(session: Session, account_id: int | None = None) -> list[ConnectedAccount]:
    """Every covered account (or one), in a stable order."""
    query = select(ConnectedAccount).order_by(ConnectedAccount.connection_id, ConnectedAccount.id)
    if account_id is not None:
        query = query.where(ConnectedAccount.account_id == account_id)
    return list(session.scalars(query).unique())


def connected_labels(session: Session, account_ids: set[int]) -> dict[int, str]:
    """Account id -> the name of the platform whose connection covers it ("Meta"...), for those covered."""
    if not account_ids:
        return {}
    rows = session.execute(select(ConnectedAccount.account_id, Connection.platform).join(
        Connection, Connection.id == ConnectedAccount.connection_id).where(ConnectedAccount.account_id.in_(account_ids)))
    return {account_id: CONNECTOR_LABELS[platform] for account_id, platform in rows}


def covered_counts(session: Session) -> dict[int, int]:
    """Connection id -> how many accounts it covers, in one query."""
    return {cid: n for cid, n in session.execute(select(ConnectedAccount.connection_id, func.count())
                                                 .group_by(ConnectedAccount.connection_id))}
