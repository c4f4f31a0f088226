"""What the browser tests share: the live server's shape and environment, signing in, submitting and watching pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from playwright.sync_api import Page, Response, expect

from govern.app import create_app
from govern.db import database
from tests.factories import DEFAULT_PASSWORD, accept_policy, make_account, make_grant, make_user, publish_policy
from tests.support import TEST_AUDIT_KEYS, app_config

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: The first admin's password, chosen on the setup pages (set_up_admin).
SETUP_PASSWORD = "violet anchor moonlight 2026 ferry"
#: The password of the demo users seed_and_enrol enrols.
DEMO_PASSWORD = "juniper lantern harbour 2026 quill"


# --- the server -----------------------------------------------------------------------------------


@dataclass
class LiveServer:
    base_url: str
    admin_email: str
    setup_secret: str
    setup_link: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: The server's environment, for commands run against the same instance (`govern demo seed`).
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def read_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace") or "(empty)"
        except OSError as exc:
            return f"(no server log: {exc})"


def server_env(tmp_path: Path, database_url: str, base_url: str) -> dict[str, str]:
    """The caller's environment without any GOVERN_*/FLASK_* setting, plus the server's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVERN_", "FLASK_"))}
    env.update(
        {
            "GOVERN_INSTANCE_PATH": str(tmp_path / "instance"),
            "GOVERN_DATABASE_URL": database_url,
            "GOVERN_BASE_URL": base_url,
            # The cheapest argon2id parameters the configuration accepts (ASVS floor).
            "GOVERN_ARGON2_TIME_COST": "2",
            "GOVERN_ARGON2_MEMORY_KIB": "19456",
            "PYTHONUNBUFFERED": "1",
            # The audit keys of the test apps, so that rows seeded through server_app chain alike.
            "GOVERN_AUDIT_KEYS": TEST_AUDIT_KEYS,
        }
    )
    return env



def server_app(tmp_path: Path, database_url: str) -> Flask:
    """An app on the live server's instance and database, with the server's own secret key: to seed
    rows the server can read, or to read what it wrote."""
    instance = tmp_path / "instance"
    secret_key = (instance / "secret_key").read_text(encoding="utf-8").strip()
    return create_app(app_config(instance, database_url, SECRET_KEY=secret_key))


# --- pages ----------------------------------------------------------------------------------------


def submit(page: Page, button_name: str) -> Response | None:
    """Click a submit button and wait for the page the form leads to."""
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button_name).click()
    return navigation.value


def click_through(page: Page, locator: Any) -> None:
    """Click ``locator`` and wait for the page it leads to."""
    with page.expect_navigation():
        locator.click()


def watch(page: Page, problems: list[str]) -> None:
    """Collect console errors (CSP violations included), uncaught script errors and failed requests."""
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text} ({page.url})")
            if msg.type == "error"
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc} ({page.url})"))
    # A sub-resource the browser dropped because the page moved on (net::ERR_ABORTED) is no fault.
    page.on(
        "requestfailed",
        lambda req: (
            problems.append(f"request failed: {req.url}: {req.failure}")
            if "ERR_ABORTED" not in (req.failure or "")
            else None
        ),
    )


def assert_secure_headers(response: Response | None, what: str) -> None:
    assert response is not None, f"no response for {what}"
    headers = response.headers  # Playwright lower-cases the names
    assert "script-src 'self'" in headers.get("content-security-policy", ""), (
        f"{what}: no CSP: {headers}"
    )
    assert "no-store" in headers.get("cache-control", ""), (
        f"{what}: no Cache-Control: no-store: {headers}"
    )



# --- signing in -----------------------------------------------------------------------------------


def set_up_admin(page: Page, live_server: LiveServer) -> None:
    """The first admin, through the setup link: a password, an authenticator, the recovery codes."""
    page.goto(live_server.setup_link)
    submit(page, "Continue")
    page.get_by_label("New password", exact=True).fill(SETUP_PASSWORD)
    page.get_by_label("Repeat the new password", exact=True).fill(SETUP_PASSWORD)
    submit(page, "Continue")
    key = page.locator("#totp-key").inner_text().replace(" ", "").strip()
    page.get_by_label("Code shown by your authenticator app", exact=True).fill(pyotp.TOTP(key).now())
    submit(page, "Confirm and finish")
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page).to_have_url(live_server.url("/"))


def sign_in_as(browser: Any, server: LiveServer, who: Any) -> Page:
    """A new browser context signed in as ``who`` (a TestUser with the default password)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url("/login"))
    page.fill("#email", who.email)
    page.fill("#password", DEFAULT_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    page.fill("#code", pyotp.TOTP(who.seed).now())
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()
    return page


def sign_in_at_step(page: Page, server: LiveServer, email: str, password: str, seed: str) -> int:
    """Sign in on ``page``; returns the TOTP step whose code was used."""
    page.goto(server.url("/login"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    submit(page, "Continue")
    step = int(time.time() // 30)
    page.get_by_label("Code from your authenticator app", exact=True).fill(pyotp.TOTP(seed).at(step * 30))
    submit(page, "Sign in")
    expect(page).to_have_url(server.url("/"))
    return step


def signed_in_page(browser: Any, server: LiveServer, who: Any, problems: list[str]) -> tuple[Page, int]:
    """A new watched browser context signed in as ``who`` (a TestUser); returns the page and the TOTP step used."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch(page, problems)
    return page, sign_in_at_step(page, server, who.email, who.password, who.seed)


def sign_in_demo(browser: Any, server: LiveServer, email: str, seed: str, problems: list[str],
             viewport: dict[str, int] | None = None) -> Page:
    """A new browser context signed in as an enrolled demo user (see seed_and_enrol), watched for problems."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
    page = context.new_page()
    watch(page, problems)
    page.goto(server.url("/login"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    submit(page, "Continue")
    page.get_by_label("Code from your authenticator app", exact=True).fill(pyotp.TOTP(seed).now())
    submit(page, "Sign in")
    expect(page).to_have_url(server.url("/"))
    return page



# --- seeding --------------------------------------------------------------------------------------


def seed_vault_people(tmp_path: Path, url: str) -> Any:
    """IT and a publisher (with grant and accepted policy) written straight into the server's database."""
    app = server_app(tmp_path, url)
    kit = app.extensions["govern.auth"]
    db = database(app).sessionmaker()
    try:
        it = make_user(db, kit, roles=("it",), email="ivy.it@acme.example", full_name="Ivy IT")
        publisher = make_user(db, kit, email="paul.publisher@acme.example", full_name="Paul Publisher")
        account = make_account(db, handle="acme", display_name="Acme on Instagram", url="https://www.instagram.com/acme")
        accept_policy(db, publisher.user.person, publish_policy(db, "standard"))
        make_grant(db, publisher.user.person, account, "publisher", reason="Launch campaign")
        db.commit()
        return it, publisher, account.id
    finally:
        db.close()
        database(app).engine.dispose()


def seed_and_enrol(server: LiveServer, emails: list[str]) -> dict[str, str]:
    """`govern demo seed`, then logins with known passwords and authenticator seeds."""
    seeded = subprocess.run([str(VENV_BIN / "govern"), "demo", "seed"], cwd=server.log_path.parent, env=server.env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert seeded.returncode == 0, f"`govern demo seed` failed:\n{seeded.stdout}\n{seeded.stderr}"
    enrolled = subprocess.run([sys.executable, "-m", "tests.browser.enrol", DEMO_PASSWORD, *emails], cwd=REPO_ROOT,
                              env=server.env, capture_output=True, text=True, timeout=180, check=False)
    assert enrolled.returncode == 0, f"enrolment failed:\n{enrolled.stdout}\n{enrolled.stderr}"
    seeds: dict[str, str] = json.loads(enrolled.stdout.strip().splitlines()[-1])
    return seeds
