"""IT in a real browser against a real server: rotate an overdue password through its task
(generate, change on the platform, confirm) and lock down a compromised account."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from govern.accounts.models import Account
from govern.auth.models import User, UserRole
from govern.crypto.keyring import Keyring
from govern.db import Database, utcnow
from govern.directory.models import Person
from govern.vault.models import SecretVersion
from tests.browser.helpers import VENV_BIN, LiveServer, server_env, set_up_admin, submit


def _seed(database_url: str, key_file: Path) -> None:
    from govern.vault.versions import create_secret

    ring = Keyring.load(key_file)
    database = Database(database_url)
    try:
        with database.session_scope() as db:
            admin = db.scalars(select(User)).one()
            db.add(UserRole(user_id=admin.id, role="it"))
            crisis = Person(full_name="Casey Crisis", email="casey@example.com")
            owner = Person(full_name="Olive Owner", email="olive@example.com")
            db.add_all([crisis, owner])
            db.flush()
            insta = Account(platform="instagram", handle="acme", url="https://www.instagram.com/acme", display_name="Acme Instagram",
                            crisis_contact_id=crisis.id, business_owner_id=owner.id)
            linkedin = Account(platform="linkedin", handle="acme-co", url="https://www.linkedin.com/company/acme-co",
                               display_name="Acme LinkedIn", business_owner_id=owner.id)
            db.add_all([insta, linkedin])
            db.flush()
            old = create_secret(db, actor=admin, keyring=ring, account=insta, kind="password", label="Instagram login",
                                      value="Old-Instagram-Pass-1!", login="acme")
            create_secret(db, actor=admin, keyring=ring, account=insta, kind="totp", label="Instagram 2FA",
                                value="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
            create_secret(db, actor=admin, keyring=ring, account=linkedin, kind="password", label="LinkedIn login",
                                value="Old-LinkedIn-Pass-1!")
            create_secret(db, actor=admin, keyring=ring, account=linkedin, kind="recovery_codes", label="LinkedIn recovery codes",
                                value="aaaa-1111\nbbbb-2222")
            db.flush()
            long_ago = utcnow() - timedelta(days=120)
            db.execute(update(SecretVersion).where(SecretVersion.secret_id == old.id).values(confirmed_at=long_ago, created_at=long_ago))
            db.commit()
    finally:
        database.engine.dispose()


@pytest.mark.browser
@pytest.mark.slow
def test_it_rotates_an_overdue_password_and_locks_down_an_account(browser: Any, live_server: LiveServer, screenshots: Any,
                                                                  tmp_path: Path, scratch_database_url: str) -> None:
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    _seed(scratch_database_url, tmp_path / "instance" / "vault.key")
    set_up_admin(page, live_server)

    # cron's part: the jobs run opens the scheduled task for the overdue password.
    env = server_env(tmp_path, scratch_database_url, live_server.base_url)
    result = subprocess.run([str(VENV_BIN / "govern"), "jobs", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert "rotation.schedule: ok (opened 1, already_open 0)" in result.stdout, result.stdout + result.stderr

    page.goto(live_server.url("/"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rotation").click()
    expect(page.get_by_role("heading", name="Rotation", exact=True)).to_be_visible()
    expect(page.locator("#by-platform")).to_contain_text("Instagram")
    expect(page.locator("#queue .queue-row")).to_have_count(1)
    expect(page.locator("#age-chart svg")).to_be_visible()
    expect(page.locator("#compliance-chart svg")).to_be_visible()
    screenshots(page, "dashboard_overdue")

    page.locator("#queue").get_by_role("link", name="Instagram login").click()
    expect(page.locator("#task-status")).to_have_text("open")
    expect(page.locator("#checklist-preview")).to_contain_text("Reconnect publishing tools")
    screenshots(page, "task_open")
    submit(page, "Generate and stage")
    expect(page.locator("#generated-value")).to_be_visible()
    generated = page.locator("#generated-value").inner_text()
    assert len(generated) >= 12 and generated != "Old-Instagram-Pass-1!"
    expect(page.locator("#task-status")).to_have_text("staged")
    screenshots(page, "task_staged_generated")

    page.locator("#check-changed").check()
    page.locator("#check-sessions").check()
    page.locator("#check-tools").check()
    submit(page, "Confirm: the new value works")
    expect(page.locator("#task-status")).to_have_text("done")
    expect(page.locator(".flash")).to_contain_text("confirmed")
    expect(page.locator("#rollback")).to_be_visible()
    assert generated not in page.content()
    screenshots(page, "task_done")

    # An account is hacked: IT locks it down from its page.
    page.goto(live_server.url("/accounts/"))
    page.get_by_role("link", name="Acme LinkedIn").click()
    page.get_by_role("link", name="Mark compromised").click()
    page.get_by_label("What happened").fill("Posts we did not write appeared at 03:12; the page admin list has a stranger.")
    screenshots(page, "lockdown_form")
    submit(page, "Lock down the account")
    expect(page.locator("#incident-status")).to_have_text("open")
    expect(page.locator("#incident-tasks li")).to_have_count(2)
    expect(page.locator("#timeline")).to_contain_text("rotation.account_locked")
    screenshots(page, "incident_open")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Rotation").click()
    expect(page.locator("#open-incidents")).to_contain_text("Acme LinkedIn")
    expect(page.locator("#queue .queue-row")).to_have_count(2)
    screenshots(page, "dashboard_after_lockdown")

    context.close()
    assert problems == [], problems
