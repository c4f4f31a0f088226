"""The admin's view of jobs and notifications in a real browser against a real server process:
the home-page notice before any run, `govern jobs run` sending the outbox through a loopback
SMTP server, the Jobs page, and the notifications badge and page."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from govern.auth.models import User
from govern.db import Database
from govern.notifications import services as notifications
from tests.browser.helpers import VENV_BIN, LiveServer, server_env, set_up_admin, submit
from tests.smtp_server import start_server


@pytest.mark.browser
@pytest.mark.slow
def test_admin_sees_jobs_and_notifications(browser: Any, live_server: LiveServer, screenshots: Any,
                                           tmp_path: Path, scratch_database_url: str) -> None:
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    set_up_admin(page, live_server)

    # Before any run: the admin's home page says so.
    expect(page.locator("#jobs-notice")).to_contain_text("Jobs have never run")
    screenshots(page, "home_jobs_never_ran")

    # Emails and a notification written by "events" (here directly through the services).
    database = Database(scratch_database_url)
    try:
        with database.session_scope() as db:

            admin = db.scalars(select(User)).one()
            for n in range(2):
                notifications.queue_email(db, to=f"owner{n}@example.com", subject=f"Approval needed {n}", body_text="b", kind="demo")
            stuck = notifications.queue_email(db, to="gone@example.com", subject="Rotation overdue", body_text="b", kind="demo")
            assert stuck is not None
            stuck.status, stuck.attempts, stuck.last_error = "failed", notifications.MAX_ATTEMPTS, "550 5.1.1 <gone@example.com>: mailbox unavailable"
            notifications.notify(db, user=admin, kind="grant.approval_needed", title="Approval needed: Admin on Acme Instagram for Rita Report", link="/grants/")
            notifications.notify(db, user=admin, kind="grant.expired", title="Access ended: Publisher on Acme LinkedIn")
            db.commit()
    finally:
        database.engine.dispose()

    # cron's part: `govern jobs run` with the SMTP settings, against a loopback SMTP server.
    server = start_server(tmp_path)
    try:
        env = server_env(tmp_path, scratch_database_url, live_server.base_url)
        env.update({"GOVERN_SMTP_HOST": "127.0.0.1", "GOVERN_SMTP_PORT": str(server.port), "GOVERN_SMTP_FROM": "govern@example.com"})
        result = subprocess.run([str(VENV_BIN / "govern"), "jobs", "run"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "email.send: ok (sent 2, failed 0, gave_up 0)" in result.stdout
        assert sorted(m["To"] for m in server.inbox.messages) == ["owner0@example.com", "owner1@example.com"]
    finally:
        server.controller.stop()

    page.goto(live_server.url("/"))
    expect(page.locator("#jobs-notice")).to_have_count(0)
    badge = page.locator(".notifications-link .badge-count")
    expect(badge).to_have_text("2")
    nav = page.get_by_role("navigation", name="Main")
    nav.locator("summary", has_text="Admin").click()  # Jobs is in the menu's Admin group
    nav.get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    expect(page.locator("#runs")).to_contain_text("sent 2")
    expect(page.locator("#failed-emails")).to_contain_text("550 5.1.1")
    expect(page.locator("#smtp-missing")).to_have_count(0)  # the run had SMTP, though the web process has none
    screenshots(page, "jobs_page")

    page.locator(".notifications-link").click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    expect(page.locator("#notifications tbody tr.notification-unread")).to_have_count(2)
    screenshots(page, "notifications_unread")
    submit(page, "Mark all read")
    expect(page.locator(".notifications-link .badge-count")).to_have_count(0)
    expect(page.locator("#notifications tbody tr.notification-unread")).to_have_count(0)
    expect(page.locator(".flash")).to_contain_text(re.compile(r"Marked 2 notification"))
    screenshots(page, "notifications_read")

    # An audit sink: the form, the signing secret shown once, the sink on the Jobs page (desktop and phone).
    page.goto(live_server.url("/jobs/"))
    page.get_by_role("link", name="Add a sink").click()
    expect(page.get_by_role("heading", name="Add an audit sink")).to_be_visible()
    screenshots(page, "sink_form")
    page.get_by_label("Name").fill("SIEM")
    page.get_by_label("Kind").select_option("https")
    page.get_by_label("HTTPS address").fill("https://siem.example/collect")
    submit(page, "Add the sink")
    expect(page.locator("#sink-secret")).to_contain_text("whsec_")
    screenshots(page, "sink_created")
    page.goto(live_server.url("/jobs/"))
    expect(page.locator("#audit-sinks")).to_contain_text("SIEM")
    expect(page.locator("#audit-sinks")).not_to_contain_text("whsec_")
    page.locator("#audit-sinks").scroll_into_view_if_needed()
    screenshots(page, "jobs_sinks")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=context.storage_state())
    phone_page = phone.new_page()
    phone_page.goto(live_server.url("/jobs/"))
    phone_page.locator("#audit-sinks").scroll_into_view_if_needed()
    screenshots(phone_page, "jobs_sinks_phone")
    phone.close()

    context.close()
    assert problems == [], problems
