"""Accounts without an API (YouTube Brand Accounts, X): the owner attests the member list as they see it.

The list is one member a line, "email or platform id, role" (role as govern names it: owner, admin,
publisher, ...); govern compares it with the grants like a synced snapshot (see ``drift``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import ROLE_CODES, Account
from govern.auth.models import User
from govern.auth.users import active_users_with_roles
from govern.connectors.connections import may_manage
from govern.connectors.models import ATTESTED_PLATFORMS, Attestation
from govern.db import utcnow
from govern.errors import ForbiddenError, InvalidError
from govern.notifications import services as notifications
from govern.notifications.models import Notification

MAX_MEMBERS = 200
MAX_SCREENSHOT = 5 * 1024 * 1024
#: The image kinds a screenshot may be, by their first bytes (the name or the browser's type is not trusted).
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg"}
MAX_NOTE = 2000
#: How often an owner attests (the schedule): an older attestation is due again.
ATTEST_EVERY_DAYS = 90
#: An owner whose attestation is due is reminded again after this many days, until they attest.
REMIND_EVERY_DAYS = 7


def parse_members(text: str) -> list[dict[str, object]]:
    """One member a line: "email or id, role"; raises InvalidError naming the first bad line."""
    members: list[dict[str, object]] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        who, _, role = (part.strip() for part in line.partition(","))
        role = role.lower()
        if not who or len(who) > 320 or role not in ROLE_CODES:
            raise InvalidError(f"Line {number}: write \"email or id, role\" with a role among {', '.join(ROLE_CODES)}.",
                               {"members": f"Line {number} is not \"email or id, role\"."})
        email = who.lower() if "@" in who else None
        members.append({"id": who.lower() if email else who, "name": who, "email": email, "roles": [role]})
    if len(members) > MAX_MEMBERS:
        raise InvalidError(f"At most {MAX_MEMBERS} members.", {"members": "Too many lines."})
    return sorted(members, key=lambda m: str(m["id"]))


def attest(session: Session, *, actor: User, account: Account, members_text: str, note: str = "",
           screenshot: str | None = None, now: datetime | None = None) -> Attestation:
    """The owner (or IT) records the member list of an account without an API."""
    if account.platform not in ATTESTED_PLATFORMS:
        raise InvalidError("Only YouTube and X accounts are attested; the others are synced or not covered.",
                           {"account": "Not an attested platform."})
    if not (may_manage(actor) or account.business_owner_id == actor.person_id):
        raise ForbiddenError("Only the account's owner, IT or an admin can attest its members.")
    members = parse_members(members_text)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidError(f"Keep the note under {MAX_NOTE} characters.", {"note": "Too long."})
    row = Attestation(account_id=account.id, attested_at=now or utcnow(), attested_by_id=actor.id,
                      members_json=json.dumps(members, separators=(",", ":")), note=note or None, screenshot=screenshot)
    session.add(row)
    session.flush()
    audit.record(session, "connectors.attested", actor=actor, target_type="account", target_id=account.id,
                 details={"attestation_id": row.id, "members": len(members), "screenshot": bool(screenshot)})
    return row


def screenshot_name(data: bytes) -> str:
    """A stored name for a PNG or JPEG screenshot (random, with the kind its bytes show); InvalidError otherwise."""
    if len(data) > MAX_SCREENSHOT:
        raise InvalidError("Keep the screenshot under 5 MB.", {"screenshot": "Too large."})
    kind = next((k for sig, k in IMAGE_SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        raise InvalidError("The screenshot must be a PNG or JPEG image.", {"screenshot": "Not a PNG or JPEG."})
    return f"{secrets.token_hex(16)}.{kind}"


def write_screenshot(folder: Path, name: str, data: bytes) -> None:
    """Write a screenshot checked by ``screenshot_name`` under ``folder`` (created 0700, the file 0600)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)


def screenshot_path(folder: Path, attestation: Attestation) -> Path | None:
    """Where an attestation's screenshot is, if it has one and it is still there."""
    name = attestation.screenshot or ""
    if not name or "/" in name or name.startswith("."):
        return None
    path = folder / name
    return path if path.is_file() else None


def latest_attestations(session: Session, account_ids: Iterable[int]) -> dict[int, Attestation]:
    """The newest attestation of each account."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    newest = select(func.max(Attestation.id)).where(Attestation.account_id.in_(ids)).group_by(Attestation.account_id)
    return {a.account_id: a for a in session.scalars(select(Attestation).where(Attestation.id.in_(newest)))}


def due_attestations(session: Session, now: datetime | None = None) -> list[Account]:
    """Active YouTube and X accounts never attested, or not within ATTEST_EVERY_DAYS."""
    accounts = list(session.scalars(select(Account).where(Account.platform.in_(ATTESTED_PLATFORMS),
                                                          Account.status == "active").order_by(Account.display_name)))
    latest = latest_attestations(session, [a.id for a in accounts])
    cutoff = (now or utcnow()) - timedelta(days=ATTEST_EVERY_DAYS)
    return [a for a in accounts if a.id not in latest or latest[a.id].attested_at < cutoff]


def remind_due(session: Session, now: datetime | None = None) -> int:
    """Remind each due account's owner (IT when it has none) to attest; at most once a week per account.

    Returns how many accounts were reminded. Reads the recent reminders once, not per account."""
    moment = now or utcnow()
    due = due_attestations(session, moment)
    if not due:
        return 0
    since = moment - timedelta(days=REMIND_EVERY_DAYS)
    reminded = set(session.scalars(select(Notification.link).where(
        Notification.kind == "connectors.attest_due", Notification.created_at >= since)))
    owners = {u.person_id: u for u in session.scalars(select(User).where(
        User.person_id.in_({a.business_owner_id for a in due if a.business_owner_id is not None}),
        User.is_active.is_(True)))}
    it = None
    count = 0
    for account in due:
        link = f"/connectors/accounts/{account.id}"
        if link in reminded:
            continue
        owner = owners.get(account.business_owner_id) if account.business_owner_id is not None else None
        if owner is None and it is None:
            it = list(active_users_with_roles(session, ["it"]))
        notifications.notify(session, kind="connectors.attest_due", users=[owner] if owner is not None else it or [],
                             link=link, title=f"Attest who manages {account.display_name}",
                             body=f"{account.platform_label} has no API govern can read: list the members as you see "
                                  f"them on the platform (every {ATTEST_EVERY_DAYS} days).")
        count += 1
    return count
