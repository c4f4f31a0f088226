"""An offboarding from end to end, in a real browser against a real server process:
HR schedules it (the preview lists the secrets that will need rotation), the manager picks a
successor before the day, `govern jobs run` starts it, IT works through the checklist including
confirming the rotation of the password Lea revealed, the manager hands the accounts over, HR
sees it complete and downloads the evidence."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from govern.crypto.keyring import Keyring
from govern.db import database, utcnow
from govern.directory.models import Person
from govern.offboarding.models import Offboarding
from govern.vault.access import reveal
from govern.vault.versions import create_secret
from tests.browser.helpers import VENV_BIN, LiveServer, click_through, server_app, server_env, sign_in_as
from tests.factories import make_account, make_grant, make_person, make_user


def _seed(tmp_path: Path, database_url: str) -> SimpleNamespace:
    """People, accounts and grants, written to the server's database with its own secret key."""
    instance = tmp_path / "instance"
    app = server_app(tmp_path, database_url)
    kit = app.extensions["govern.auth"]
    with app.app_context():
        db = database(app).sessionmaker()
        try:
            hr = make_user(db, kit, roles=("hr",), email="hana@acme.example", full_name="Hana HR")
            it = make_user(db, kit, roles=("it",), email="ivo@acme.example", full_name="Ivo IT")
            manager = make_user(db, kit, roles=("manager",), email="max@acme.example", full_name="Max Manager")
            lea_login = make_user(db, kit, email="lea@acme.example", full_name="Lea Leaver")
            lea = lea_login.user.person
            lea.manager_id, lea.department, lea.title = manager.user.person_id, "Marketing", "Community manager"
            sam = make_person(db, full_name="Sam Successor", email="sam@acme.example", manager_id=manager.user.person_id)
            linkedin = make_account(db, platform="linkedin", handle="acme-li", display_name="Acme LinkedIn",
                                    url="https://www.linkedin.com/company/acme-li", business_owner_id=lea.id,
                                    crisis_contact_id=lea.id)
            insta = make_account(db, handle="acme", display_name="Acme Instagram", business_owner_id=manager.user.person_id,
                                 recovery_email_person_id=lea.id)
            make_grant(db, lea, linkedin, "admin")
            make_grant(db, lea, insta, "publisher")
            make_grant(db, sam, insta, "admin")
            db.commit()
            # The vault holds both accounts' passwords; Lea revealed the Instagram one to post.
            ring = Keyring.load(instance / "vault.key")
            insta_login = create_secret(db, actor=it.user, keyring=ring, account=insta, kind="password",
                                              label="Instagram login", value="Old-Instagram-Pass-1!")
            create_secret(db, actor=it.user, keyring=ring, account=linkedin, kind="password", label="LinkedIn login",
                                value="Old-LinkedIn-Pass-1!")
            db.commit()
            reveal(db, actor=lea_login.user, keyring=ring, secret=insta_login, reason="posting", mfa_fresh=True)
            db.commit()
            return SimpleNamespace(hr=hr, it=it, manager=manager, lea_id=lea.id, sam_email=sam.email,
                                   app=app, linkedin_id=linkedin.id)
        finally:
            db.close()


@pytest.mark.browser
@pytest.mark.slow
def test_offboarding(browser: Any, live_server: LiveServer, scratch_database_url: str, tmp_path: Path,
                     screenshots: Any) -> None:
    seed = _seed(tmp_path, scratch_database_url)

    # 1. HR schedules the offboarding for Lea's last day, from her page in the directory.
    hr = sign_in_as(browser, live_server, seed.hr)
    hr.goto(live_server.url(f"/people/{seed.lea_id}"))
    click_through(hr, hr.get_by_role("link", name="Offboard", exact=True))
    when = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    hr.fill("#effective_at", when)
    hr.fill("#note", "Last day on Friday; laptop returned to IT.")
    screenshots(hr, "hr_schedules")
    click_through(hr, hr.get_by_role("button", name="Start the offboarding"))
    expect(hr.locator("#preview")).to_contain_text("LinkedIn Super admin")
    expect(hr.locator("#flags")).to_contain_text("Acme LinkedIn")
    expect(hr.locator("#preview-rotations li")).to_have_count(2)
    expect(hr.locator("#preview-rotations li").first).to_contain_text("revealed")
    expect(hr.locator("#preview-rotations li").first).to_contain_text("Instagram login")
    offboarding_url = hr.url
    screenshots(hr, "preview_before_the_day")

    # 2. Before the day, the manager names Sam as successor for both accounts.
    manager = sign_in_as(browser, live_server, seed.manager)
    manager.goto(offboarding_url)
    for row in range(2):
        form = manager.locator("#successors form").nth(row)
        form.locator("input[name=successor]").fill(seed.sam_email)
        click_through(manager, form.get_by_role("button"))
    expect(manager.locator("#successors")).not_to_contain_text("not chosen")
    screenshots(manager, "manager_picks_successors")

    # 3. The day comes (the effective time is moved into the past), and the jobs runner starts it.
    with seed.app.app_context():
        db = database(seed.app).sessionmaker()
        db.execute(update(Offboarding).values(effective_at=utcnow() - timedelta(minutes=1)))
        db.commit()
        db.close()
    env = server_env(tmp_path, scratch_database_url, live_server.base_url)
    run = subprocess.run([str(VENV_BIN / "govern"), "jobs", "run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0 and "offboarding.start_due: ok (started 1" in run.stdout, run.stdout + run.stderr

    # 4. IT removes Lea from each platform's role list and confirms with a note.
    it = sign_in_as(browser, live_server, seed.it)
    it.goto(offboarding_url)
    expect(it.locator("#checklist")).to_contain_text("Remove Lea Leaver as LinkedIn Super admin")
    rotation_rows = it.locator("#checklist tr", has=it.locator("a[href*='/rotation/tasks/']"))
    expect(rotation_rows).to_have_count(2)
    expect(rotation_rows.first).to_contain_text("Rotate Instagram login")
    expect(rotation_rows.first).to_contain_text("revealed")
    screenshots(it, "checklist_started")
    for _ in range(2):
        form = it.locator("form[action*='/done']").first
        form.locator("textarea").fill("Removed in the platform's admin settings; screenshot in ticket IT-4711.")
        click_through(it, form.get_by_role("button", name="Mark done"))
    screenshots(it, "it_removals_done")
    # IT rotates both passwords through their rotation tasks; each confirmation closes its item.
    for label in ("Instagram login", "LinkedIn login"):
        row = it.locator("#checklist tr", has_text=f"Rotate {label}")
        click_through(it, row.locator("a[href*='/rotation/tasks/']"))
        click_through(it, it.get_by_role("button", name="Generate and stage"))
        expect(it.locator("#task-status")).to_have_text("staged")
        for box in it.locator("input[name=checklist]").all():
            box.check()
        if label == "Instagram login":
            screenshots(it, "rotation_task_staged")
        click_through(it, it.get_by_role("button", name="Confirm: the new value works"))
        expect(it.locator("#task-status")).to_have_text("done")
        it.goto(offboarding_url)
        expect(it.locator("#checklist tr", has_text=f"Rotate {label}")).to_contain_text("confirmed: version 2")
    screenshots(it, "it_rotations_done")

    # 5. The manager hands the accounts over to Sam.
    manager.goto(offboarding_url)
    for _ in range(2):
        form = manager.locator("form[action*='/done']").first
        form.locator("textarea").fill("Sam holds the role on the platform and the recovery contact moved.")
        click_through(manager, form.get_by_role("button", name="Mark done"))
    expect(manager.locator("h1")).to_contain_text("completed")
    screenshots(manager, "manager_successors_done")

    # 6. HR sees it complete on the home page and downloads the evidence.
    hr.goto(live_server.url("/offboarding/?status=closed"))
    expect(hr.locator("#offboardings")).to_contain_text("Lea Leaver")
    expect(hr.locator("#offboardings")).to_contain_text("100%")
    screenshots(hr, "hr_sees_complete")
    hr.goto(offboarding_url)
    click_through(hr, hr.get_by_role("link", name="Evidence report"))
    expect(hr.get_by_role("heading", name="Evidence: offboarding of Lea Leaver")).to_be_visible()
    expect(hr.locator("#rotations tbody tr")).to_have_count(2)
    expect(hr.locator("#exposures")).to_contain_text("Instagram login")
    screenshots(hr, "evidence")
    with hr.expect_download() as download_info:
        hr.locator("#evidence-csv").click()
    rows = list(csv.reader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))
    items = [r for r in rows if r and r[0].isdigit()]
    assert len(items) == 6 and all(r[4] == "done" and r[9] for r in items)
    rotations = [r for r in rows if r and r[0] == "rotation"]
    assert [r[3] for r in rotations] == ["Instagram login", "LinkedIn login"] and all(r[8] == "2" for r in rotations)
    assert [r[1] for r in rows if r and r[0] == "exposure"] and "Old-Instagram-Pass-1!" not in str(rows)

    with seed.app.app_context():
        db = database(seed.app).sessionmaker()
        assert db.scalar(select(Person.status).where(Person.id == seed.lea_id)) == "departed"
        db.close()
