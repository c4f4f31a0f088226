"""The vault in a real browser against a real server: IT vaults a password and a TOTP seed for an
account; a publisher (active publisher grant, accepted policy) is asked for a fresh second factor,
then sees the live 2FA code (never the seed), which hides itself; screenshots along the way."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from govern.auth.models import User, WebSession
from govern.db import database, utcnow
from govern.vault.models import Exposure
from tests.browser.helpers import (
    LiveServer,
    assert_secure_headers,
    seed_vault_people,
    server_app,
    signed_in_page,
    submit,
)

SITE_PASSWORD = "Browser-Canary-Pw-6d2e"
SITE_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def _wait_for_step_after(step: int) -> None:
    deadline = time.monotonic() + 32
    while int(time.time() // 30) <= step:
        assert time.monotonic() < deadline
        time.sleep(0.25)


@pytest.mark.browser
@pytest.mark.slow
def test_it_vaults_and_a_publisher_sees_the_live_code(browser: Any, live_server: LiveServer, screenshots: Any,
                                                      tmp_path: Path, scratch_database_url: str) -> None:
    it, publisher, account_id = seed_vault_people(tmp_path, scratch_database_url)
    problems: list[str] = []

    # 1. IT vaults the password and the TOTP seed of @acme.
    page, _ = signed_in_page(browser, live_server, it, problems)
    page.goto(live_server.url(f"/accounts/{account_id}"))
    expect(page.get_by_role("heading", name=re.compile("^Secrets"))).to_be_visible()
    page.get_by_role("link", name="Add secret").click()
    page.get_by_label("Kind").select_option("password")
    page.get_by_label("Name", exact=True).fill("Instagram login")
    page.get_by_label("Value", exact=True).fill(SITE_PASSWORD)
    page.get_by_label("Login name or email (optional)").fill("social@acme.example")
    screenshots(page, "it_add_password")
    submit(page, "Encrypt and store")
    expect(page.get_by_role("heading", name=re.compile("^Instagram login"))).to_be_visible()
    assert SITE_PASSWORD not in page.content()
    page.goto(live_server.url(f"/vault/accounts/{account_id}/new"))
    page.get_by_label("Kind").select_option("totp")
    page.get_by_label("Name", exact=True).fill("Instagram 2FA")
    page.get_by_label("Value", exact=True).fill(f"otpauth://totp/Instagram:acme?secret={SITE_SEED}&issuer=Instagram")
    submit(page, "Encrypt and store")
    expect(page.get_by_role("heading", name=re.compile("^Instagram 2FA"))).to_be_visible()
    screenshots(page, "it_secret_page")
    page.goto(live_server.url(f"/accounts/{account_id}"))
    expect(page.locator("#secrets")).to_contain_text("Instagram 2FA")
    page.locator("#secrets").scroll_into_view_if_needed()
    screenshots(page, "it_account_secrets")
    content = page.content()
    assert SITE_PASSWORD not in content and SITE_SEED not in content
    page.context.close()

    # 2. The publisher signs in; five minutes later (simulated) the reveal asks for a fresh code.
    page, login_step = signed_in_page(browser, live_server, publisher, problems)
    engine_app = server_app(tmp_path, scratch_database_url)
    db = database(engine_app).sessionmaker()
    user_id = db.scalar(select(User.id).where(User.email == publisher.email))
    db.execute(update(WebSession).where(WebSession.user_id == user_id).values(mfa_verified_at=utcnow().replace(year=2020)))
    db.commit()

    page.goto(live_server.url("/vault/"))
    expect(page.get_by_role("heading", name="Credentials you may use")).to_be_visible()
    screenshots(page, "publisher_credentials")
    page.get_by_role("row", name=re.compile("Instagram 2FA")).get_by_role("link", name="Show code").click()
    expect(page).to_have_url(re.compile(r"/reauth\?next="))
    expect(page.get_by_role("heading", name="Confirm with your authenticator")).to_be_visible()
    screenshots(page, "publisher_step_up")
    _wait_for_step_after(login_step)  # a code is accepted only once
    page.get_by_label(re.compile("code", re.I)).fill(pyotp.TOTP(publisher.seed).now())
    submit(page, "Confirm")
    expect(page.get_by_role("heading", name=re.compile("Show the live 2FA code"))).to_be_visible()
    page.get_by_label("Why do you need it?").fill("Sign in on the campaign phone")
    screenshots(page, "publisher_reason")
    page.clock.install()
    response = submit(page, "Show code")
    assert_secure_headers(response, "POST reveal")
    code = page.locator("[data-totp]")
    expect(code).to_be_visible()
    shown = code.inner_text().strip()
    live = pyotp.TOTP(SITE_SEED)
    assert shown in {live.at(time.time() + d) for d in (-30, 0, 30)}, shown
    assert SITE_SEED not in page.content() and SITE_PASSWORD not in page.content()
    screenshots(page, "publisher_live_code")
    # The code counts down, and the page hides it again by itself.
    page.clock.fast_forward(61_000)
    expect(page.locator("[data-reveal]")).to_be_hidden()
    expect(page.get_by_text("Hidden again.")).to_be_visible()
    assert shown not in page.locator("main").inner_text()
    screenshots(page, "publisher_code_hidden")

    # 3. The password: shown with a copy button, gone again after 30 seconds.
    page.goto(live_server.url("/vault/"))
    page.get_by_role("row", name=re.compile("Instagram login")).get_by_role("link", name="Reveal").click()
    page.get_by_label("Why do you need it?").fill("Post the launch video")
    submit(page, "Reveal")
    expect(page.locator("#secret-value")).to_have_text(SITE_PASSWORD)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    screenshots(page, "publisher_password")
    page.clock.fast_forward(29_000)
    expect(page.locator("#secret-value")).to_be_visible()
    page.clock.fast_forward(2_000)
    expect(page.locator("[data-reveal]")).to_be_hidden()
    assert SITE_PASSWORD not in page.content()

    seen = {(e.kind, e.reason) for e in db.scalars(select(Exposure).where(Exposure.user_id == user_id))}
    assert seen == {("totp_code", "Sign in on the campaign phone"), ("value", "Post the launch video")}
    db.close()
    database(engine_app).engine.dispose()
    page.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
