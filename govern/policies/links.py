"""Asking a person to accept a policy version, by email, when a grant waits for it.

Someone with a login gets the policy's page to sign in to and accept. Someone without a login gets
a one-time link that records the acceptance for that person and version without signing in:

- the token has 256 bits and only its SHA-256 digest is stored (a database read gives no link);
- it travels in the URL's fragment (``#token=``), which browsers never send, and the page posts it
  in a form, so it reaches no access log, proxy log or Referer header;
- it works once, for ACK_LINK_TTL, for the version it names only (a newer version voids it), and
  sending a new link voids the previous one;
- it can do nothing but record this one acceptance: no session, no login, no other page;
- every step is audited: the sending (by whom, to whom) and the acceptance (by which link).

Why not an invitation to create a login instead: many holders of a platform role (an agency's
community manager, a publisher who never reveals a credential) need no login to govern, and a login
is a standing credential with its own risks; what the policy needs is that person's statement that
they read it, which a mailbox-bound one-time link gives, as an invitation link would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from govern import audit
from govern.audit import services as audit_services
from govern.audit.services import Actor
from govern.auth.models import User
from govern.crypto.tokens import new_token, token_digest
from govern.db import rowcount, utcnow
from govern.directory.models import Person
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.notifications import services as notifications
from govern.policies.models import Acknowledgement, AcknowledgementLink, PolicyVersion
from govern.policies.services import current_version, has_accepted

#: How long a link works.
ACK_LINK_TTL = timedelta(days=7)
#: A link is not sent again to the same person for the same version sooner than this.
RESEND_AFTER = timedelta(minutes=10)
#: What every refusal of a link says, whatever the cause (unknown, used, expired, replaced).
INVALID_LINK = "This link does not work any more: it was used, it expired or a newer one was sent. Ask for a new one."


@dataclass
class Sent:
    """What was sent: ``login`` (the policy's page, to sign in) or ``link`` (a one-time link)."""

    kind: str
    person: Person
    version: PolicyVersion
    #: The link's token, only to build the email in this transaction; never stored or logged.
    token: str | None = None


def request_acknowledgement(session: Session, *, actor: Actor | None, person: Person, version: PolicyVersion, base_url: str,
                            account_id: int | None = None, role_code: str | None = None, grant_id: int | None = None,
                            now: datetime | None = None) -> Sent:
    """Email ``person`` the current ``version`` to accept: the policy's page if they have a login, else a
    one-time link. Refused when they accepted it already, are not active, or were sent one minutes ago."""
    now = now or utcnow()
    current = current_version(session, version.tier)
    if current is None or current.id != version.id:
        raise ConflictError("A newer version of this policy was published; send that one.")
    if person.status != "active":
        raise ConflictError(f"{person.full_name} is {person.status}; no policy is sent.")
    if has_accepted(session, person.id, version):
        raise ConflictError(f"{person.full_name} has accepted this version already.")
    if not person.email or "@" not in person.email:
        raise InvalidError(f"{person.full_name} has no email address in the directory.")
    login = session.scalar(select(User).where(User.person_id == person.id, User.is_active.is_(True)))
    recent = session.scalar(select(AcknowledgementLink.id).where(
        AcknowledgementLink.person_id == person.id, AcknowledgementLink.policy_version_id == version.id,
        AcknowledgementLink.created_at > now - RESEND_AFTER).limit(1))
    if recent is not None:
        raise ConflictError(f"{person.full_name} was sent this policy a few minutes ago; give them time to read it.")
    # Void every earlier link for this person and version: only the newest works.
    session.execute(update(AcknowledgementLink).where(
        AcknowledgementLink.person_id == person.id, AcknowledgementLink.policy_version_id == version.id,
        AcknowledgementLink.used_at.is_(None)).values(used_at=now).execution_options(synchronize_session=False))
    token = None if login is not None else new_token()
    # A row for logins too (without a usable token): it spaces out reminders the same way.
    link = AcknowledgementLink(person_id=person.id, policy_version_id=version.id,
                               token_digest=token_digest(token or new_token()),
                               created_at=now, created_by_id=getattr(actor, "id", None), expires_at=now + ACK_LINK_TTL,
                               used_at=now if login is not None else None, account_id=account_id, role_code=role_code,
                               grant_id=grant_id)
    session.add(link)
    session.flush()
    sender = getattr(getattr(actor, "person", None), "full_name", None) or "A colleague"
    about = f"{version.title} ({version.tier} policy, version {version.version})"
    if login is not None:
        page = f"/policies/{version.id}"
        body = [f"Hello {person.full_name},", "",
                f"{sender} wants to give you a role on one of the company's social media accounts. First, please "
                f"read and accept {about}.", "", f"Sign in to govern and accept it here: {base_url}{page}"]
        notifications.notify(session, user=login, kind="policy.acknowledgement_requested",
                             title=f"Please accept the {version.tier} social media policy", link=page)
    else:
        body = [f"Hello {person.full_name},", "",
                f"{sender} wants to give you a role on one of the company's social media accounts. First, please "
                f"read and accept {about}.", "",
                f"Open this personal link to read it and accept it (it works once, until "
                f"{link.expires_at:%Y-%m-%d %H:%M} UTC):", f"{base_url}/policies/acknowledge#token={token}", "",
                "You do not need a login to govern for this. If you did not expect this email, ignore it."]
    body += ["", "-- ", "govern: official social media accounts under control"]
    notifications.queue_email(session, to=person.email, subject=f"[govern] Please accept the {version.tier} social media policy",
                              body_text="\n".join(body), kind="policy.acknowledgement_requested")
    audit.record(session, "policy.acknowledgement_requested", actor=actor, target_type="policy_version",
                 target_id=version.id, details={"person_id": person.id, "tier": version.tier, "version": version.version,
                                                "by": "login" if login is not None else "link", "link_id": link.id,
                                                "account_id": account_id, "role": role_code, "grant_id": grant_id,
                                                "expires_at": link.expires_at.isoformat() if login is None else None})
    return Sent("login" if login is not None else "link", person, version, token)


def find_link(session: Session, token: str, *, now: datetime | None = None) -> AcknowledgementLink:
    """The usable link of ``token``, or NotFoundError (one message for every reason)."""
    now = now or utcnow()
    token = (token or "").strip()
    if not 20 <= len(token) <= 100:
        raise NotFoundError(INVALID_LINK)
    link = session.scalar(select(AcknowledgementLink).where(AcknowledgementLink.token_digest == token_digest(token)))
    return usable_link(session, link, now=now)


def usable_link(session: Session, link: AcknowledgementLink | None, *, now: datetime | None = None) -> AcknowledgementLink:
    """``link`` if it still works (unused, not expired, its version current, its person active), else NotFoundError."""
    now = now or utcnow()
    if link is None or link.used_at is not None or link.expires_at <= now:
        raise NotFoundError(INVALID_LINK)
    version = session.get(PolicyVersion, link.policy_version_id)
    current = current_version(session, version.tier) if version is not None else None
    person = session.get(Person, link.person_id)
    if current is None or version is None or current.id != version.id or person is None or person.status != "active":
        raise NotFoundError(INVALID_LINK)
    return link


def accept_by_link(session: Session, *, link: AcknowledgementLink, now: datetime | None = None) -> Acknowledgement:
    """Record the link's person's acceptance of its version, use the link up, and tell whoever sent it."""
    now = now or utcnow()
    # Use the link up first, conditionally: of two clicks at once, only one gets past this.
    used = rowcount(session.execute(update(AcknowledgementLink).where(
        AcknowledgementLink.id == link.id, AcknowledgementLink.used_at.is_(None)).values(used_at=now)
        .execution_options(synchronize_session=False)))
    if not used:
        raise NotFoundError(INVALID_LINK)
    session.refresh(link)
    version = session.get(PolicyVersion, link.policy_version_id)
    person = session.get(Person, link.person_id)
    assert version is not None and person is not None
    ack = session.scalar(select(Acknowledgement).where(Acknowledgement.person_id == person.id,
                                                       Acknowledgement.policy_version_id == version.id))
    if ack is None:
        ack = Acknowledgement(person_id=person.id, policy_version_id=version.id, accepted_at=now)
        session.add(ack)
        session.flush()
    # Nobody is signed in: the event names the link and its person as who acted.
    context = replace(audit_services.context_provider(), actor_label=f"acknowledgement link #{link.id} ({person.email})")
    audit.record(session, "policy.accepted", target_type="policy_version", target_id=version.id, context=context,
                 details={"person_id": person.id, "tier": version.tier, "version": version.version, "via": "link",
                          "link_id": link.id, "sent_by_user_id": link.created_by_id})
    if link.created_by_id is not None:
        grant_page, body = None, None
        if link.grant_id is not None:
            grant_page, body = "/grants/#waiting", "The request that waited for it can be approved now."
        elif link.account_id is not None:
            grant_page = f"/grants/new?account_id={link.account_id}&person={quote(person.email)}"
            body = "You can now grant the role that waited for it."
        notifications.notify(session, user=link.created_by_id, kind="policy.accepted",
                             title=f"{person.full_name} accepted the {version.tier} policy (version {version.version})",
                             body=body, link=grant_page)
    return ack
