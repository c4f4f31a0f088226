"""Single sign-on in a real browser, the way the README tells an admin to set it up.

`govern init` makes an admin with no password yet; the admin adds the test OpenID provider with
`govern sso add-provider`, and signs in by clicking "Sign in with Test IdP" and typing their login
on the provider's page. Then logout ends the session at govern and at the provider.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.browser.helpers import VENV_BIN, LiveServer
from tests.sso.idp import start_provider, stop_provider

SECRET_ENV = "IDP_TEST_CLIENT_SECRET"  # noqa: S105 - a variable's name
SECRET = "browser-test-client-secret"  # noqa: S105 - the test provider's client


@pytest.fixture
def idp_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client secret in the environment the live server starts with (before live_server)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)


def test_sso_sign_in_and_out(idp_secret: None, browser: Any, live_server: LiveServer, screenshots: Any) -> None:
    clients = [{"client_id": "govern", "client_secret": SECRET, "require_auth_time": True,
                "redirect_uris": [live_server.url("/login/sso/test/callback")],
                "post_logout_redirect_uris": [live_server.url("/login")]}]
    accounts = {"admin": {"email": live_server.admin_email, "email_verified": True, "groups": ["it"], "amr": ["pwd", "mfa"]}}
    provider, process = start_provider(clients, accounts)
    try:
        added = subprocess.run([str(VENV_BIN / "govern"), "sso", "add-provider", "test", "--name", "Test IdP",
                                "--issuer", provider.issuer, "--client-id", "govern", "--secret-env", SECRET_ENV],
                               env=live_server.env, capture_output=True, text=True, timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        assert live_server.url("/login/sso/test/callback") in added.stdout
        for width, height in ((1280, 800), (390, 844)):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.goto(live_server.url("/login"))
            screenshots(page, f"login_{width}")
            context.close()
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(live_server.url("/login"))
        page.get_by_role("link", name="Sign in with Test IdP").click()
        page.wait_for_url(provider.issuer + "/interaction/**")
        page.fill("input[name=login]", "admin")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(live_server.url("/"))
        screenshots(page, "signed_in")
        page.locator(".who-menu summary").click()  # the account menu
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(live_server.url("/logout/sso/test"))
        screenshots(page, "signed_out")
        page.get_by_role("link", name="Sign out of Test IdP too").click()
        page.wait_for_url(live_server.url("/login"))  # the provider ended its session and sent the browser back
        page.goto(live_server.url("/"))
        assert "/login" in page.url  # govern's session is gone
        # The provider's session is gone too: signing in again asks for the login there.
        page.get_by_role("link", name="Sign in with Test IdP").click()
        page.wait_for_url(provider.issuer + "/interaction/**")
        assert page.locator("input[name=login]").count() == 1
        context.close()
    finally:
        stop_provider(process)
