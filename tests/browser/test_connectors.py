"""The connectors' pages in Chromium at desktop and phone width (screenshots in artifacts/screenshots): the
Connectors page, a connection's accounts, an account's members on a past day, the drift report filtered, the
IT dashboard's drift chart, and a person linking their own LinkedIn identity."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from govern.connectors import connections, sync
from govern.connectors.connections import Settings
from govern.db import database, utcnow
from govern.vault import versions
from tests.browser.helpers import LiveServer, server_app, sign_in_at_step, submit, watch
from tests.connectors.fakeplatforms import META_TOKEN, Platforms, serve
from tests.factories import make_account, make_grant, make_person, make_user


@pytest.mark.browser
@pytest.mark.slow
def test_connectors_pages(browser: Any, live_server: LiveServer, screenshots: Any, tmp_path: Path,
                          scratch_database_url: str) -> None:
    app = server_app(tmp_path, scratch_database_url)
    kit = app.extensions["govern.auth"]
    ring = app.extensions["govern.keyring"]
    platforms = Platforms()
    platforms.business_users["b1"] = {
        "100": {"id": "100", "name": "Lea L.", "email": "lea@acme.example", "role": "EMPLOYEE"},
        "101": {"id": "101", "name": "Sam S.", "email": "sam@acme.example", "role": "EMPLOYEE"},
        "102": {"id": "102", "name": "Dora D.", "email": "dora@acme.example", "role": "EMPLOYEE"},
        "103": {"id": "103", "name": "Freelancer", "role": "EMPLOYEE"},
    }
    platforms.pages["p1"] = {"100": ["CREATE_CONTENT"], "101": ["MANAGE", "CREATE_CONTENT"], "102": ["ANALYZE"]}
    with serve(platforms) as url, app.app_context():
        db = database(app).sessionmaker()
        it = make_user(db, kit, roles=("it",), email="ivo@acme.example", full_name="Ivo IT")
        staff = make_user(db, kit, email="zed@acme.example", full_name="Zed Zimmer")
        lea = make_person(db, full_name="Lea Lopez", email="lea@acme.example")
        sam = make_person(db, full_name="Sam Staff", email="sam@acme.example")
        make_person(db, full_name="Dora Departed", email="dora@acme.example", status="departed")
        page_account = make_account(db, display_name="Acme on Facebook", handle="acme-fb", platform="facebook",
                                    url="https://facebook.com/acme")
        make_grant(db, lea, page_account, "publisher")
        make_grant(db, sam, page_account, "moderator")
        with app.test_request_context():
            secret = versions.create_secret(db, actor=it.user, keyring=ring, account=page_account, kind="api_token",
                                            label="Meta system user", value=META_TOKEN)
            meta = connections.create_connection(db, actor=it.user, platform="meta", external_id="b1",
                                                 name="Acme business", secret=secret)
            connections.cover_account(db, actor=it.user, connection=meta, account=page_account, platform_id="p1")
            for n in range(3):
                other = make_account(db, display_name=f"Acme Store {n + 1}", handle=f"acme-store-{n}",
                                     platform="facebook", url=f"https://facebook.com/acme-store-{n}")
                connections.cover_account(db, actor=it.user, connection=meta, account=other, platform_id=f"s{n}")
            db.commit()
            settings = Settings(meta_url=url, keyring=ring, sleep=lambda _: None)
            earlier = utcnow() - timedelta(days=6)
            sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit, now=earlier)
            platforms.pages["p1"]["103"] = ["MANAGE"]  # a freelancer added by a colleague since
            del platforms.pages["p1"]["101"]
            sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
        account_id, connection_id = page_account.id, meta.id
        db.close()
    day = earlier.astimezone(UTC).date().isoformat()
    problems: list[str] = []
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch(page, problems)
    sign_in_at_step(page, live_server, it.email, it.password, it.seed)
    page.goto(live_server.url("/connectors/"))
    expect(page.get_by_role("heading", name="Platform connectors")).to_be_visible()
    expect(page.get_by_role("link", name="4 accounts")).to_be_visible()
    screenshots(page, "connectors_desktop")
    page.goto(live_server.url(f"/connectors/connections/{connection_id}"))
    expect(page.locator("#covered")).to_contain_text("Acme Store 3")
    page.goto(live_server.url(f"/connectors/accounts/{account_id}"))
    expect(page.locator("#members")).to_contain_text("Freelancer")
    page.get_by_label("Who held it on").fill(day)
    submit(page, "Show")
    expect(page.locator("#members")).to_contain_text("Sam S.")
    expect(page.locator("#members")).not_to_contain_text("Freelancer")
    screenshots(page, "connector_account_desktop")
    page.goto(live_server.url("/connectors/drift?severity=critical"))
    expect(page.locator("#drift")).to_contain_text("Dora Departed")
    expect(page.locator("#drift")).to_contain_text("Freelancer")
    screenshots(page, "drift_desktop")
    page.goto(live_server.url("/rotation/"))
    expect(page.locator("#drift-chart svg")).to_be_visible()
    expect(page.locator("#critical-drift")).to_contain_text("Dora Departed")
    screenshots(page, "it_dashboard_drift_desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshots(page, "it_dashboard_drift_phone")
    page.goto(live_server.url(f"/connectors/accounts/{account_id}?at={day}"))
    screenshots(page, "connector_account_phone")
    page.goto(live_server.url("/connectors/drift"))
    screenshots(page, "drift_phone")
    page.context.close()

    mine = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    watch(mine, problems)
    sign_in_at_step(mine, live_server, staff.email, staff.password, staff.seed)
    mine.goto(live_server.url("/account"))
    mine.get_by_role("link", name="Platform identities").click()
    mine.get_by_label("Platform", exact=True).select_option("linkedin")
    mine.get_by_label("Your id on the platform (LinkedIn: urn:li:person:…)").fill("urn:li:person:zed")
    submit(mine, "Link")
    expect(mine.locator("#identities")).to_contain_text("LinkedIn: urn:li:person:zed")
    screenshots(mine, "platform_identities_phone")
    mine.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
