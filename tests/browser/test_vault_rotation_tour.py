"""The vault and rotation on the demo company, as IT sees them in a browser: home page -> rotation
dashboard (charts), a task, the incident, an account's credentials, a secret's page with its rotation
state, password and 2FA reveals, the import preview and the password rules; screenshots of each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import LiveServer, seed_and_enrol, sign_in_demo, submit

IT = "viktor.petrov@northpeak.example"


@pytest.mark.browser
@pytest.mark.slow
def test_it_tours_the_vault_and_rotation_of_the_demo(browser: Any, live_server: LiveServer, screenshots: Any,
                                                     tmp_path: Path) -> None:
    problems: list[str] = []
    seeds = seed_and_enrol(live_server, [IT])
    page = sign_in_demo(browser, live_server, IT, seeds[IT], problems, viewport={"width": 1280, "height": 900})

    # IT's home page leads to the dashboard; so does the navigation.
    expect(page.locator("#rotation-tile")).to_be_visible()
    screenshots(page, "it_home")
    page.locator("#rotation-tile").get_by_role("link", name="Rotation dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rotation")
    expect(page.locator("svg").first).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Rotation")).to_be_visible()
    screenshots(page, "dashboard")

    # The incident and a task from the queue.
    page.get_by_role("link", name=re.compile("Northpeak on TikTok")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("TikTok")
    screenshots(page, "incident")
    page.goto(live_server.url("/rotation/"))
    page.get_by_role("link", name=re.compile("Instagram login")).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rotate Instagram login")
    screenshots(page, "task")

    # From the task to the secret's vault page, which shows the rotation state and the open task.
    page.locator(".crumbs").get_by_role("link", name="Instagram login").click()
    expect(page.locator("#rotation-state")).to_contain_text("overdue")
    expect(page.locator("#open-task")).to_be_visible()
    screenshots(page, "secret_page")
    page.get_by_role("link", name="Reveal").click()
    page.get_by_label(re.compile("Why")).fill("Checking the demo")
    submit(page, "Reveal")
    expect(page.locator("[data-reveal]")).to_contain_text("DEMO-ONLY")
    screenshots(page, "reveal_password")

    # The account page lists its credentials; the 2FA shows a live code, never the seed.
    page.goto(live_server.url("/accounts/"))
    page.get_by_role("link", name="Northpeak News", exact=True).first.click()
    expect(page.locator("#secrets")).to_contain_text("X 2FA (IT phone)")
    screenshots(page, "account_secrets")
    page.locator("#secrets").get_by_role("link", name="X 2FA (IT phone)").click()
    page.get_by_role("link", name="Show live code").click()
    page.get_by_label(re.compile("Why")).fill("Checking the demo")
    submit(page, "Show code")
    expect(page.locator("[data-totp]")).to_have_text(re.compile(r"^\s*\d{6}\s*$"))
    screenshots(page, "reveal_totp")

    # Import preview of a small generic export (fake value), then the password rules.
    export = tmp_path / "export.csv"
    export.write_text("account,platform,kind,label,login,value,expires_at\n"
                      "@northpeak,bluesky,password,Old Bluesky login,,DEMO-ONLY-import-1,\n"
                      "@northpeak_shop,pinterest,password,Pinterest shop,,DEMO-ONLY-import-2,\n"
                      "nobody,,password,Mystery,,DEMO-ONLY-import-3,\n", encoding="utf-8")
    page.goto(live_server.url("/vault/import"))
    page.get_by_label("Exported by").select_option("generic")
    page.locator("input[type=file]").set_input_files(str(export))
    submit(page, "Preview")
    expect(page.locator("main")).to_contain_text("Mystery")
    assert "DEMO-ONLY-import" not in page.content()
    screenshots(page, "import_preview")
    page.goto(live_server.url("/vault/password-rules"))
    screenshots(page, "password_rules")
    page.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
