"""A person without a login accepts the policy with the one-time link from their email, in a real
browser: the script moves the token from the link's fragment into the form (it never reaches the
server's log), the policy shows, one click accepts it, and the link works no more."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from govern.db import database
from govern.notifications.models import OutboxMessage
from govern.policies import links
from govern.policies.models import Acknowledgement
from tests.browser.helpers import LiveServer, server_app
from tests.factories import make_person, make_user, publish_policy


@pytest.mark.browser
@pytest.mark.slow
def test_policy_link(browser: Any, live_server: LiveServer, scratch_database_url: str, tmp_path: Path,
                     screenshots: Any) -> None:
    app = server_app(tmp_path, scratch_database_url)
    kit = app.extensions["govern.auth"]
    with app.app_context(), app.test_request_context():
        db = database(app).sessionmaker()
        try:
            manager = make_user(db, kit, roles=("manager",), email="max@acme.example", full_name="Max Manager")
            nora = make_person(db, full_name="Nora Nologin", email="nora@acme.example")
            version = publish_policy(db, body="# Acme social media policy\n\nBe kind. Never share the password.")
            links.request_acknowledgement(db, actor=manager.user, person=nora, version=version,
                                          base_url=live_server.base_url)
            db.commit()
            body = db.scalar(select(OutboxMessage.body_text).where(OutboxMessage.to_address == "nora@acme.example"))
            nora_id = nora.id
        finally:
            db.close()
    url = re.search(r"(http://\S+/policies/acknowledge#token=\S+)", body).group(1)

    for width in (1280, 375):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#token")).not_to_have_value("")
        assert "#token" not in page.url  # wiped from the address bar and history
        screenshots(page, f"link_opened_{width}")
        with page.expect_navigation():
            page.get_by_role("button", name="Read the policy").click()
        if width == 1280:
            expect(page.get_by_role("heading", name="Acme social media policy")).to_be_visible()
            expect(page.locator("#accept")).to_contain_text("Nora Nologin")
            screenshots(page, "policy_to_accept")
            with page.expect_navigation():
                page.get_by_role("button", name="I accept version 1").click()
            expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
            screenshots(page, "accepted")
        else:
            # The link was used: a second use is refused.
            expect(page.locator(".error")).to_contain_text("does not work any more")
            screenshots(page, "link_used_375")
        context.close()

    assert "#token" not in live_server.read_log() and "token=" not in live_server.read_log()
    with app.app_context():
        db = database(app).sessionmaker()
        try:
            assert db.scalar(select(Acknowledgement).where(Acknowledgement.person_id == nora_id)) is not None
        finally:
            db.close()
