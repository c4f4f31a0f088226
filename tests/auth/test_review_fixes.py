"""Regression tests for the security review of the foundation."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.auth import services
from govern.auth.models import LoginThrottle, User, WebSession
from govern.auth.throttle import DatabaseThrottleStore, ThrottlePolicy, account_key
from govern.crypto.secretbox import SecretBox, derive_key
from govern.db import utcnow
from tests.factories import csrf_from, csrf_token, fresh_code, login, make_user, post
from tests.support import TEST_SECRET_KEY


def test_a_forged_remember_me_cookie_is_ignored(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    digest = hmac.new(TEST_SECRET_KEY.encode(), str(admin.id).encode(), hashlib.sha512).hexdigest()
    client = app.test_client()
    client.set_cookie("remember_token", f"{admin.id}|{digest}")
    response = client.get("/admin/users/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_session_that_only_passed_the_password_identifies_no_one(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"csrf_token": token, "email": who.email, "password": who.password})
    row = db.scalars(select(WebSession).order_by(WebSession.created_at.desc())).first()
    row.user_id = who.id  # even if the row named the user, it never completed the second factor
    db.commit()
    assert client.get("/").status_code == 302


def test_the_mfa_reset_password_check_honours_the_lockout(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    with app.test_request_context():
        secret = services.reset_mfa(db, kit, actor=admin.user, user=who.user)
    db.commit()
    client = app.test_client()
    page = client.get("/setup")
    client.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
    page = client.get("/setup/password")
    token = csrf_from(page.get_data(as_text=True))
    for _ in range(5):
        client.post("/setup/password", data={"csrf_token": token, "current_password": "wrong guess here"})
    response = client.post("/setup/password", data={"csrf_token": token, "current_password": who.password})
    assert response.status_code == 429


def test_consecutive_failures_hit_a_hard_cap_that_only_an_admin_lifts(app, db, kit):
    store, policy = DatabaseThrottleStore(), ThrottlePolicy(5, 1, 1, hard_cap=100)
    key = account_key("victim@example.com")
    outcomes = [store.fail(db, key, policy) for _ in range(100)]
    assert not any(o.until_unlocked for o in outcomes[:99]) and outcomes[99].until_unlocked
    with time_machine.travel(utcnow() + timedelta(days=30)):
        assert store.locked_for(db, [key]) > 0
    store.reset(db, key)
    assert store.locked_for(db, [key]) == 0


def test_a_success_clears_the_consecutive_count(app, db, kit):
    who = make_user(db, kit)
    for _ in range(4):
        client = app.test_client()
        token = csrf_token(client, "/login")
        client.post("/login", data={"csrf_token": token, "email": who.email, "password": "wrong password here"})
    login(app.test_client(), db, who)
    assert db.get(LoginThrottle, account_key(who.email)) is None


def test_throttled_attempts_are_audited(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    token = csrf_token(client, "/login")
    for _ in range(6):
        client.post("/login", data={"csrf_token": token, "email": who.email, "password": "wrong password here"})
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "auth.throttled")) >= 1


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


def test_a_pending_login_dies_when_the_password_changes(app, db, kit):
    who = make_user(db, kit)
    attacker = app.test_client()
    token = csrf_token(attacker, "/login")
    attacker.post("/login", data={"csrf_token": token, "email": who.email, "password": who.password})
    owner = app.test_client()
    login(owner, db, who)
    new = "a completely different passphrase"
    post(owner, "/account/password", {"current_password": who.password, "code": fresh_code(db, who), "new_password": new, "confirm": new})
    response = attacker.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_seeds_sealed_under_an_old_secret_key_are_resealed(app, db, kit):
    who = make_user(db, kit)
    old_key = "the-previous-secret-key-0123456789abcdef"
    old_box = SecretBox([derive_key(old_key.encode(), "govern/users.mfa_seed/v1")])
    who.user.mfa_seed_sealed = old_box.seal(who.seed.encode(), f"govern:users.mfa_seed:{who.id}".encode())
    db.commit()
    kit.mfa_box = SecretBox([derive_key(k.encode(), "govern/users.mfa_seed/v1") for k in (TEST_SECRET_KEY, old_key)])
    login(app.test_client(), db, who)
    db.expire_all()
    sealed = db.get(User, who.id).mfa_seed_sealed
    current_only = SecretBox([derive_key(TEST_SECRET_KEY.encode(), "govern/users.mfa_seed/v1")])
    assert current_only.open(sealed, f"govern:users.mfa_seed:{who.id}".encode())[0] == who.seed.encode()


def test_idle_sessions_are_purged_and_expiry_is_audited(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    with time_machine.travel(utcnow() + timedelta(minutes=45)):
        app.test_client().get("/login")  # a new visitor's session triggers the purge
        assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == who.id)) == 0
        assert "auth.sessions.purged" in db.scalars(select(AuditEvent.action)).all()
    other = make_user(db, kit)
    c2 = app.test_client()
    login(c2, db, other)
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        c2.get("/")
    assert "auth.session.expired" in db.scalars(select(AuditEvent.action)).all()


def test_expired_sessions_are_not_listed_as_live(app, db, kit):
    who = make_user(db, kit)
    login(app.test_client(), db, who)
    with time_machine.travel(utcnow() + timedelta(minutes=45)):
        assert services.list_user_sessions(db, who.user, idle=timedelta(minutes=30), absolute=timedelta(hours=12)) == []
