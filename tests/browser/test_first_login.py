"""The first admin's whole first sign-in, in a real browser against a real server process:
setup link -> password -> authenticator -> recovery codes -> home -> sign out -> sign in again."""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from tests.browser.helpers import LiveServer, assert_secure_headers, submit, watch

PASSWORD = "violet anchor moonlight 2026 ferry"
WEAK_PASSWORD = "password123"
TOTP_PERIOD = 30


def _step() -> int:
    return int(time.time() // TOTP_PERIOD)


@pytest.mark.browser
@pytest.mark.slow
def test_first_login(browser: Any, live_server: LiveServer, screenshots: Any) -> None:
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    watch(page, problems)

    # 1. The sign-in page points first-time users to setup; the setup link fills in the secret.
    response = page.goto(live_server.url("/login"))
    assert_secure_headers(response, "GET /login")
    expect(page.get_by_role("heading", name="Sign in to govern")).to_be_visible()
    expect(page.get_by_role("link", name="one-time setup secret")).to_have_attribute(
        "href", "/setup"
    )
    screenshots(page, "login")

    response = page.goto(live_server.setup_link)
    assert_secure_headers(response, "GET /setup")
    token_input = page.locator("#setup-form input[name=token]")
    expect(token_input).to_have_value(live_server.setup_secret)
    # The script moved the secret into the form and wiped it from the address bar and history.
    assert live_server.setup_secret not in page.url
    assert "token=" not in page.url
    assert page.evaluate("window.location.hash") == ""
    assert page.url == live_server.url("/setup")
    screenshots(page, "setup_secret")
    response = submit(page, "Continue")
    assert response is not None and response.ok

    # 2. Choose a password: a common one is refused with a reason, a long one is taken.
    expect(page).to_have_url(live_server.url("/setup/password"))
    expect(page.get_by_text(f"Signing in as {live_server.admin_email}")).to_be_visible()
    screenshots(page, "setup_password")
    page.get_by_label("New password", exact=True).fill(WEAK_PASSWORD)
    page.get_by_label("Repeat the new password", exact=True).fill(WEAK_PASSWORD)
    response = submit(page, "Continue")
    assert_secure_headers(response, "POST /setup/password")
    expect(page).to_have_url(live_server.url("/setup/password"))
    expect(page.locator(".field.has-error .error")).to_contain_text(
        "one of the most commonly used ones"
    )
    screenshots(page, "setup_password_weak")
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the new password", exact=True).fill(PASSWORD)
    submit(page, "Continue")

    # 3. Enrol the authenticator: an inline SVG QR code and the key to type in.
    expect(page).to_have_url(live_server.url("/setup/authenticator"))
    qr = page.locator(".qr > svg")
    expect(qr).to_have_count(1)
    expect(qr).to_be_visible()
    assert page.locator(".qr img").count() == 0
    key = page.locator("#totp-key").inner_text().replace(" ", "").strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", key), f"unexpected TOTP key {key!r}"
    screenshots(page, "setup_authenticator")
    totp = pyotp.TOTP(key)
    enrolment_step = _step()
    enrolment_code = totp.at(enrolment_step * TOTP_PERIOD)
    page.get_by_label("Code shown by your authenticator app", exact=True).fill(enrolment_code)
    response = submit(page, "Confirm and finish")
    assert_secure_headers(response, "POST /setup/authenticator")

    # 4. Ten recovery codes, shown once; then home.
    expect(
        page.get_by_role("heading", name="You are set up. Save your recovery codes")
    ).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(set(codes)) == 10, codes
    screenshots(page, "recovery_codes")
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page).to_have_url(live_server.url("/"))
    expect(page.get_by_role("heading", name=re.compile(r"^Welcome"))).to_be_visible()
    screenshots(page, "home")

    # 5. Sign out; the old session cookie must be dead on the server, not just deleted in the browser.
    saved_cookies = context.cookies()
    assert any(c["name"] == "govern_session" for c in saved_cookies), saved_cookies
    page.locator(".who-menu summary").click()  # the user's menu: their account, sign out
    submit(page, "Sign out")
    expect(page).to_have_url(live_server.url("/login"))
    expect(page.get_by_role("heading", name="Sign in to govern")).to_be_visible()
    screenshots(page, "signed_out")

    replay_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        replay_context.add_cookies(saved_cookies)
        replay_page = replay_context.new_page()
        watch(replay_page, problems)
        replay_page.goto(live_server.url("/"))
        assert replay_page.url.startswith(live_server.url("/login")), replay_page.url
        expect(replay_page.get_by_role("heading", name="Sign in to govern")).to_be_visible()
        screenshots(replay_page, "old_cookie_refused")
    finally:
        replay_context.close()

    # 6. Sign in again: password, then a TOTP code from a step after the enrolment one.
    page.get_by_label("Email", exact=True).fill(live_server.admin_email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    submit(page, "Continue")
    expect(page).to_have_url(live_server.url("/login/code"))
    screenshots(page, "login_code")
    page.get_by_label("Code from your authenticator app", exact=True).fill(enrolment_code)
    submit(page, "Sign in")
    expect(page).to_have_url(live_server.url("/login/code"))
    expect(page.locator(".field.has-error .error")).to_contain_text("That code is not valid")
    screenshots(page, "login_code_replay_refused")

    deadline = time.monotonic() + TOTP_PERIOD + 1
    while _step() <= enrolment_step:
        assert time.monotonic() < deadline, "the TOTP step did not advance"
        time.sleep(0.25)
    page.get_by_label("Code from your authenticator app", exact=True).fill(totp.now())
    response = submit(page, "Sign in")
    assert_secure_headers(response, "GET / after sign-in")
    expect(page).to_have_url(live_server.url("/"))
    expect(page.get_by_role("heading", name=re.compile(r"^Welcome"))).to_be_visible()
    screenshots(page, "signed_in_again")

    context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
