"""Exposure-driven rotation: what a person saw or could have seen, and the tasks opened when they
lose access (subscribed to govern.events.access_lost by govern.subscribers)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer, lazyload

from govern.accounts.models import Account, Role
from govern.audit.services import Actor
from govern.db import utcnow
from govern.directory.models import Person
from govern.errors import InvalidError
from govern.grants.models import Grant
from govern.rotation.custody import day_text
from govern.rotation.models import REASON_LABELS, RotationTask
from govern.rotation.reminders import notify_it
from govern.rotation.tasks import open_task
from govern.vault.models import Exposure, Secret, SecretVersion

EXPOSURE_MODES = ("could_have_seen", "revealed")
DEFAULT_EXPOSURE_MODE = "could_have_seen"


def exposure_mode(configured: str | None = None) -> str:
    """The configured exposure mode (GOVERN_ROTATION_EXPOSURE_MODE), defaulting to could_have_seen."""
    if configured is None:
        configured = current_app.config.get("ROTATION_EXPOSURE_MODE") if has_app_context() else None
    mode = (configured or DEFAULT_EXPOSURE_MODE).strip().lower()
    if mode not in EXPOSURE_MODES:
        raise ValueError(f"GOVERN_ROTATION_EXPOSURE_MODE must be one of {', '.join(EXPOSURE_MODES)}, got {configured!r}")
    return mode


@dataclass
class ExposedSecret:
    """A secret whose current version a person saw, or (could_have_seen) could have seen, and why."""

    secret: Secret
    version: SecretVersion
    whys: list[str]
    #: They actually revealed (or set) the current version, not only could have.
    revealed: bool


def exposed_secrets(session: Session, *, person: Person, account_ids: Iterable[int] | None = None,
                    mode: str | None = None, now: datetime | None = None) -> list[ExposedSecret]:
    """Secrets (current versions) ``person`` saw, or in mode could_have_seen could have seen through a
    revealing role since the version became current; revealed ones first. ``account_ids`` None: every
    account they revealed a secret of or held a revealing role on. A fixed number of queries.
    """
    mode = exposure_mode(mode)
    now = now or utcnow()
    revealing_grants: list[Grant] = []
    if mode == "could_have_seen":
        query = select(Grant).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == person.id, Role.may_reveal.is_(True), Grant.status.in_(("active", "expired", "revoked")))
        if account_ids is not None:
            query = query.where(Grant.account_id.in_(list(account_ids)))
        revealing_grants = list(session.scalars(query.order_by(Grant.id)).unique())
    if account_ids is None:
        ids = {g.account_id for g in revealing_grants} | set(session.scalars(
            select(Exposure.account_id).where(Exposure.person_id == person.id).distinct()))
    else:
        ids = set(account_ids)
    if not ids:
        return []
    # Every secret of an account they held a revealing role on; elsewhere only those whose current
    # version they saw (a leaver who revealed one secret on each of 200 accounts reads 200, not 1,000).
    grant_accounts = sorted({g.account_id for g in revealing_grants})
    seen_versions = select(Exposure.secret_version_id).where(Exposure.person_id == person.id)
    rows = session.execute(
        select(Secret, SecretVersion).join(SecretVersion, SecretVersion.secret_id == Secret.id)
        .where(Secret.account_id.in_(sorted(ids)), SecretVersion.status == "current",
               or_(Secret.account_id.in_(grant_accounts), SecretVersion.id.in_(seen_versions)))
        .order_by(Secret.account_id, Secret.id)
        # The row carries the secret already (joining it again per version doubled the work), and the
        # sealed value is not needed to say who could have seen it.
        .options(lazyload(SecretVersion.secret), defer(SecretVersion.ciphertext), defer(SecretVersion.wrapped_key))
    ).unique().all()
    if not rows:
        return []
    # When and how they first saw each version: two columns, not an object per exposure (a busy
    # person has thousands).
    seen: dict[int, list[Any]] = {}
    for exposure in session.execute(
        select(Exposure.secret_version_id, Exposure.exposed_at, Exposure.kind).where(
            Exposure.secret_version_id.in_([v.id for _, v in rows]), Exposure.person_id == person.id)
        .order_by(Exposure.exposed_at)
    ):
        seen.setdefault(exposure.secret_version_id, []).append(exposure)
    grants_by_account: dict[int, list[Grant]] = {}
    for grant in revealing_grants:
        grants_by_account.setdefault(grant.account_id, []).append(grant)
    result: list[ExposedSecret] = []
    for secret, version in rows:
        since = version.confirmed_at or version.created_at
        whys: list[str] = []
        for exposure in seen.get(version.id, []):
            whys.append(f"saw version {version.version} on {day_text(exposure.exposed_at)} ({exposure.kind.replace('_', ' ')})")
            break
        revealed = bool(whys)
        for grant in grants_by_account.get(secret.account_id, []):
            ended = grant.ended_at or (grant.expires_at if grant.expires_at and grant.expires_at <= now else None)
            if grant.starts_at <= now and (ended is None or ended >= since):
                whys.append(f"could have revealed it as {grant.role.name} ({day_text(max(grant.starts_at, since))} to {day_text(ended or now)})")
                break
        if whys:
            result.append(ExposedSecret(secret, version, whys, revealed))
    result.sort(key=lambda e: not e.revealed)  # stable: revealed first, then by account and secret
    return result


def open_exposure_rotations(session: Session, *, actor: Actor | None, person: Person, account: Account, reason: str = "exposure",
                            mode: str | None = None, note: str = "") -> list[RotationTask]:
    """``person`` lost access to ``account``: every secret whose current version they saw, or
    (mode could_have_seen) could have seen through a revealing role since it became current,
    gets a task due now. ``reason``: exposure (grant ended) or offboarding. Idempotent.
    """
    if reason not in ("exposure", "offboarding", "compromise"):
        raise InvalidError("Exposure rotations are for exposure, offboarding or compromise.")
    mode = exposure_mode(mode)
    now = utcnow()
    if reason != "compromise" and session.scalar(
        select(Grant.id).join(Role, Role.code == Grant.role_code).where(
            Grant.person_id == person.id, Grant.account_id == account.id, Grant.status == "active",
            Role.may_reveal.is_(True), (Grant.expires_at.is_(None)) | (Grant.expires_at > now)).limit(1)
    ) is not None:
        return []  # they still hold a revealing role here: nothing was lost yet
    tasks: list[RotationTask] = []
    exposed = sorted(exposed_secrets(session, person=person, account_ids=[account.id], mode=mode, now=now),
                     key=lambda e: e.secret.id)
    for item in exposed:
        people = [{"person_id": person.id, "name": person.full_name, "why": "; ".join(item.whys)}]
        text = note or f"{person.full_name} lost access to {account.display_name} ({REASON_LABELS[reason].lower()})."
        opened = open_task(session, actor=actor, secret=item.secret, reason=reason, due_at=now, people=people, note=text,
                           urgent=reason != "exposure" or item.revealed)
        tasks.append(opened.task)
    if tasks:
        notify_it(session, title=f"Rotate now: {len(tasks)} secret(s) of {account.display_name}",
                  body=f"{person.full_name} lost access to {account.display_name}; every credential they saw or could "
                       f"have seen must change ({mode.replace('_', ' ')} rule).",
                  link="/rotation/", dedupe=f"rotation.exposure:{account.id}:{person.id}:{now:%Y%m%d%H}")
    return tasks


def on_access_lost(sender: Any, *, session: Session, actor: Actor | None, person: Person, account: Account,
                   reason: str) -> None:
    """The person lost this access: rotate what they saw or could have seen (rotation's rule)."""
    open_exposure_rotations(session, actor=actor, person=person, account=account, reason=reason)
