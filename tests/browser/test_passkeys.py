"""Passkeys in Debian's Chromium with the DevTools virtual authenticator (a platform authenticator with
user verification): register one, sign out, sign in with password + passkey, step up with it and reveal a
credential, see it refused on another origin, remove it; screenshots at desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from govern.audit.models import AuditEvent
from govern.auth.models import Passkey, WebSession
from govern.crypto.keyring import Keyring
from govern.db import database, utcnow
from govern.vault.models import Exposure
from govern.vault.versions import create_secret
from tests.browser.helpers import LiveServer, server_app, sign_in_at_step, submit, watch
from tests.factories import DEFAULT_PASSWORD, accept_policy, make_account, make_grant, make_user, publish_policy

SITE_PASSWORD = "Passkey-Reveal-Canary-81f"


def _seed(tmp_path: Path, url: str) -> SimpleNamespace:
    app = server_app(tmp_path, url)
    kit = app.extensions["govern.auth"]
    with app.app_context():
        db = database(app).sessionmaker()
        try:
            it = make_user(db, kit, roles=("it",), email="ivy.it@acme.example", full_name="Ivy IT")
            publisher = make_user(db, kit, email="paula.passkey@acme.example", full_name="Paula Passkey")
            account = make_account(db, handle="acme", display_name="Acme on Instagram")
            accept_policy(db, publisher.user.person, publish_policy(db, "standard"))
            make_grant(db, publisher.user.person, account, "publisher", reason="Launch")
            db.commit()
            ring = Keyring.load(tmp_path / "instance" / "vault.key")
            secret = create_secret(db, actor=it.user, keyring=ring, account=account, kind="password",
                                   label="Instagram login", value=SITE_PASSWORD)
            db.commit()
            return SimpleNamespace(app=app, publisher=publisher, secret_id=secret.id)
        finally:
            db.close()


def _virtual_authenticator(page: Any) -> Any:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def _password_step(page: Any, server: LiveServer, email: str) -> None:
    page.goto(server.url("/login"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    submit(page, "Continue")
    expect(page).to_have_url(re.compile(r"/login/code$"))


@pytest.mark.browser
@pytest.mark.slow
def test_passkey_sign_in_step_up_reveal_and_removal(browser: Any, localhost_server: LiveServer, screenshots: Any,
                                                    tmp_path: Path, scratch_database_url: str) -> None:
    server = localhost_server
    seed = _seed(tmp_path, scratch_database_url)
    who = seed.publisher
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch(page, problems)
    cdp, authenticator = _virtual_authenticator(page)

    # 1. Signed in with TOTP, Paula registers a passkey (her second factor is fresh).
    sign_in_at_step(page, server, who.email, who.password, who.seed)
    page.goto(server.url("/account/passkeys/"))
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()
    page.get_by_role("link", name="Add a passkey").click()
    page.get_by_label("Name of this passkey").fill("Work laptop")
    screenshots(page, "add_passkey")
    with page.expect_navigation():
        page.get_by_role("button", name="Create the passkey").click()
    expect(page.get_by_text("Passkey “Work laptop” registered")).to_be_visible()
    expect(page.get_by_role("cell", name="Work laptop")).to_be_visible()
    screenshots(page, "passkeys_desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshots(page, "passkeys_phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["rpId"] == "localhost"

    # 2. Sign out; sign in with the password and the passkey.
    page.locator("details.who-menu summary").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    _password_step(page, server, who.email)
    screenshots(page, "second_factor_choice")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(server.url("/"))

    # 3. Later (the step-up has gone stale), a reveal asks for the passkey again.
    db = database(seed.app).sessionmaker()
    db.execute(update(WebSession).where(WebSession.user_id == who.id).values(mfa_verified_at=utcnow().replace(year=2020)))
    db.commit()
    page.goto(server.url(f"/vault/secrets/{seed.secret_id}/reveal"))
    expect(page).to_have_url(re.compile(r"/reauth\?next="))
    expect(page.get_by_role("button", name="Confirm with a passkey")).to_be_visible()
    screenshots(page, "step_up")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm with a passkey").click()
    page.get_by_label("Why do you need it?").fill("Post the launch video")
    submit(page, "Reveal")
    expect(page.locator("#secret-value")).to_have_text(SITE_PASSWORD)

    # 4. On another origin (127.0.0.1 rather than localhost) the browser will not use the passkey.
    other = context.new_page()
    watch(other, problems)
    other_cdp = other.context.new_cdp_session(other)
    other_cdp.send("WebAuthn.enable")
    other_authenticator = other_cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]
    other_cdp.send("WebAuthn.addCredential", {"authenticatorId": other_authenticator, "credential": {
        **{k: credentials[0][k] for k in ("credentialId", "isResidentCredential", "privateKey", "signCount")},
        "rpId": "localhost", "userHandle": credentials[0].get("userHandle", "")}})
    elsewhere = server.url("/login").replace("localhost", "127.0.0.1")
    other.goto(elsewhere)
    other.get_by_label("Email", exact=True).fill(who.email)
    other.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    submit(other, "Continue")
    other.get_by_role("button", name="Sign in with a passkey").click()
    expect(other.locator("[data-passkey-status]")).to_contain_text(re.compile("not on govern's own address|did not work"))
    expect(other).to_have_url(re.compile(r"/login/code$"))
    screenshots(other, "other_origin_refused")
    other.close()

    # 5. Remove it (the step-up of a moment ago still counts).
    page.goto(server.url("/account/passkeys/"))
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Passkey removed.")).to_be_visible()
    expect(page.get_by_text("You have no passkey yet.")).to_be_visible()

    actions = [a for a in db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)) if a.startswith("auth.passkey")]
    assert actions == ["auth.passkey.registered", "auth.passkey.used", "auth.passkey.used", "auth.passkey.removed"]
    assert db.scalars(select(Passkey)).all() == []
    exposure = db.scalars(select(Exposure).where(Exposure.user_id == who.id)).one()
    assert exposure.reason == "Post the launch video"
    db.close()
    database(seed.app).engine.dispose()
    context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
