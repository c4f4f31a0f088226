"""Login, logout, sessions and step-up through the real pages."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.auth.models import WebSession
from govern.crypto import totp
from govern.db import utcnow
from tests.factories import csrf_from, csrf_token, fresh_code, login, make_user, post, session_cookie
from tests.support import TEST_SECRET_KEY


def _password_step(client, email, password, ip="10.1.1.1"):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_full_login_reaches_home(client, db, kit):
    who = make_user(db, kit)
    login(client, db, who)
    assert "Welcome" in client.get("/").get_data(as_text=True)
    assert "auth.login.succeeded" in db.scalars(select(AuditEvent.action)).all()


def test_password_alone_reaches_nothing(client, db, kit):
    who = make_user(db, kit, roles=("admin",))
    assert _password_step(client, who.email, who.password).status_code == 302
    for path in ("/", "/account", "/admin/users/", "/audit/"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_login_next_is_kept_and_only_local(client, db, kit):
    who = make_user(db, kit, roles=("auditor",))
    response = login(client, db, who, next_path="/audit/")
    assert response.headers["Location"].endswith("/audit/")
    client2 = client.application.test_client()
    response = login(client2, db, who, next_path="https://evil.example/")
    assert response.headers["Location"] == "/"


def test_responses_do_not_reveal_whether_an_email_exists(client, db, kit, app):
    who = make_user(db, kit)
    unknown = _password_step(app.test_client(), "nobody@example.com", "some password here", ip="10.9.0.1")
    wrong = _password_step(app.test_client(), who.email, "wrong password here!", ip="10.9.0.2")
    assert unknown.status_code == wrong.status_code == 200

    def body(response):
        text = response.get_data(as_text=True)
        import re

        return re.sub(r'value="[^"]*"', "", text)

    assert body(unknown) == body(wrong).replace(who.email, "nobody@example.com")
    assert "The email or password is incorrect." in body(wrong)


def test_unknown_email_still_costs_a_password_verification(client, db, kit, monkeypatch):
    calls = []
    original = kit.hashing.verify
    monkeypatch.setattr(kit.hashing, "verify", lambda h, p: calls.append(h) or original(h, p))
    _password_step(client, "nobody@example.com", "whatever password 1")
    assert len(calls) == 1  # the dummy hash was verified


def test_new_session_id_after_second_factor_and_old_one_refused(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    csrf_token(client, "/login")
    before = session_cookie(client)
    _password_step(client, who.email, who.password)
    pending = session_cookie(client)
    assert pending and pending != before
    page = client.get("/login/code")
    client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": fresh_code(db, who)})
    after = session_cookie(client)
    assert after and after != pending
    replay = app.test_client()
    replay.set_cookie("govern_session", pending)
    assert replay.get("/").status_code == 302


def test_a_cookie_captured_before_logout_is_refused_afterwards(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    captured = session_cookie(client)
    response = post(client, "/logout")
    assert response.status_code == 302
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    thief = app.test_client()
    thief.set_cookie("govern_session", captured)
    assert thief.get("/").status_code == 302
    assert thief.get("/account").headers["Location"].startswith("/login")


def test_logout_needs_post_and_csrf(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200


def test_role_change_ends_the_users_sessions(app, db, kit):
    admin, target = make_user(db, kit, roles=("admin",)), make_user(db, kit, roles=("auditor",))
    admin_client, target_client = app.test_client(), app.test_client()
    login(admin_client, db, admin)
    login(target_client, db, target)
    assert target_client.get("/audit/").status_code == 200
    response = post(admin_client, f"/admin/users/{target.id}/roles", {"roles": ["it"]})
    assert response.status_code == 302
    assert target_client.get("/audit/").status_code == 302  # signed out, not merely 403
    assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == target.id)) == 0


def test_deactivation_ends_every_session_of_the_user(app, db, kit):
    admin, target = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    admin_client, c1, c2 = app.test_client(), app.test_client(), app.test_client()
    login(admin_client, db, admin)
    login(c1, db, target)
    login(c2, db, target)
    post(admin_client, f"/admin/users/{target.id}/deactivate")
    assert c1.get("/").status_code == 302 and c2.get("/").status_code == 302
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.sessions.ended")).all()[-1]
    assert '"count":2' in event.details_json and '"reason":"deactivated"' in event.details_json
    assert _password_step(app.test_client(), target.email, target.password).status_code == 200  # refused


def test_password_change_needs_current_password_and_fresh_code_and_ends_other_sessions(app, db, kit):
    who = make_user(db, kit)
    c1, c2 = app.test_client(), app.test_client()
    login(c1, db, who)
    login(c2, db, who)
    new_password = "ferry lantern orchard quietly"
    bad = post(c1, "/account/password", {"current_password": "wrong", "code": fresh_code(db, who),
                                          "new_password": new_password, "confirm": new_password})
    assert "current password is incorrect" in bad.get_data(as_text=True)
    bad_code = post(c1, "/account/password", {"current_password": who.password, "code": "000000",
                                               "new_password": new_password, "confirm": new_password})
    assert "not valid" in bad_code.get_data(as_text=True)
    ok = post(c1, "/account/password", {"current_password": who.password, "code": fresh_code(db, who),
                                         "new_password": new_password, "confirm": new_password})
    assert ok.status_code == 302
    assert c1.get("/").status_code == 200
    assert c2.get("/").status_code == 302
    who.password = new_password
    login(app.test_client(), db, who)


def test_weak_new_password_is_refused_with_the_reason(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    code = fresh_code(db, who)
    response = post(client, "/account/password", {"current_password": who.password, "code": code,
                                                   "new_password": "password123", "confirm": "password123"})
    assert response.status_code == 200
    assert "At least 15 characters" in response.get_data(as_text=True) or "15 characters" in response.get_data(as_text=True)
    # The refused password did not use up the code: the user fixes the password and keeps the code.
    better = "ferry lantern orchard quietly"
    response = post(client, "/account/password", {"current_password": who.password, "code": code,
                                                   "new_password": better, "confirm": better})
    assert response.status_code == 302


def test_idle_timeout_ends_the_session(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        response = client.get("/")
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_activity_keeps_the_session_until_the_absolute_limit(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    start = utcnow()
    login(client, db, who)
    for minutes in range(25, 12 * 60, 25):
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert client.get("/").status_code == 200, minutes
    with time_machine.travel(start + timedelta(hours=12, minutes=1)):
        assert client.get("/").status_code == 302


@pytest.mark.parametrize("jump", [timedelta(minutes=-5), timedelta(hours=-2)])
def test_a_clock_jump_back_does_not_make_a_session_immortal(app, db, kit, jump):
    """R15: the server clock steps back (NTP); idle and absolute limits still end the session."""
    who = make_user(db, kit)
    idle_client, busy_client = app.test_client(), app.test_client()
    start = utcnow()
    login(idle_client, db, who)
    login(busy_client, db, who)
    with time_machine.travel(start + jump):
        assert idle_client.get("/").status_code == 200
        assert busy_client.get("/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=31)):
        assert idle_client.get("/").status_code == 302  # idle counts from the last real activity
    for minutes in range(25, 12 * 60, 25):
        with time_machine.travel(start + jump + timedelta(minutes=minutes)):
            busy_client.get("/")
    with time_machine.travel(start + timedelta(hours=12, minutes=1)):
        assert busy_client.get("/").status_code == 302  # the absolute limit counts from sign-in


def test_cookie_flags_over_http(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie and "Expires" not in cookie and "Max-Age" not in cookie
    token = csrf_from(response.get_data(as_text=True))
    response = client.post("/login", data={"csrf_token": token, "email": who.email, "password": who.password})
    assert "remember_token" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_cookie_is_secure_with_host_prefix_over_https(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    response = client.get("/login", base_url="https://govern.example")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-govern_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    token = csrf_from(response.get_data(as_text=True))
    data = {"csrf_token": token, "email": who.email, "password": who.password}
    # Over HTTPS the CSRF check also wants a same-site Referer, which Referrer-Policy: same-origin keeps.
    assert client.post("/login", base_url="https://govern.example", data=data).status_code == 400
    response = client.post("/login", base_url="https://govern.example", data=data,
                           headers={"Referer": "https://govern.example/login"})
    assert response.status_code == 302
    renewed = response.headers["Set-Cookie"]
    assert renewed.startswith("__Host-govern_session=") and "Secure" in renewed
    assert client.get("/login", base_url="http://govern.example").headers.get("Set-Cookie", "").find("__Host-") == -1


def test_users_see_and_end_their_own_sessions(app, db, kit):
    who = make_user(db, kit)
    c1, c2 = app.test_client(), app.test_client()
    login(c1, db, who)
    login(c2, db, who)
    page = c1.get("/account").get_data(as_text=True)
    assert page.count("this session") == 1
    other = db.scalars(select(WebSession).where(WebSession.user_id == who.id)).all()
    assert len(other) == 2
    c2_digest = {s.public_id for s in other}
    import re

    ids = set(re.findall(r"/account/sessions/([0-9a-f]+)/end", page))
    assert len(ids) == 1 and ids <= c2_digest
    post(c1, f"/account/sessions/{ids.pop()}/end")
    assert c2.get("/").status_code == 302
    assert c1.get("/").status_code == 200


def test_step_up_is_required_for_sensitive_actions_after_five_minutes(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    with time_machine.travel(utcnow() + timedelta(minutes=6)):
        response = client.get("/admin/users/new")
        assert response.status_code == 302 and "/reauth" in response.headers["Location"]
        response = post(client, f"/admin/users/{admin.id}/roles", {"roles": ["admin", "it"]}, token_page="/account")
        assert response.status_code == 401
        page = client.get("/reauth?next=/admin/users/new")
        response = client.post("/reauth", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                 "code": fresh_code(db, admin), "next": "/admin/users/new"})
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/users/new")
        assert client.get("/admin/users/new").status_code == 200


def test_recovery_code_login_ends_other_sessions(app, db, kit):
    from govern.auth import credentials

    who = make_user(db, kit)
    with app.test_request_context():
        codes = credentials.regenerate_recovery_codes(db, kit, user=who.user)
    db.commit()
    other = app.test_client()
    login(other, db, who)
    client = app.test_client()
    _password_step(client, who.email, who.password)
    page = client.get("/login/code")
    response = client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": codes[0]})
    assert response.status_code == 302
    assert "recovery code" in client.get("/").get_data(as_text=True)
    assert other.get("/").status_code == 302


def test_a_user_without_mfa_cannot_sign_in_with_a_password(app, db, kit):
    who = make_user(db, kit, with_mfa=False)
    response = _password_step(app.test_client(), who.email, who.password)
    assert response.status_code == 200
    assert "setup secret" in response.get_data(as_text=True)


@pytest.mark.parametrize("code", ["", "abc", "1" * 200, "１２３４５６", "\x00\x01", "' OR '1'='1"])
def test_garbage_codes_get_a_message_not_an_error(app, db, kit, code):
    who = make_user(db, kit)
    client = app.test_client()
    _password_step(client, who.email, who.password)
    page = client.get("/login/code")
    response = client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": code})
    assert response.status_code in (200, 400)


def test_totp_seed_and_qr_are_not_shown_after_enrolment(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    response = client.get("/setup/authenticator")
    assert response.status_code == 302  # no enrolment in progress: back to the setup start
    for path in ("/", "/account"):
        assert who.seed not in client.get(path).get_data(as_text=True)


def test_code_step_without_password_step_goes_back_to_login(app):
    response = app.test_client().get("/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_pending_password_step_expires(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    _password_step(client, who.email, who.password)
    with time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert client.get("/login/code").status_code == 302


def test_totp_code_at_step_boundary_is_accepted(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    _password_step(client, who.email, who.password)
    page = client.get("/login/code")
    code = fresh_code(db, who)
    response = client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": f" {code[:3]} {code[3:]} "})
    assert response.status_code == 302
    assert totp.DIGITS == 6


def test_a_forged_remember_me_cookie_is_ignored(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    digest = hmac.new(TEST_SECRET_KEY.encode(), str(admin.id).encode(), hashlib.sha512).hexdigest()
    client = app.test_client()
    client.set_cookie("remember_token", f"{admin.id}|{digest}")
    response = client.get("/admin/users/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_huge_numbers_in_urls_are_404_not_500(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    assert client.get("/admin/users/99999999999999999999").status_code == 404
    assert client.get("/admin/users/?page=99999999999999999999").status_code == 200
    assert client.get("/accounts/?page=99999999999999999999").status_code == 200


def test_audit_export_needs_a_fresh_second_factor(app, db, kit):
    auditor = make_user(db, kit, roles=("auditor",))
    client = app.test_client()
    login(client, db, auditor)
    with time_machine.travel(utcnow() + timedelta(minutes=20)):
        client.get("/")  # keep the session alive
        response = post(client, "/audit/export", {}, token_page="/audit/")
        assert response.status_code == 401
