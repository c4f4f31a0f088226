"""The groups pages in Chromium: the list with a pending mapping, a group's members and mappings, at desktop
and phone width (screenshots in artifacts/screenshots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from govern.db import database
from govern.groups import mappings
from govern.groups import services as groups
from tests.browser.helpers import LiveServer, server_app, sign_in_at_step, watch
from tests.factories import make_account, make_person, make_user


@pytest.mark.browser
@pytest.mark.slow
def test_groups_pages(browser: Any, live_server: LiveServer, screenshots: Any, tmp_path: Path,
                      scratch_database_url: str) -> None:
    app = server_app(tmp_path, scratch_database_url)
    kit = app.extensions["govern.auth"]
    with app.app_context():
        db = database(app).sessionmaker()
        admin = make_user(db, kit, roles=("admin",), email="ada@acme.example", full_name="Ada Admin")
        people = [make_person(db, full_name=f"Member {n}", email=f"m{n}@acme.example") for n in range(4)]
        account = make_account(db, display_name="Acme on Instagram")
        group = groups.create_group(db, actor=None, display_name="Social media publishers",
                                    external_id="6f1b2c3d-entra-object-id", member_ids=[p.id for p in people])
        mappings.propose(db, actor=admin.user, group=group, app_role="auditor")
        mappings.propose(db, actor=admin.user, group=group, account_id=account.id, role_code="admin")
        db.commit()
        group_id = group.id
        db.close()
    problems: list[str] = []
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch(page, problems)
    sign_in_at_step(page, live_server, admin.email, admin.password, admin.seed)
    page.goto(live_server.url("/admin/groups/"))
    expect(page.get_by_role("heading", name="Waiting for a second admin")).to_be_visible()
    screenshots(page, "groups_desktop")
    page.goto(live_server.url(f"/admin/groups/{group_id}"))
    expect(page.get_by_role("heading", name="Social media publishers")).to_be_visible()
    expect(page.get_by_text("4 waiting login")).to_be_visible()  # members without a govern login yet
    screenshots(page, "group_desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshots(page, "group_phone")
    page.goto(live_server.url("/admin/groups/"))
    screenshots(page, "groups_phone")
    page.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
