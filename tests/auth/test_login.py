"""Signing in (govern.auth.login): the password check, TOTP codes accepted once, recovery codes only at login."""

from __future__ import annotations

import re

import pytest
import time_machine
from argon2 import PasswordHasher
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth import credentials
from govern.auth import login as auth_login
from govern.auth.models import User
from govern.crypto import totp
from govern.crypto.secretbox import SecretBox, derive_key
from govern.errors import InvalidError
from tests.factories import login, make_user
from tests.support import TEST_SECRET_KEY

STEP_START = 1_795_000_020  # a time exactly on a 30-second step boundary


def test_a_weaker_hash_is_upgraded_at_the_next_login(app, db, kit):
    who = make_user(db, kit)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(who.password)
    who.user.password_hash = weak
    db.commit()
    with app.test_request_context():
        auth_login.check_password_login(db, kit, email=who.email, password=who.password, ip="10.0.0.1")
    db.commit()
    db.refresh(who.user)
    assert who.user.password_hash != weak
    assert ",t=2," in who.user.password_hash and "m=19456" in who.user.password_hash
    assert "auth.password.rehashed" in db.scalars(select(AuditEvent.action)).all()


# --- TOTP ------------------------------------------------------------------------------------


def test_codes_from_the_current_and_previous_step_match_but_not_older_or_future():
    seed = totp.new_seed()
    now = STEP_START + 10
    step = totp.current_step(now)
    assert totp.matching_step(seed, totp.code_at(seed, now), now) == step
    assert totp.matching_step(seed, totp.code_at(seed, now - 30), now) == step - 1
    older, future = totp.code_at(seed, now - 60), totp.code_at(seed, now + 30)
    if older not in {totp.code_at(seed, now), totp.code_at(seed, now - 30)}:
        assert totp.matching_step(seed, older, now) is None
    if future not in {totp.code_at(seed, now), totp.code_at(seed, now - 30)}:
        assert totp.matching_step(seed, future, now) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "１２３４５６", "12 34 5", "' OR 1=1 --", "9" * 1000])
def test_malformed_codes_never_match(code):
    assert totp.matching_step(totp.new_seed(), code) is None


def test_seeds_are_160_bit_base32():
    seed = totp.new_seed()
    assert re.fullmatch(r"[A-Z2-7]{32}", seed)
    assert len({totp.new_seed() for _ in range(50)}) == 50


def test_seed_is_stored_sealed_not_in_clear(db, kit):
    who = make_user(db, kit)
    sealed = db.scalar(select(User.mfa_seed_sealed).where(User.id == who.id))
    assert who.seed.encode() not in sealed
    import base64

    assert base64.b32decode(who.seed) not in sealed


def test_a_code_is_accepted_only_once(app, db, kit):
    who = make_user(db, kit)
    with time_machine.travel(STEP_START + 5, tick=False), app.test_request_context():
        code = totp.code_at(who.seed)
        assert auth_login.verify_second_factor(db, kit, user=who.user, code=code, ip="10.0.0.1", purpose="login") == "totp"
        db.commit()
        with pytest.raises(InvalidError):
            auth_login.verify_second_factor(db, kit, user=who.user, code=code, ip="10.0.0.1", purpose="login")
        db.commit()
    actions = db.scalars(select(AuditEvent.action)).all()
    assert "auth.totp.replayed" in actions


def test_a_code_of_an_earlier_step_than_the_last_accepted_is_refused(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context(), time_machine.travel(STEP_START + 35, tick=False):  # step s+1
        current = totp.code_at(who.seed)
        previous = totp.code_at(who.seed, STEP_START + 5)  # step s, still inside the window
        auth_login.verify_second_factor(db, kit, user=who.user, code=current, ip=None, purpose="login")
        if previous != current:
            with pytest.raises(InvalidError):
                auth_login.verify_second_factor(db, kit, user=who.user, code=previous, ip=None, purpose="login")


def test_a_code_from_the_previous_step_is_accepted_when_not_used_before(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context(), time_machine.travel(STEP_START + 35, tick=False):
        previous = totp.code_at(who.seed, STEP_START + 5)
        assert auth_login.verify_second_factor(db, kit, user=who.user, code=previous, ip=None, purpose="login") == "totp"


def test_codes_from_an_independent_authenticator_work(app, db, kit):
    """oathtool (Debian) computes the code; govern must accept it."""
    import shutil
    import subprocess

    from tests.support import require_service

    require_service("oathtool", shutil.which("oathtool") is not None, "apt-get install oathtool")
    who = make_user(db, kit)
    code = subprocess.run(["oathtool", "--totp", "-b", who.seed], capture_output=True, text=True, check=True).stdout.strip()
    with app.test_request_context():
        assert auth_login.verify_second_factor(db, kit, user=who.user, code=code, ip=None, purpose="login") == "totp"


def test_recovery_codes_are_not_accepted_for_step_up(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        codes = credentials.regenerate_recovery_codes(db, kit, user=who.user)
        with pytest.raises(InvalidError):
            auth_login.verify_second_factor(db, kit, user=who.user, code=codes[0], ip=None, purpose="reauth")


def test_the_same_code_submitted_at_once_by_two_sessions_is_accepted_once(tmp_path, scratch_database_url):
    """Two connections race to accept one code; the atomic step update lets exactly one win."""
    import threading

    from govern.app import create_app
    from govern.db import database
    from govern.schema import upgrade
    from tests.support import app_config

    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    kit = app.extensions["govern.auth"]
    with database(app).session_scope() as session:
        who = make_user(session, kit)
    code = totp.code_at(who.seed)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()  # before touching the database: on SQLite the first BEGIN IMMEDIATE holds the lock
        with app.test_request_context(), database(app).session_scope() as session:
            user = session.get(User, who.id)
            try:
                auth_login.verify_second_factor(session, kit, user=user, code=code, ip="10.0.0.9", purpose="login")
                session.commit()
                results.append("accepted")
            except InvalidError:
                session.commit()
                results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["accepted", "refused"]
    with database(app).session_scope() as session:
        assert "auth.totp.replayed" in session.scalars(select(AuditEvent.action)).all()
    database(app).engine.dispose()


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
