"""Password hashing and rules, TOTP verification and replay, recovery codes."""

from __future__ import annotations

import re

import pytest
import time_machine
from argon2 import PasswordHasher
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth import services
from govern.auth.models import RecoveryCode, User
from govern.auth.passwords import PasswordHashing, password_problems
from govern.crypto import totp
from govern.errors import InvalidError
from tests.factories import make_user

STEP_START = 1_795_000_020  # a time exactly on a 30-second step boundary


# --- argon2id ---------------------------------------------------------------------------------


def test_password_hash_is_argon2id_at_or_above_the_asvs_floor(app, db, kit):
    who = make_user(db, kit)
    stored = db.scalar(select(User.password_hash).where(User.id == who.id))
    match = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
    assert match, stored
    memory, time_cost, parallelism = map(int, match.groups())
    assert memory >= 19456 and time_cost >= 2 and parallelism == 1


def test_default_production_parameters_are_above_the_floor():
    from govern.config import load_config

    config = load_config({"ENV": "testing", "SECRET_KEY": "x" * 40})
    assert config["ARGON2_TIME_COST"] >= 2 and config["ARGON2_MEMORY_KIB"] >= 19456


def test_a_weaker_hash_is_upgraded_at_the_next_login(app, db, kit):
    who = make_user(db, kit)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(who.password)
    who.user.password_hash = weak
    db.commit()
    with app.test_request_context():
        services.check_password_login(db, kit, email=who.email, password=who.password, ip="10.0.0.1")
    db.commit()
    db.refresh(who.user)
    assert who.user.password_hash != weak
    assert ",t=2," in who.user.password_hash and "m=19456" in who.user.password_hash
    assert "auth.password.rehashed" in db.scalars(select(AuditEvent.action)).all()


def test_password_is_checked_exactly_as_typed():
    hashing = PasswordHashing(2, 19456)
    stored = hashing.hash("Violet anchor moonlight ferry")
    assert hashing.verify(stored, "Violet anchor moonlight ferry")
    assert not hashing.verify(stored, "violet anchor moonlight ferry")
    assert not hashing.verify(stored, "Violet anchor moonlight ferr")
    assert not hashing.verify(None, "anything")


def test_an_unknown_email_costs_one_full_verification_like_a_known_one():
    # The stand-in hash is made without hashing (no argon2 run at start-up), yet argon2 must compute
    # it in full: same parameters as a real hash, well formed, and simply not matching.
    from argon2 import PasswordHasher, extract_parameters
    from argon2.exceptions import VerifyMismatchError

    from govern.auth.passwords import unmatchable_hash

    real = PasswordHashing(2, 19456).hash("Violet anchor moonlight ferry")
    stand_in = unmatchable_hash(2, 19456)
    assert extract_parameters(stand_in) == extract_parameters(real)
    with pytest.raises(VerifyMismatchError):  # computed and compared, not refused as malformed
        PasswordHasher().verify(stand_in, "Violet anchor moonlight ferry")
    assert unmatchable_hash(2, 19456) != stand_in  # a fresh random digest each time


# --- password rules (NIST 800-63B) ------------------------------------------------------------


@pytest.mark.parametrize("password", ["password123", "short one", "qwertyuiop123456", "aaaaaaaaaaaaaaaaaaaa",
                                      "Instagram2026!!!!", "govern social 2026", "Password123456789"])
def test_weak_passwords_are_refused_with_a_reason(password):
    problems = password_problems(password, email="alice.martin@acme.example")
    assert problems, password
    assert all(len(p) > 10 for p in problems)


def test_passwords_built_from_the_users_own_name_are_refused():
    assert password_problems("alicemartin2026!!", email="alice.martin@acme.example")
    assert password_problems("acme acme acme 2026", email="alice.martin@acme.example")


@pytest.mark.parametrize("password", ["Northwind Traders 2026!", "NORTHWIND-traders-2024", "northwindtraders!!!!",
                                      "2026 Northwind 2026 Traders!", "traders northwind #1 2025"])
def test_passwords_built_from_the_companys_name_are_refused(password):
    problems = password_problems(password, email="alice@example.org", organisation="Northwind Traders")
    assert problems == ["This password is built from your name, the company or a platform name; choose another."]
    assert password_problems(password, email="alice@example.org") == []  # without the name it passes


def test_the_companys_name_does_not_spoil_passwords_that_merely_contain_it():
    assert password_problems("northwind harbour velvet lantern", organisation="Northwind Traders") == []


@pytest.mark.parametrize("password", [
    "violet anchor moonlight ferry",
    "ℌ𝔢𝔩𝔩𝔬 wörld, ça va très bien — 東京 2026 ☂",  # unicode passphrase
    "x7#Kp" * 12 + "abcd",  # 64 characters
    "no composition rules at all here",
])
def test_long_or_unicode_passphrases_are_accepted_without_composition_rules(password):
    assert password_problems(password, email="alice@acme.example") == []


def test_overlong_passwords_are_refused():
    assert password_problems("word " * 60)


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
        assert services.verify_second_factor(db, kit, user=who.user, code=code, ip="10.0.0.1", purpose="login") == "totp"
        db.commit()
        with pytest.raises(InvalidError):
            services.verify_second_factor(db, kit, user=who.user, code=code, ip="10.0.0.1", purpose="login")
        db.commit()
    actions = db.scalars(select(AuditEvent.action)).all()
    assert "auth.totp.replayed" in actions


def test_a_code_of_an_earlier_step_than_the_last_accepted_is_refused(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context(), time_machine.travel(STEP_START + 35, tick=False):  # step s+1
        current = totp.code_at(who.seed)
        previous = totp.code_at(who.seed, STEP_START + 5)  # step s, still inside the window
        services.verify_second_factor(db, kit, user=who.user, code=current, ip=None, purpose="login")
        if previous != current:
            with pytest.raises(InvalidError):
                services.verify_second_factor(db, kit, user=who.user, code=previous, ip=None, purpose="login")


def test_a_code_from_the_previous_step_is_accepted_when_not_used_before(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context(), time_machine.travel(STEP_START + 35, tick=False):
        previous = totp.code_at(who.seed, STEP_START + 5)
        assert services.verify_second_factor(db, kit, user=who.user, code=previous, ip=None, purpose="login") == "totp"


def test_codes_from_an_independent_authenticator_work(app, db, kit):
    """oathtool (Debian) computes the code; govern must accept it."""
    import shutil
    import subprocess

    from tests.support import require_service

    require_service("oathtool", shutil.which("oathtool") is not None, "apt-get install oathtool")
    who = make_user(db, kit)
    code = subprocess.run(["oathtool", "--totp", "-b", who.seed], capture_output=True, text=True, check=True).stdout.strip()
    with app.test_request_context():
        assert services.verify_second_factor(db, kit, user=who.user, code=code, ip=None, purpose="login") == "totp"


# --- recovery codes ----------------------------------------------------------------------------


def test_recovery_codes_are_ten_hashed_single_use(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        codes = services.regenerate_recovery_codes(db, kit, user=who.user)
        db.commit()
        assert len(codes) == 10 and len(set(codes)) == 10
        stored = db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == who.id)).all()
        assert len(stored) == 10
        for code in codes:
            assert all(code not in h and code.replace("-", "") not in h for h in stored)
            assert all(h.startswith("$argon2id$") for h in stored)
        typed = codes[3].lower().replace("-", " ")  # people type them loosely
        assert services.verify_second_factor(db, kit, user=who.user, code=typed, ip=None, purpose="login") == "recovery_code"
        db.commit()
        with pytest.raises(InvalidError):
            services.verify_second_factor(db, kit, user=who.user, code=codes[3], ip=None, purpose="login")
        assert services.count_unused_recovery_codes(db, who.user) == 9


def test_regenerating_recovery_codes_invalidates_the_old_set(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        old = services.regenerate_recovery_codes(db, kit, user=who.user)
        services.regenerate_recovery_codes(db, kit, user=who.user)
        db.commit()
        with pytest.raises(InvalidError):
            services.verify_second_factor(db, kit, user=who.user, code=old[0], ip=None, purpose="login")


def test_recovery_codes_are_not_accepted_for_step_up(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        codes = services.regenerate_recovery_codes(db, kit, user=who.user)
        with pytest.raises(InvalidError):
            services.verify_second_factor(db, kit, user=who.user, code=codes[0], ip=None, purpose="reauth")


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
                services.verify_second_factor(session, kit, user=user, code=code, ip="10.0.0.9", purpose="login")
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


def test_one_setup_secret_redeemed_at_once_by_two_sessions_is_accepted_once(tmp_path, scratch_database_url):
    """Two connections race to redeem one setup secret; the atomic update lets exactly one win."""
    import threading

    from govern.app import create_app
    from govern.db import database
    from govern.schema import upgrade
    from tests.support import app_config

    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    kit = app.extensions["govern.auth"]
    with database(app).session_scope() as session:
        who = make_user(session, kit, with_mfa=False)
        with app.test_request_context():
            secret = services.issue_setup_token(session, kit, user=session.get(User, who.id), purpose="setup", actor=None)
        session.commit()
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()
        with app.test_request_context(), database(app).session_scope() as session:
            try:
                services.redeem_setup_token(session, kit, token=secret, ip="10.0.0.9")
                session.commit()
                results.append("redeemed")
            except InvalidError as exc:
                session.commit()
                results.append(exc.message)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == sorted(["redeemed", services.SETUP_TOKEN_ERROR])
    database(app).engine.dispose()
