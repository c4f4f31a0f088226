"""The admin's Jobs page, the retry of failed emails, and the home-page notice when jobs are stale."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from govern.db import database, utcnow
from govern.jobs.models import JobRun
from govern.jobs.services import Step, run_jobs
from govern.notifications import services as notifications
from govern.notifications.models import OutboxMessage
from tests.factories import csrf_token, login, make_user
from tests.sql_capture import statements


def _signed_in(app, db, kit, roles=("admin",)):
    who = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, who)
    return who, client


def _run(app, steps=None):
    with app.app_context():
        return run_jobs(database(app), app.config, steps=steps)


def test_admins_see_the_last_run_and_what_each_step_did(app, db, kit):
    _, client = _signed_in(app, db, kit)
    _run(app, steps=[Step("test.fine", "Works", lambda s, c: {"done_things": 3}),
                     Step("test.boom", "Fails", lambda s, c: 1 / 0)])
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Last run" in page and "Finished" in page
    assert "test.fine" in page and "done things 3" in page
    assert "ZeroDivisionError: division by zero" in page
    assert "Expire time-bound grants" in page and "Send queued email" in page  # the registry
    assert 'id="smtp-missing"' not in page  # the last run had no email step to tell
    _run(app)  # the real steps, and this app has no SMTP server
    page = client.get("/jobs/").get_data(as_text=True)
    assert "The last jobs run had no SMTP server configured" in page


def test_only_admins_may_open_the_jobs_page(app, db, kit):
    for role in ("it", "manager", "hr", "auditor"):
        _, client = _signed_in(app, db, kit, roles=(role,))
        assert client.get("/jobs/").status_code == 403
        assert 'href="/jobs/"' not in client.get("/").get_data(as_text=True)
    _, admin = _signed_in(app, db, kit)
    assert 'href="/jobs/"' in admin.get("/").get_data(as_text=True)


def test_runs_are_paginated_with_a_constant_number_of_queries(app, db, kit, connection):
    _, client = _signed_in(app, db, kit)
    for _ in range(3):
        _run(app, steps=[Step("test.a", "A", lambda s, c: {"n": 1})])
    few = statements(connection, lambda: client.get("/jobs/"))
    for _ in range(22):
        _run(app, steps=[Step("test.a", "A", lambda s, c: {"n": 1})])
    many = statements(connection, lambda: client.get("/jobs/"))
    assert len(many) == len(few)
    first = client.get("/jobs/").get_data(as_text=True)
    assert "Older →" in first
    second = client.get("/jobs/?page=2").get_data(as_text=True)
    assert "← Newer" in second and "Older →" not in second
    assert db.scalar(select(JobRun.id).order_by(JobRun.id).limit(1)) is not None


def test_failed_emails_are_flagged_and_an_admin_retries_one(app, db, kit):
    who, client = _signed_in(app, db, kit)
    message = notifications.queue_email(db, to="x@example.com", subject="Rotation overdue", body_text="b", kind="test")
    message.status, message.attempts, message.last_error = "failed", notifications.MAX_ATTEMPTS, "550 5.1.1 no such mailbox"
    db.commit()
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Emails that could not be sent (1)" in page and "550 5.1.1 no such mailbox" in page
    token = csrf_token(client, "/jobs/")
    assert client.post(f"/jobs/outbox/{message.id}/retry").status_code == 400  # no CSRF token
    assert client.post(f"/jobs/outbox/{message.id}/retry", data={"csrf_token": token}).status_code == 302
    db.expire_all()
    again = db.get(OutboxMessage, message.id)
    assert again.status == "pending" and again.attempts == 0
    page = client.get("/jobs/").get_data(as_text=True)
    assert "Emails that could not be sent" not in page
    # Retrying one that is not failed is refused with a message, nothing changed.
    response = client.post(f"/jobs/outbox/{message.id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "Only emails that failed for good can be retried" in response.get_data(as_text=True)
    assert client.post("/jobs/outbox/999999/retry", data={"csrf_token": token}, follow_redirects=True).status_code == 200


def test_the_home_page_warns_admins_when_jobs_have_not_run_for_a_day(app, db, kit):
    _, admin = _signed_in(app, db, kit)
    _, staff = _signed_in(app, db, kit, roles=())
    assert "Jobs have never run" in admin.get("/").get_data(as_text=True)
    _run(app, steps=[])
    assert 'id="jobs-notice"' not in admin.get("/").get_data(as_text=True)
    with time_machine.travel(utcnow() + timedelta(hours=30)):
        _, later_admin = _signed_in(app, db, kit)
        page = later_admin.get("/").get_data(as_text=True)
        assert "Jobs last ran 30 hours ago" in page
        _, later_staff = _signed_in(app, db, kit, roles=())
        assert 'id="jobs-notice"' not in later_staff.get("/").get_data(as_text=True)
    assert 'id="jobs-notice"' not in staff.get("/").get_data(as_text=True)


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start:page.index("</section>", start)]


def test_the_outbox_lists_waiting_and_failed_emails_without_their_bodies_page_by_page(app, db, kit, connection):
    from govern.jobs.views import OUTBOX_PAGE_SIZE

    _, client = _signed_in(app, db, kit)
    body = "Your setup link: https://govern.example/setup/SECRET-SETUP-TOKEN-123"
    later = utcnow() + timedelta(minutes=20)
    waiting = notifications.queue_email(db, to="ana@example.com", subject="Your govern login", body_text=body, kind="setup")
    waiting.attempts, waiting.last_error, waiting.next_attempt_at = 2, "421 4.7.0 try again later", later
    failed = notifications.queue_email(db, to="bo@example.com", subject="Rotation overdue", body_text=body, kind="rotation")
    failed.status, failed.attempts, failed.last_error = "failed", notifications.MAX_ATTEMPTS, "550 5.1.1 no such mailbox"
    failed.last_attempt_at = utcnow()
    db.commit()

    page = client.get("/jobs/").get_data(as_text=True)
    shown = _section(page, "waiting-emails")
    assert "Emails waiting to be sent (1)" in shown
    for text in ("ana@example.com", "Your govern login", "data-label=\"Attempts\">2</td>", "421 4.7.0 try again later"):
        assert text in shown
    assert f'<time datetime="{later.strftime("%Y-%m-%dT%H:%M:%S")}Z"' in shown  # the next attempt
    assert "bo@example.com" not in shown
    failed_part = _section(page, "failed-emails")
    assert "bo@example.com" in failed_part and "550 5.1.1 no such mailbox" in failed_part
    assert f"/jobs/outbox/{failed.id}/retry" in failed_part
    # No body, and not even read from the database.
    assert "SECRET-SETUP-TOKEN" not in page
    assert not any("body_text" in sql for sql in statements(connection, lambda: client.get("/jobs/")))

    # Pages of each list, each keeping the other's place.
    for n in range(OUTBOX_PAGE_SIZE + 2):
        notifications.queue_email(db, to=f"queue{n}@example.com", subject=f"Queued {n}", body_text=body, kind="test")
    db.commit()
    first = _section(client.get("/jobs/").get_data(as_text=True), "waiting-emails")
    assert first.count("<tr>") == OUTBOX_PAGE_SIZE + 1  # the heading row and a full page
    assert "waiting_page=2" in first
    second = _section(client.get("/jobs/?waiting_page=2&failed_page=1").get_data(as_text=True), "waiting-emails")
    assert second.count("<tr>") == 1 + 3 and "ana@example.com" in second  # the one retried last waits longest
    assert "waiting_page=1" in second
    assert client.get("/jobs/?waiting_page=999999999999").status_code == 200
