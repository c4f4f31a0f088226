"""Failed-attempt throttling per account and per client IP, shared by every worker."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import redis
import time_machine
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.auth.models import LoginThrottle
from govern.auth.throttle import DatabaseThrottleStore, ThrottlePolicy, account_key, lock_delay
from govern.db import database, utcnow
from govern.schema import upgrade
from tests.factories import csrf_from, csrf_token, fresh_code, login, make_user, post
from tests.support import app_config, require_service


def _try_password(client, email, password, ip="10.2.0.1", xff=None):
    token = csrf_token(client, "/login")
    headers = {"X-Forwarded-For": xff} if xff else {}
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip}, headers=headers)


def test_five_wrong_passwords_lock_the_account_temporarily(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    for _ in range(5):
        assert _try_password(client, who.email, "wrong password here").status_code == 200
    locked = _try_password(client, who.email, who.password)
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    lockouts = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.lockout")).all()
    assert lockouts and '"scope":"account"' in lockouts[-1].details_json
    with time_machine.travel(utcnow() + timedelta(seconds=61)):
        assert _try_password(client, who.email, who.password).status_code == 302


def test_lockout_delay_doubles_and_is_capped(app, db, kit):
    policy = ThrottlePolicy(5, 60, 3600)
    assert [lock_delay(policy, n) for n in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_wrong_totp_codes_lock_the_account_and_then_even_a_right_code_is_refused(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    assert _try_password(client, who.email, who.password).status_code == 302
    page = client.get("/login/code")
    token = csrf_from(page.get_data(as_text=True))
    for _ in range(5):
        client.post("/login/code", data={"csrf_token": token, "code": "000000" if fresh_code(db, who) != "000000" else "111111"})
    response = client.post("/login/code", data={"csrf_token": token, "code": fresh_code(db, who)})
    assert response.status_code == 429


def test_success_resets_the_account_count(app, db, kit):
    who = make_user(db, kit)
    for _ in range(4):
        _try_password(app.test_client(), who.email, "wrong password here")
    login(app.test_client(), db, who)
    for _ in range(4):
        assert _try_password(app.test_client(), who.email, "wrong password here").status_code == 200
    assert _try_password(app.test_client(), who.email, who.password).status_code == 302


def test_many_failures_from_one_ip_are_throttled_across_accounts(app, db, kit):
    client = app.test_client()
    for n in range(20):
        _try_password(client, f"someone{n}@example.com", "wrong password here", ip="10.3.3.3")
    assert _try_password(client, "another@example.com", "x" * 20, ip="10.3.3.3").status_code == 429
    assert _try_password(client, "another@example.com", "x" * 20, ip="10.3.3.4").status_code == 200


def test_rotating_x_forwarded_for_does_not_reset_the_count(tmp_path, database_url, connection):
    """Behind one proxy, only the right-most X-Forwarded-For entry counts; a client can prepend anything."""
    app = create_app(app_config(tmp_path, database_url, PROXY_HOPS=1))
    app.extensions["govern.db"].engine.dispose()
    app.extensions["govern.db"].sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    client = app.test_client()
    for n in range(20):
        response = _try_password(client, f"x{n}@example.com", "wrong password", ip="192.0.2.10", xff=f"6.6.6.{n}, 203.0.113.7")
        assert response.status_code == 200
    response = _try_password(client, "y@example.com", "wrong password", ip="192.0.2.10", xff="1.2.3.4, 203.0.113.7")
    assert response.status_code == 429
    events = [e for e in _events(connection) if e.action == "auth.login.password_failed"]
    assert events and events[-1].ip == "203.0.113.7"


def _events(connection):
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        return session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def test_admin_unlock_is_audited_and_works(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    for _ in range(5):
        _try_password(app.test_client(), who.email, "wrong password here")
    assert _try_password(app.test_client(), who.email, who.password).status_code == 429
    admin_client = app.test_client()
    login(admin_client, db, admin)
    post(admin_client, f"/admin/users/{who.id}/unlock")
    assert _try_password(app.test_client(), who.email, who.password).status_code == 302
    assert "users.unlocked" in db.scalars(select(AuditEvent.action)).all()


# --- shared storage: two app instances (two gunicorn workers) -------------------------------------


def _two_instances(tmp_path: Path, url: str, **overrides):
    first = create_app(app_config(tmp_path / "a", url, **overrides))
    second = create_app(app_config(tmp_path / "b", url, **overrides))
    return first, second


def _seed_user(app):
    with database(app).session_scope() as session:
        who = make_user(session, app.extensions["govern.auth"])
        session.commit()
        return who


def _alternate_failures(first, second, who, count):
    clients = [first.test_client(), second.test_client()]
    statuses = []
    for n in range(count):
        statuses.append(_try_password(clients[n % 2], who.email, "wrong password here", ip=f"10.4.0.{n}").status_code)
    return statuses


def test_throttle_holds_across_two_app_instances_sharing_the_database(tmp_path, scratch_database_url):
    upgrade(scratch_database_url)
    first, second = _two_instances(tmp_path, scratch_database_url)
    who = _seed_user(first)
    statuses = _alternate_failures(first, second, who, 5)
    assert statuses == [200] * 5
    assert _try_password(second.test_client(), who.email, who.password, ip="10.4.1.1").status_code == 429
    assert _try_password(first.test_client(), who.email, who.password, ip="10.4.1.2").status_code == 429


def _redis_url():
    url = os.environ.get("GOVERN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, True
    except Exception:
        return url, False


def test_throttle_holds_across_two_app_instances_sharing_redis(tmp_path, scratch_database_url):
    url, up = _redis_url()
    require_service("Redis", up, f"no Redis at {url}")
    upgrade(scratch_database_url)
    first, second = _two_instances(tmp_path, scratch_database_url, REDIS_URL=url)
    # A prefix of our own keeps parallel runs apart.
    prefix = f"govern-test:{secrets.token_hex(4)}:"
    for app in (first, second):
        app.extensions["govern.auth"].throttle._prefix = prefix
    who = _seed_user(first)
    try:
        assert _alternate_failures(first, second, who, 5) == [200] * 5
        assert _try_password(second.test_client(), who.email, who.password, ip="10.4.1.1").status_code == 429
        assert _try_password(first.test_client(), who.email, who.password, ip="10.4.1.2").status_code == 429
    finally:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def test_sign_in_fails_closed_when_redis_is_unreachable(tmp_path, database_url, connection):
    app = create_app(app_config(tmp_path, database_url, REDIS_URL="redis://127.0.0.1:1/0"))
    app.extensions["govern.db"].engine.dispose()
    app.extensions["govern.db"].sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    response = _try_password(app.test_client(), "someone@example.com", "a password of some length")
    assert response.status_code == 503
    assert "Sign-in is paused" in response.get_data(as_text=True)


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
