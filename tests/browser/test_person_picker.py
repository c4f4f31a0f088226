"""The person picker in a real browser (issue 16): a manager types part of a colleague's name in
the grant form, picks them with the arrow keys and Enter, and the grant is made; the home page
shows the manager what waits for them, at desktop and phone widths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from govern.db import database
from govern.grants.models import Grant
from tests.browser.helpers import LiveServer, click_through, server_app, sign_in_as
from tests.factories import make_account, make_grant, make_person, make_user


def _seed(tmp_path: Path, database_url: str) -> SimpleNamespace:
    app = server_app(tmp_path, database_url)
    kit = app.extensions["govern.auth"]
    with app.app_context():
        db = database(app).sessionmaker()
        try:
            manager = make_user(db, kit, roles=("manager",), email="max@acme.example", full_name="Max Manager")
            account = make_account(db, handle="acme", display_name="Acme Instagram", business_owner_id=manager.user.person_id)
            for name in ("Paula Parker", "Pablo Parra", "Pamela Park"):
                make_person(db, full_name=name, email=name.lower().replace(" ", ".") + "@acme.example", department="Comms")
            waiting = make_person(db, full_name="Rita Report", manager_id=manager.user.person_id)
            make_grant(db, waiting, account, "analyst", status="requested")
            db.commit()
            return SimpleNamespace(manager=manager, account_id=account.id, app=app)
        finally:
            db.close()


@pytest.mark.browser
@pytest.mark.slow
def test_person_picker(browser: Any, live_server: LiveServer, scratch_database_url: str, tmp_path: Path,
                       screenshots: Any) -> None:
    seed = _seed(tmp_path, scratch_database_url)
    page = sign_in_as(browser, live_server, seed.manager)
    expect(page.locator("#waiting-approvals")).to_contain_text("1 request to approve or reject")
    screenshots(page, "manager_home")
    page.set_viewport_size({"width": 375, "height": 800})
    screenshots(page, "manager_home_phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    click_through(page, page.locator("#grant-a-role"))
    page.goto(live_server.url(f"/grants/new?account_id={seed.account_id}"))
    field = page.locator("#person")
    expect(field).to_have_attribute("role", "combobox")
    field.press_sequentially("par", delay=40)
    listbox = page.get_by_role("listbox")
    expect(listbox.get_by_role("option")).to_have_count(3)
    expect(field).to_have_attribute("aria-expanded", "true")
    screenshots(page, "picker_open")
    # Two steps down: the second match is highlighted (and announced as the active descendant).
    field.press("ArrowDown")
    field.press("ArrowDown")
    chosen = listbox.get_by_role("option").nth(1)
    expect(chosen).to_have_attribute("aria-selected", "true")
    expect(field).to_have_attribute("aria-activedescendant", chosen.get_attribute("id") or "")
    expected_email = chosen.get_attribute("data-value")
    assert expected_email and expected_email.endswith("@acme.example")
    field.press("Enter")  # picks; does not submit the form
    expect(field).to_have_value(expected_email)
    expect(field).to_have_attribute("aria-expanded", "false")
    # Escape closes a list opened again, keeping the value.
    field.press("ArrowDown")
    expect(listbox).to_be_visible()
    field.press("Escape")
    expect(listbox).to_be_hidden()
    expect(field).to_have_value(expected_email)

    page.locator("input[name=role_code][value=analyst]").check()
    page.fill("#reason", "Community replies during the campaign")
    page.set_viewport_size({"width": 375, "height": 800})
    field.fill("")
    field.press_sequentially("pa", delay=40)
    expect(listbox.get_by_role("option")).to_have_count(3)
    screenshots(page, "picker_open_phone")
    field.press("ArrowDown")
    field.press("Enter")
    expect(field).to_have_value("pablo.parra@acme.example")
    click_through(page, page.get_by_role("button", name="Grant", exact=True))
    expect(page.locator(".flash")).to_contain_text("Pablo Parra is now Analyst on Acme Instagram")
    screenshots(page, "granted_phone")

    # The people list's manager filter offers the same picker.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url("/people/"))
    manager_filter = page.locator("input[name=manager]")
    manager_filter.press_sequentially("max", delay=40)
    expect(page.get_by_role("listbox").get_by_role("option")).to_have_count(1)
    screenshots(page, "people_filter_picker")
    manager_filter.press("ArrowDown")
    manager_filter.press("Enter")
    expect(manager_filter).to_have_value("max@acme.example")

    with seed.app.app_context():
        db = database(seed.app).sessionmaker()
        try:
            grant = db.scalar(select(Grant).where(Grant.role_code == "analyst", Grant.status == "active"))
            assert grant is not None and grant.person.email == "pablo.parra@acme.example"
        finally:
            db.close()
