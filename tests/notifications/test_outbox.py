"""The email outbox: written in the event's transaction, deduplicated, and sent over real SMTP on
loopback with retries, backoff, STARTTLS and authentication."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.db import database, utcnow
from govern.errors import InvalidError
from govern.jobs.models import JobRun
from govern.jobs.services import run_jobs
from govern.jobs.steps import STEPS
from govern.notifications import services
from govern.notifications.models import OutboxMessage
from govern.notifications.services import message_id_of
from tests.smtp_server import free_port, start_server

SEND = [s for s in STEPS if s.name == "email.send"]


def _queue(db, n=1, **fields):
    rows = [services.queue_email(db, to=fields.get("to", f"someone{i}@example.com"), subject=fields.get("subject", f"Subject {i}"),
                                 body_text=fields.get("body", f"Body {i}\nsecond line"), kind="test")
            for i in range(n)]
    db.commit()
    return rows


def _send(app):
    with app.app_context():
        return run_jobs(database(app), app.config, steps=SEND)


def _rows(db):
    db.expire_all()
    return db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()


def _counts(run):
    return run.steps[0]["counts"]


# --- queueing -------------------------------------------------------------------------------------


def test_a_dedupe_key_queues_a_reminder_once(db, app):
    first = services.queue_email(db, to="a@example.com", subject="Rotate", body_text="x", kind="reminder", dedupe_key="rot:1:2026-11")
    again = services.queue_email(db, to="a@example.com", subject="Rotate", body_text="x", kind="reminder", dedupe_key="rot:1:2026-11")
    assert first is not None and again is None
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_no_header_injection_and_no_bad_address(db, app):
    msg = services.queue_email(db, to="a@example.com", subject="Hello\r\nBcc: evil@example.com", body_text="x", kind="t")
    assert msg is not None and "\n" not in msg.subject and msg.subject == "Hello Bcc: evil@example.com"
    for bad in ("", "nobody", "a@example.com\r\nBcc: x@y", "a@x.com, b@y.com"):
        with pytest.raises(InvalidError):
            services.queue_email(db, to=bad, subject="s", body_text="b", kind="t")


def test_without_an_smtp_server_emails_wait_and_are_not_lost(db, app):
    _queue(db, 2)
    run = _send(app)
    assert run.outcome == "ok" and _counts(run) == {"sent": 0, "not_configured_waiting": 2}
    assert [m.status for m in _rows(db)] == ["pending", "pending"]
    assert all(m.attempts == 0 for m in _rows(db))


# --- sending over SMTP ----------------------------------------------------------------------------


@pytest.fixture
def app_overrides(request):
    server = request.getfixturevalue("smtp_server") if "smtp_server" in request.fixturenames else None
    return server.config() if server else {}


def test_due_emails_arrive_at_the_smtp_server_once(db, app, smtp_server):
    _queue(db, 3)
    run = _send(app)
    assert _counts(run) == {"sent": 3, "failed": 0, "gave_up": 0}
    received = smtp_server.inbox.messages
    assert sorted(m["To"] for m in received) == ["someone0@example.com", "someone1@example.com", "someone2@example.com"]
    first = next(m for m in received if m["To"] == "someone0@example.com")
    assert first["Subject"] == "Subject 0" and first["From"] == "govern@example.com"
    assert first["Auto-Submitted"] == "auto-generated" and first["Message-ID"]
    assert "Body 0\r\nsecond line" in first.get_payload(decode=True).decode()
    rows = _rows(db)
    assert all(m.status == "sent" and m.attempts == 1 and m.sent_at and m.last_error is None for m in rows)
    # One Message-ID per outbox row, the same on every attempt: a repeated send is a duplicate mail systems drop.
    row = next(m for m in rows if m.to_address == "someone0@example.com")
    assert first["Message-ID"] == message_id_of(row, "govern@example.com") == message_id_of(row, "govern@example.com")
    assert first["Message-ID"].startswith(f"<govern-outbox-{row.id}.") and first["Message-ID"].endswith("@example.com>")
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "email.sent")) == 3
    # Sent messages are not sent again.
    again = _send(app)
    assert _counts(again)["sent"] == 0 and len(smtp_server.inbox.messages) == 3


def test_a_refusing_server_means_retry_later_with_backoff(db, app, smtp_server):
    _queue(db, 1)
    smtp_server.inbox.refuse = "451 4.3.0 Try again later"
    run = _send(app)
    assert _counts(run) == {"sent": 0, "failed": 1, "gave_up": 0}
    (msg,) = _rows(db)
    assert msg.status == "pending" and msg.attempts == 1 and "451" in msg.last_error
    assert msg.next_attempt_at - msg.last_attempt_at >= services.BACKOFF_BASE - timedelta(seconds=5)
    # Not due yet: nothing is tried.
    smtp_server.inbox.refuse = None
    assert _counts(_send(app)) == {"sent": 0, "failed": 0, "gave_up": 0}
    assert smtp_server.inbox.refused == 1 and smtp_server.inbox.messages == []
    with time_machine.travel(utcnow() + timedelta(minutes=2)):
        assert _counts(_send(app))["sent"] == 1
    (msg,) = _rows(db)
    assert msg.status == "sent" and msg.attempts == 2 and msg.last_error is None
    assert len(smtp_server.inbox.messages) == 1


def test_backoff_doubles_up_to_a_cap():
    assert [services.backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert services.backoff(30) == services.BACKOFF_CAP


def test_after_the_last_attempt_the_email_is_flagged_failed_and_an_admin_can_retry(db, app, smtp_server):
    (queued,) = _queue(db, 1)
    queued.attempts = services.MAX_ATTEMPTS - 1
    db.commit()
    smtp_server.inbox.refuse = "550 5.1.1 Mailbox unavailable"
    run = _send(app)
    assert _counts(run) == {"sent": 0, "failed": 0, "gave_up": 1}
    (msg,) = _rows(db)
    assert msg.status == "failed" and msg.attempts == services.MAX_ATTEMPTS and "550" in msg.last_error
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "email.failed")) == 1
    with time_machine.travel(utcnow() + timedelta(days=2)):
        assert _counts(_send(app))["gave_up"] == 0  # not retried by itself
    smtp_server.inbox.refuse = None
    with app.test_request_context():
        services.retry_email(db, actor=None, message_id=msg.id)
    db.commit()
    assert _counts(_send(app))["sent"] == 1 and len(smtp_server.inbox.messages) == 1


def test_an_unreachable_server_stops_the_batch_and_loses_nothing(db, app, app_overrides):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())  # nothing listens there
    _queue(db, 3)
    run = _send(app)
    assert run.outcome == "ok" and _counts(run) == {"sent": 0, "failed": 1, "gave_up": 0}
    rows = _rows(db)
    assert [m.attempts for m in rows] == [1, 0, 0] and all(m.status == "pending" for m in rows)
    assert "ConnectionRefusedError" in rows[0].last_error


def test_a_claimed_message_is_not_sent_by_a_second_sender(db, app):
    _queue(db, 1)
    claimed = services.claim_due_email(db)
    db.commit()
    assert claimed is not None and claimed.claimed_until > utcnow()
    assert services.claim_due_email(db) is None  # another sender sees it held
    with time_machine.travel(utcnow() + services.CLAIM_LEASE + timedelta(minutes=1)):
        again = services.claim_due_email(db)  # the first sender died: the claim ran out
        assert again is not None and again.id == claimed.id and again.attempts == 2


def test_the_send_step_claims_for_the_configured_lease(db, app, smtp_server, monkeypatch):
    app.config.update(smtp_server.config(OUTBOX_CLAIM_SECONDS=90))
    leases = []
    real = services.claim_due_email

    def claim(session, **kwargs):
        leases.append(kwargs.get("lease"))
        return real(session, **kwargs)

    monkeypatch.setattr(services, "claim_due_email", claim)
    _queue(db, 1)
    assert _counts(_send(app))["sent"] == 1
    assert leases and set(leases) == {timedelta(seconds=90)}


def test_starttls_on(db, app, tmp_path):
    server = start_server(tmp_path, starttls=True)
    try:
        app.config.update(server.config(SMTP_STARTTLS=True, SMTP_CA_FILE=str(server.ca_file)))
        _queue(db, 1)
        assert _counts(_send(app))["sent"] == 1
        assert len(server.inbox.messages) == 1
    finally:
        server.controller.stop()


def test_starttls_off_against_a_server_that_demands_it_fails_and_retries(db, app, tmp_path):
    server = start_server(tmp_path, starttls=True)
    try:
        app.config.update(server.config(SMTP_STARTTLS=False))
        _queue(db, 1)
        assert _counts(_send(app))["failed"] == 1
        (msg,) = _rows(db)
        assert msg.status == "pending" and "530" in msg.last_error and server.inbox.messages == []
    finally:
        server.controller.stop()


def test_starttls_with_an_untrusted_certificate_fails(db, app, tmp_path):
    server = start_server(tmp_path, starttls=True)
    try:
        app.config.update(server.config(SMTP_STARTTLS=True))  # no CA file: the self-signed cert is not trusted
        _queue(db, 1)
        assert _counts(_send(app))["failed"] == 1
        (msg,) = _rows(db)
        assert "CERTIFICATE_VERIFY_FAILED" in msg.last_error and server.inbox.messages == []
    finally:
        server.controller.stop()


def test_authentication_and_the_password_is_never_recorded(db, app, tmp_path):
    password = "s3cret-SMTP-pa55word"
    server = start_server(tmp_path, starttls=True, password=password)
    try:
        app.config.update(server.config(SMTP_STARTTLS=True, SMTP_CA_FILE=str(server.ca_file),
                                        SMTP_USERNAME="govern", SMTP_PASSWORD="wrong-" + password))
        _queue(db, 1)
        failed = _send(app)
        assert _counts(failed)["failed"] == 1
        (msg,) = _rows(db)
        assert "535" in msg.last_error and password not in msg.last_error
        app.config.update(SMTP_PASSWORD=password)
        with time_machine.travel(utcnow() + timedelta(minutes=2)):
            assert _counts(_send(app))["sent"] == 1
        assert len(server.inbox.messages) == 1
        db.expire_all()
        stored = [r.steps_json for r in db.scalars(select(JobRun))] + [e.details_json for e in db.scalars(select(AuditEvent))]
        stored += [m.last_error or "" for m in _rows(db)]
        assert not any(password in text for text in stored)
        assert password not in repr(services.SmtpSettings.from_config(app.config))
    finally:
        server.controller.stop()
