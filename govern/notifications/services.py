"""In-app notifications, the email outbox, and the SMTP sender the jobs runner drives.

Other areas call ``notify`` and ``queue_email`` inside the transaction of the event that causes
them: if that transaction rolls back, no notification and no email exist. The sender claims one
message at a time (row lock on PostgreSQL, the write lock on SQLite) and the job commits between
claiming, sending and recording, so no database lock is held while talking to the SMTP server.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Integer, ScalarSelect, SQLColumnExpression, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.services import Actor
from govern.auth.models import User
from govern.config import base_url
from govern.db import rowcount, utcnow
from govern.errors import InvalidError, NotFoundError
from govern.notifications.models import (
    NOTIFICATION_GROUPS,
    ChatChannel,
    ChatMessage,
    Notification,
    NotificationPreference,
    OutboxMessage,
)
from govern.paging import Page, read_page

#: After this many failed attempts a message is flagged "failed" on the Jobs page and not retried
#: by itself (an admin can retry it there).
MAX_ATTEMPTS = 8
#: The wait after the first failure; it doubles with every further failure, up to BACKOFF_CAP.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
#: How long a sender holds a claimed message; a sender that crashed mid-send loses it after this.
CLAIM_LEASE = timedelta(minutes=10)
#: At most this many messages per run, so one run stays short.
SEND_BATCH = 200
MAX_ERROR = 1000
MAX_SUBJECT = 300
MAX_TITLE = 300


# --- in-app notifications -----------------------------------------------------------------------


def _user_ids(user: Any, users: Iterable[Any]) -> list[int]:
    ids: list[int] = []
    for item in ([user] if user is not None else []) + list(users):
        uid = item if isinstance(item, int) else item.id
        if uid not in ids:
            ids.append(uid)
    return ids


def _internal_link(link: str | None) -> str | None:
    if link is None:
        return None
    if not link.startswith("/") or link.startswith("//") or "\\" in link or len(link) > 500:
        raise ValueError(f"notification links are paths inside govern, got {link!r}")
    return link


#: The first part of a notification kind -> the group a user routes (anything else: "other", and the
#: security prefixes are never routed away from email).
_GROUP_OF_PREFIX = {"grant": "grants", "rotation": "rotation", "offboarding": "offboarding", "review": "reviews",
                    "incident": "incidents", "access": "grants", "policy": "grants"}
SECURITY_PREFIXES = ("auth", "user", "account_security", "session", "mfa", "audit", "webhook")


def group_of(kind: str) -> str | None:
    """The group of a notification kind a user may route, or None for a security notice (always emailed)."""
    prefix = kind.split(".", 1)[0]
    if prefix in SECURITY_PREFIXES:
        return None
    return _GROUP_OF_PREFIX.get(prefix, "other")


def channels_of(session: Session, user_ids: Iterable[int], kind: str) -> dict[int, str]:
    """Each user's channel for ``kind``: "email" (the default), "chat" or "app"; one query for all of them."""
    ids = list(user_ids)
    group = group_of(kind)
    chosen: dict[int, str] = {uid: "email" for uid in ids}
    if group is None or not ids:
        return chosen
    for uid, channel in session.execute(select(NotificationPreference.user_id, NotificationPreference.channel).where(
            NotificationPreference.user_id.in_(ids), NotificationPreference.group == group)):
        chosen[uid] = channel
    return chosen


def notify(session: Session, *, kind: str, title: str, user: Any = None, users: Iterable[Any] = (),
           link: str | None = None, body: str | None = None) -> list[Notification]:
    """Add an in-app notification for ``user`` and/or each of ``users`` (User objects or ids); a user who
    routes this kind to their chat gets a chat message too, in the same transaction."""
    link = _internal_link(link)
    title = " ".join(title.split())[:MAX_TITLE]
    ids = _user_ids(user, users)
    rows = [Notification(user_id=uid, kind=kind[:64], title=title, body=body, link=link) for uid in ids]
    session.add_all(rows)
    chat = [uid for uid, channel in channels_of(session, ids, kind).items() if channel == "chat"]
    if chat:
        with_channel = set(session.scalars(select(ChatChannel.user_id).where(ChatChannel.user_id.in_(chat))))
        session.add_all(ChatMessage(user_id=uid, kind=kind[:64], title=title, body=body, link=link)
                        for uid in chat if uid in with_channel)
    session.flush()
    return rows


def notified_since(session: Session, *, user_id: int, kind: str, title: str, since: datetime) -> bool:
    """Whether the user got this very notification (kind and title) since ``since``."""
    return session.scalar(select(Notification.id).where(
        Notification.user_id == user_id, Notification.kind == kind[:64],
        Notification.title == " ".join(title.split())[:MAX_TITLE],
        Notification.created_at >= since).limit(1)) is not None


def set_preferences(session: Session, *, actor: User, choices: Mapping[str, str]) -> None:
    """Record ``actor``'s channel per group (only known groups and channels; audited)."""
    clean = {group: channel for group, channel in choices.items()
             if group in NOTIFICATION_GROUPS and channel in ("email", "chat", "app")}
    current = {p.group: p for p in session.scalars(select(NotificationPreference).where(
        NotificationPreference.user_id == actor.id))}
    changed = {}
    for group, channel in clean.items():
        row = current.get(group)
        if row is None:
            session.add(NotificationPreference(user_id=actor.id, group=group, channel=channel))
        elif row.channel != channel:
            row.channel = channel
        else:
            continue
        changed[group] = channel
    if changed:
        audit.record(session, "notifications.preferences_changed", actor=actor, target_type="user", target_id=actor.id,
                     details={"channels": changed})
    session.flush()


def preferences_of(session: Session, user_id: int) -> dict[str, str]:
    """The user's channel for every group (the default where they chose none)."""
    chosen = dict(session.execute(select(NotificationPreference.group, NotificationPreference.channel)
                                  .where(NotificationPreference.user_id == user_id)).all())
    return {group: chosen.get(group, "email") for group in NOTIFICATION_GROUPS}


def unread_count(session: Session, user_id: int) -> int:
    """How many notifications ``user_id`` has not read (one indexed count)."""
    return session.scalar(_UNREAD_COUNT, {"user_id": user_id}) or 0


#: Built once: the layout of every page asks it.
_UNREAD_COUNT = select(func.count()).select_from(Notification).where(
    Notification.user_id == bindparam("user_id", type_=Integer), Notification.read_at.is_(None))


def unread_count_of(user_id: SQLColumnExpression[int | None]) -> ScalarSelect[int]:
    """``unread_count`` as a column of another statement, for the user whose id is ``user_id``.

    The request's session statement reads it with the user, so the layout's unread badge costs no
    statement of its own (a round trip on PostgreSQL, on every page).
    """
    return (select(func.count()).select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None)).scalar_subquery())


def list_notifications(session: Session, user_id: int, *, page: int = 1, per_page: int = 30) -> Page[Notification]:
    """A page of the user's notifications, newest first, knowing whether a next page follows (one query)."""
    return read_page(session, select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc()),
                     page, per_page, scalars=True)


def mark_read(session: Session, *, actor: User, notification_id: int) -> Notification:
    """Mark one of the actor's own notifications read; someone else's is "not found"."""
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != actor.id:
        raise NotFoundError("No such notification.")
    if row.read_at is None:
        row.read_at = utcnow()
        session.flush()
        audit.record(session, "notifications.read", actor=actor, target_type="notification", target_id=row.id,
                     details={"count": 1})
    return row


def mark_all_read(session: Session, *, actor: User) -> int:
    """Mark every unread notification of the actor read; returns how many."""
    count = rowcount(session.execute(
        update(Notification).where(Notification.user_id == actor.id, Notification.read_at.is_(None))
        .values(read_at=utcnow()).execution_options(synchronize_session=False)
    )) or 0
    if count:
        audit.record(session, "notifications.read", actor=actor, target_type="user", target_id=actor.id,
                     details={"count": count, "all": True})
    return count


# --- the outbox ---------------------------------------------------------------------------------


def _one_line(text: str, limit: int) -> str:
    # Header injection: a subject or address never carries a line break.
    return " ".join((text or "").split())[:limit]


def queue_email(session: Session, *, to: str, subject: str, body_text: str, kind: str,
                dedupe_key: str | None = None) -> OutboxMessage | None:
    """Write an email to the outbox in the caller's transaction; the jobs runner sends it.

    With a ``dedupe_key`` that was queued before (sent or not), nothing is added and None is
    returned, so a reminder is never queued twice, even by two runs at once.
    """
    address = (to or "").strip()
    if not address or "@" not in address or any(c in address for c in "\r\n,;<> ") or len(address) > 320:
        raise InvalidError(f"Not an email address: {address[:60]!r}.", {"to": "Not an email address."})
    if dedupe_key is not None:
        dedupe_key = dedupe_key[:200]
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None:
            return None
    message = OutboxMessage(kind=kind[:64], to_address=address, subject=_one_line(subject, MAX_SUBJECT),
                            body_text=body_text, dedupe_key=dedupe_key, next_attempt_at=utcnow())
    session.add(message)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        if dedupe_key is None:
            raise
        return None  # another transaction queued the same reminder a moment ago
    return message


def email_users(session: Session, *, users: Iterable[User], kind: str, subject: str, body: str,
                link: str | None = None, dedupe_prefix: str | None = None) -> int:
    """Queue one email per active user: the usual companion of ``notify`` for things that need action.

    A user who routes this kind to their chat or keeps it in the app gets no email (a security notice
    always goes)."""
    queued = 0
    targets = [user for user in users if user.is_active]
    channels = channels_of(session, [user.id for user in targets], kind)
    for user in targets:
        if channels.get(user.id, "email") != "email":
            continue
        lines = [f"Hello {user.person.full_name},", "", body]
        if link:
            lines += ["", f"Open it in govern: {base_url()}{link}"]
        lines += ["", "-- ", "govern: official social media accounts under control"]
        key = f"{dedupe_prefix}:{user.id}" if dedupe_prefix else None
        if queue_email(session, to=user.email, subject=subject, body_text="\n".join(lines), kind=kind, dedupe_key=key):
            queued += 1
    return queued


def outbox_summary(session: Session) -> dict[str, int]:
    """Counts of outbox messages by status (one grouped query)."""
    counts = dict.fromkeys(("pending", "sent", "failed"), 0)
    for status, count in session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)):
        counts[status] = count
    return counts


#: What the Jobs page shows of a message: never its body, which may carry a setup link or a name.
OUTBOX_LIST_COLUMNS = (OutboxMessage.id, OutboxMessage.kind, OutboxMessage.to_address, OutboxMessage.subject,
                       OutboxMessage.attempts, OutboxMessage.last_error, OutboxMessage.last_attempt_at,
                       OutboxMessage.next_attempt_at, OutboxMessage.created_at)


def list_outbox(session: Session, *, status: str, page: int = 1, per_page: int = 20) -> Page[Any]:
    """A page of the outbox's messages in ``status`` (without their bodies), knowing whether a next page follows.

    Waiting messages come in the order they will be sent (the status/next-attempt index); failed ones newest first.
    """
    if status not in ("pending", "failed"):
        raise ValueError(f"the outbox lists pending or failed messages, not {status!r}")
    order = ((OutboxMessage.next_attempt_at, OutboxMessage.id) if status == "pending"
             else (OutboxMessage.next_attempt_at.desc(), OutboxMessage.id.desc()))
    return read_page(session, select(*OUTBOX_LIST_COLUMNS).where(OutboxMessage.status == status).order_by(*order),
                     page, per_page)


def retry_email(session: Session, *, actor: Actor | None, message_id: int) -> OutboxMessage:
    """An admin sends a permanently failed message round again (after fixing the SMTP settings)."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFoundError("No such email.")
    if message.status != "failed":
        raise InvalidError("Only emails that failed for good can be retried; this one is still queued or sent.")
    message.status = "pending"
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    session.flush()
    audit.record(session, "email.retry", actor=actor, target_type="outbox", target_id=message.id,
                 details={"kind": message.kind})
    return message


# --- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send: the GOVERN_SMTP_* settings."""

    host: str | None
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "govern@localhost"
    timeout: float = 30.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings:
        """Read the app's SMTP_* settings."""
        return cls(host=config.get("SMTP_HOST"), port=int(config.get("SMTP_PORT") or 25),
                   username=config.get("SMTP_USERNAME"), password=config.get("SMTP_PASSWORD"),
                   starttls=bool(config.get("SMTP_STARTTLS")), sender=config.get("SMTP_FROM") or "govern@localhost")

    def __repr__(self) -> str:  # never show the password in a traceback or log line
        return f"SmtpSettings(host={self.host!r}, port={self.port}, username={self.username!r}, starttls={self.starttls})"


class SendError(Exception):
    """One message could not be sent; ``connection_lost`` says whether to stop this batch."""

    def __init__(self, message: str, *, connection_lost: bool) -> None:
        super().__init__(message)
        self.connection_lost = connection_lost


class SmtpMailer:
    """One SMTP connection for a batch, opened on first use; a context manager that closes it."""

    def __init__(self, settings: SmtpSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Say QUIT (or just drop the connection when the server is gone)."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.host is not None
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: OutboxMessage) -> None:
        """Send one outbox message; raise SendError with a password-free description on failure."""
        email = EmailMessage()
        email["From"] = self.settings.sender
        email["To"] = message.to_address
        email["Subject"] = message.subject
        email["Date"] = format_datetime(utcnow())
        email["Message-ID"] = message_id_of(message, self.settings.sender)
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.body_text)
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
                                for code, text in exc.recipients.values())
            raise SendError(self._clean(f"recipient refused: {answers}"), connection_lost=False) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            raise SendError(self._clean(f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"), connection_lost=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise SendError(self._clean(f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}"), connection_lost=True) from None
        except (smtplib.SMTPException, OSError) as exc:  # OSError covers refused, timeouts and TLS
            self._drop()
            raise SendError(self._clean(f"{type(exc).__name__}: {exc}"), connection_lost=True) from None

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _clean(self, text: str) -> str:
        # Belt and braces: no server answer or exception text may carry the password onwards.
        if self.settings.password:
            text = text.replace(self.settings.password, "***")
        return text[:MAX_ERROR]


def message_id_of(message: OutboxMessage, sender: str) -> str:
    """The same Message-ID on every attempt of one outbox row: a send repeated after a crash (the
    server said 250, the sender died before recording it) is then a duplicate a mail system can drop."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<govern-outbox-{message.id}.{message.created_at:%Y%m%d%H%M%S}@{domain}>"


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def backoff(attempts: int) -> timedelta:
    """The wait before the next attempt after ``attempts`` failures: 1, 2, 4 ... minutes, at most 6 h."""
    step: timedelta = BACKOFF_BASE * (2 ** max(0, attempts - 1))
    return min(step, BACKOFF_CAP)


def claim_due_email(session: Session, *, now: datetime | None = None, lease: timedelta = CLAIM_LEASE) -> OutboxMessage | None:
    """Claim the next due message (skipping any another sender holds) and count the attempt."""
    now = now or utcnow()
    message = session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now,
               or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if message is None:
        return None
    message.claimed_until = now + lease
    message.attempts += 1
    message.last_attempt_at = now
    session.flush()
    return message


def record_sent(session: Session, message: OutboxMessage) -> None:
    """The server accepted the message."""
    message.status = "sent"
    message.sent_at = utcnow()
    message.claimed_until = None
    message.last_error = None
    session.flush()
    audit.record(session, "email.sent", target_type="outbox", target_id=message.id,
                 details={"kind": message.kind, "attempts": message.attempts})


def record_failure(session: Session, message: OutboxMessage, error: str, *, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """A send failed: back off, or flag the message failed after ``max_attempts``; True when flagged."""
    message.last_error = error[:MAX_ERROR]
    message.claimed_until = None
    flagged = message.attempts >= max_attempts
    if flagged:
        message.status = "failed"
        audit.record(session, "email.failed", target_type="outbox", target_id=message.id, outcome="failure",
                     details={"kind": message.kind, "attempts": message.attempts})
    else:
        message.next_attempt_at = utcnow() + backoff(message.attempts)
    session.flush()
    return flagged

