"""The Generate button of the vault's password forms (static/govern.js) in a real browser: it asks
the server for a password fitting the platform's rules (POST with the form's CSRF token), fills the
value box, shows the length and strength, and the generated password is what gets vaulted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from govern.db import database
from govern.vault.access import decrypt_version
from govern.vault.models import Secret
from govern.vault.versions import current_version
from tests.browser.helpers import LiveServer, seed_vault_people, server_app, signed_in_page, submit

GENERATED_CHARS = re.compile(r"^\S{8,}$")


@pytest.mark.browser
@pytest.mark.slow
def test_generate_fills_the_password_with_the_platforms_rules(browser: Any, live_server: LiveServer, screenshots: Any,
                                                              tmp_path: Path, scratch_database_url: str) -> None:
    it, _publisher, account_id = seed_vault_people(tmp_path, scratch_database_url)
    problems: list[str] = []
    page, _ = signed_in_page(browser, live_server, it, problems)

    page.goto(live_server.url(f"/vault/accounts/{account_id}/new"))
    page.get_by_label("Kind").select_option("password")
    page.get_by_label("Name", exact=True).fill("Instagram login")
    value = page.get_by_label("Value", exact=True)
    expect(value).to_have_value("")
    with page.expect_response(re.compile(r"/vault/generate\?account=")) as answer:
        page.get_by_role("button", name="Generate a password").click()
    assert answer.value.status == 200
    assert answer.value.headers.get("cache-control") == "no-store"
    expect(value).not_to_have_value("")
    first = value.input_value()
    assert GENERATED_CHARS.match(first), first
    expect(page.locator(f"#generate-info-{account_id}")).to_contain_text(re.compile(r"\d+ characters, \d+ bits"))
    screenshots(page, "generated_on_new_form")
    # A second click gives a different password.
    with page.expect_response(re.compile(r"/vault/generate\?account=")):
        page.get_by_role("button", name="Generate a password").click()
    expect(value).not_to_have_value(first)
    generated = value.input_value()
    submit(page, "Encrypt and store")
    expect(page.get_by_role("heading", name=re.compile("^Instagram login"))).to_be_visible()
    assert generated not in page.content()

    # The change form has the same button for passwords.
    page.get_by_role("link", name="Change value").click()
    with page.expect_response(re.compile(r"/vault/generate\?account=")) as answer:
        page.get_by_role("button", name="Generate a password").click()
    assert answer.value.status == 200
    changed_value = page.get_by_label("New value", exact=True)
    expect(changed_value).not_to_have_value("")
    screenshots(page, "generated_on_change_form")
    page.context.close()
    assert problems == [], problems

    # What was vaulted is exactly the generated password (read back with the server's keyring).
    app = server_app(tmp_path, scratch_database_url)
    db = database(app).sessionmaker()
    try:
        secret = db.scalars(select(Secret).where(Secret.label == "Instagram login")).one()
        stored = decrypt_version(db, actor=None, keyring=app.extensions["govern.keyring"],
                                       version=current_version(db, secret))
        assert generated in {str(v) for v in stored.values()}, "the vaulted value is not the generated password"
    finally:
        db.close()
        database(app).engine.dispose()
