"""Admin user management and the setup flow it starts."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth.models import User
from govern.db import utcnow
from tests.factories import csrf_from, fresh_code, login, make_person, make_user, post

NEW_PASSWORD = "orchard lantern velvet harbour"


def _invite(client, email, full_name="", roles=("it",)):
    return post(client, "/admin/users/new", {"email": email, "full_name": full_name, "roles": list(roles)}, token_page="/admin/users/new",
                follow_redirects=True)


def _secret_from(page_html):
    match = re.search(r'<code id="setup-secret">([^<]+)</code>', page_html)
    assert match, page_html
    return match.group(1)


def _complete_setup(client, secret, *, password=NEW_PASSWORD, current_password=None):
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/setup/password")
    data = {"csrf_token": csrf_from(page.get_data(as_text=True))}
    data.update({"current_password": current_password} if current_password else {"password": password, "confirm": password})
    response = client.post("/setup/password", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get("/setup/authenticator").get_data(as_text=True)
    assert "<svg" in page
    seed = re.search(r'<code class="seed" id="totp-key">([^<]+)</code>', page).group(1).replace(" ", "")
    response = client.post("/setup/authenticator", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(seed).now()})
    assert response.status_code == 303 and response.headers["Location"] == "/account/recovery-codes"
    shown = client.get(response.headers["Location"])
    assert shown.status_code == 200 and "You are set up" in shown.get_data(as_text=True)
    codes = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", shown.get_data(as_text=True))
    return seed, codes


def test_invite_then_first_login_with_setup_secret(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    page = _invite(client, "new.person@example.com", "New Person", roles=("it", "auditor"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    secret = _secret_from(html)
    assert f"/setup#token={secret}" in html
    newcomer = app.test_client()
    seed, codes = _complete_setup(newcomer, secret)
    assert len(codes) == 10
    assert newcomer.get("/").status_code == 200
    assert newcomer.get("/audit/").status_code == 200  # auditor role
    user = db.scalar(select(User).where(User.email == "new.person@example.com"))
    assert user.has_mfa and user.roles == {"it", "auditor"}
    # The secret is single-use.
    again = app.test_client()
    page = again.get("/setup")
    response = again.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
    assert "not valid" in response.get_data(as_text=True)
    actions = db.scalars(select(AuditEvent.action)).all()
    for action in ("users.created", "auth.setup_token.issued", "auth.password.set", "auth.mfa.enrolled", "auth.login.succeeded"):
        assert action in actions
    # Nothing about the secret, the password or the seed reached the audit trail.
    trail = " ".join(e.details_json for e in db.scalars(select(AuditEvent)).all())
    assert secret not in trail and NEW_PASSWORD not in trail and seed not in trail


def _redeem(client, secret):
    page = client.get("/setup")
    return client.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})


def test_a_setup_secret_is_spent_when_redeemed_and_a_replay_cannot_replace_the_password(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    secret = _secret_from(_invite(client, "first.try@example.com", "First Try").get_data(as_text=True))
    holder = app.test_client()
    assert _redeem(holder, secret).status_code == 302
    page = holder.get("/setup/password")
    response = holder.post("/setup/password", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                   "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    # Before the authenticator is confirmed, someone else who saw the secret tries it again.
    intruder = app.test_client()
    response = _redeem(intruder, secret)
    assert response.status_code == 200
    unknown = _redeem(app.test_client(), "x" * 43)
    assert _flash_error(response) == _flash_error(unknown) and "not valid" in _flash_error(response)
    assert intruder.get("/setup/password").headers["Location"].endswith("/setup")
    response = intruder.post("/setup/password", data={"csrf_token": csrf_from(intruder.get("/setup").get_data(as_text=True)),
                                                     "password": "intruder chose this one", "confirm": "intruder chose this one"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/setup")
    user = db.scalar(select(User).where(User.email == "first.try@example.com"))
    assert kit.hashing.verify(user.password_hash, NEW_PASSWORD)
    # The session that redeemed it finishes the setup.
    page = holder.get("/setup/authenticator").get_data(as_text=True)
    seed = re.search(r'<code class="seed" id="totp-key">([^<]+)</code>', page).group(1).replace(" ", "")
    response = holder.post("/setup/authenticator", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(seed).now()})
    assert response.status_code == 303 and holder.get(response.headers["Location"]).status_code == 200
    assert holder.get("/").status_code == 200
    db.expire_all()
    assert db.get(User, user.id).has_mfa
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.action.like("auth.setup_token.%"))).all()
    assert actions.count("auth.setup_token.redeemed") == 1 and actions.count("auth.setup_token.rejected") == 2


def _flash_error(response):
    match = re.search(r'class="error"[^>]*>([^<]+)<', response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1).strip()


def test_setup_secret_expires(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    secret = _secret_from(_invite(client, "late@example.com", "Late Comer").get_data(as_text=True))
    with time_machine.travel(utcnow() + timedelta(hours=73)):
        other = app.test_client()
        page = other.get("/setup")
        response = other.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
        assert response.status_code == 200 and "not valid" in response.get_data(as_text=True)


def test_invite_an_existing_person_and_refuse_duplicates(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    person = make_person(db, email="already@example.com", full_name="Already There")
    db.commit()
    client = app.test_client()
    login(client, db, admin)
    assert _invite(client, "Already@Example.com").status_code == 200
    user = db.scalar(select(User).where(User.email == "already@example.com"))
    assert user.person_id == person.id
    response = _invite(client, "already@example.com")
    assert "already has a login" in response.get_data(as_text=True)
    response = _invite(client, "not-an-email", "Someone")
    assert "valid email" in response.get_data(as_text=True)
    response = _invite(client, "nobody@example.com", "")
    assert "full name" in response.get_data(as_text=True)


def test_admins_never_set_a_users_password(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    _invite(client, "pw@example.com", "Pass Word")
    target = db.scalar(select(User).where(User.email == "pw@example.com"))
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("users."):
            assert "password" not in rule.rule
    for path in ("/admin/users/new", f"/admin/users/{target.id}"):
        assert 'type="password"' not in client.get(path).get_data(as_text=True)
    assert target.password_hash is None  # only the person sets it, during setup


def test_mfa_reset_requires_the_users_password_to_enrol_again(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    user_client = app.test_client()
    login(user_client, db, who)
    client = app.test_client()
    login(client, db, admin)
    reset = post(client, f"/admin/users/{who.id}/reset-mfa")
    assert reset.status_code == 303 and reset.headers["Location"] == f"/admin/users/{who.id}/setup-secret"
    html = client.get(reset.headers["Location"]).get_data(as_text=True)
    assert client.get(reset.headers["Location"]).status_code == 302  # shown once
    secret = _secret_from(html)
    assert user_client.get("/").status_code == 302  # sessions ended
    db.expire_all()
    assert not db.get(User, who.id).has_mfa
    # Password-only sign-in does not let anyone enrol a new authenticator.
    attacker = app.test_client()
    page = attacker.get("/login")
    response = attacker.post("/login", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "email": who.email, "password": who.password})
    assert response.status_code == 403 or "setup secret" in response.get_data(as_text=True)
    # With the secret, the user proves the password (a wrong one is refused) and enrols.
    wrong = app.test_client()
    page = wrong.get("/setup")
    wrong.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
    page = wrong.get("/setup/password")
    assert "Confirm your password" in page.get_data(as_text=True)
    response = wrong.post("/setup/password", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "current_password": "not it at all"})
    assert "incorrect" in response.get_data(as_text=True)
    assert "not valid" in _redeem(app.test_client(), secret).get_data(as_text=True)  # spent by the first redemption
    response = wrong.post("/setup/password", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "current_password": who.password})
    assert response.status_code == 302
    page = wrong.get("/setup/authenticator").get_data(as_text=True)
    seed = re.search(r'<code class="seed" id="totp-key">([^<]+)</code>', page).group(1).replace(" ", "")
    assert wrong.post("/setup/authenticator", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(seed).now()}).status_code == 303
    assert seed != who.seed


def test_last_admin_cannot_lose_admin_or_be_deactivated(app, db, kit):
    from govern.auth.models import UserRole

    for row in db.scalars(select(UserRole).where(UserRole.role == "admin")).all():
        db.delete(row)
    db.commit()
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    response = post(client, f"/admin/users/{admin.id}/roles", {"roles": ["it"]})
    assert response.status_code == 302
    assert "last active admin" in client.get(f"/admin/users/{admin.id}").get_data(as_text=True)
    db.expire_all()
    assert "admin" in db.get(User, admin.id).roles


def test_admin_sees_and_ends_another_users_sessions(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    c1, c2 = app.test_client(), app.test_client()
    login(c1, db, who)
    login(c2, db, who)
    client = app.test_client()
    login(client, db, admin)
    html = client.get(f"/admin/users/{who.id}").get_data(as_text=True)
    ids = re.findall(rf"/admin/users/{who.id}/sessions/([0-9a-f]+)/end", html)
    assert len(ids) == 2
    post(client, f"/admin/users/{who.id}/sessions/{ids[0]}/end")
    statuses = sorted([c1.get("/").status_code, c2.get("/").status_code])
    assert statuses == [200, 302]
    post(client, f"/admin/users/{who.id}/sessions/end-all")
    assert c1.get("/").status_code == 302 and c2.get("/").status_code == 302


def test_deactivate_and_reactivate(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    client = app.test_client()
    login(client, db, admin)
    post(client, f"/admin/users/{who.id}/deactivate")
    db.expire_all()
    assert not db.get(User, who.id).is_active
    post(client, f"/admin/users/{who.id}/reactivate")
    db.expire_all()
    assert db.get(User, who.id).is_active
    who.user = db.get(User, who.id)
    login(app.test_client(), db, who)
    response = post(client, f"/admin/users/{admin.id}/deactivate")
    assert "cannot deactivate your own" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_users_list_is_paginated(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    for n in range(55):
        make_person(db, email=f"p{n}@list.example")
    for n in range(55):
        make_user(db, kit, email=f"u{n:02d}@list.example")
    client = app.test_client()
    login(client, db, admin)
    first = client.get("/admin/users/").get_data(as_text=True)
    assert "Next →" in first and first.count('href="/admin/users/') >= 50
    second = client.get("/admin/users/?page=2").get_data(as_text=True)
    assert "← Previous" in second
    assert client.get("/admin/users/?page=-5").status_code == 200
    assert fresh_code  # imported helper used elsewhere


def test_auditor_reads_users_but_changes_nothing(app, db, kit):
    auditor, who = make_user(db, kit, roles=("auditor",)), make_user(db, kit)
    client = app.test_client()
    login(client, db, auditor)
    assert client.get("/admin/users/").status_code == 200
    assert client.get(f"/admin/users/{who.id}").status_code == 200
    assert "Deactivate login" not in client.get(f"/admin/users/{who.id}").get_data(as_text=True)
    assert post(client, f"/admin/users/{who.id}/deactivate").status_code == 403


@pytest.mark.parametrize("app_overrides", [{"ORGANISATION_NAME": "Northwind Traders"}])
def test_the_setup_refuses_a_password_built_from_the_companys_name(app, db, kit, app_overrides):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    secret = _secret_from(_invite(client, "new.hire@example.org", "New Hire").get_data(as_text=True))
    newcomer = app.test_client()
    assert _redeem(newcomer, secret).status_code == 302
    page = newcomer.get("/setup/password")
    weak = "NorthWind-Traders 2026!"
    response = newcomer.post("/setup/password", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                      "password": weak, "confirm": weak})
    assert response.status_code == 200
    assert "built from your name, the company or a platform name" in response.get_data(as_text=True)
    assert db.scalar(select(User).where(User.email == "new.hire@example.org")).password_hash is None
