"""A user's own credentials: recovery codes hashed, single use, replaced as a set."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from govern.auth import credentials
from govern.auth import login as auth_login
from govern.auth.models import RecoveryCode
from govern.errors import InvalidError
from tests.factories import csrf_token, fresh_code, login, make_user, post

# --- recovery codes ----------------------------------------------------------------------------


def test_recovery_codes_are_ten_hashed_single_use(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        codes = credentials.regenerate_recovery_codes(db, kit, user=who.user)
        db.commit()
        assert len(codes) == 10 and len(set(codes)) == 10
        stored = db.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == who.id)).all()
        assert len(stored) == 10
        for code in codes:
            assert all(code not in h and code.replace("-", "") not in h for h in stored)
            assert all(h.startswith("$argon2id$") for h in stored)
        typed = codes[3].lower().replace("-", " ")  # people type them loosely
        assert auth_login.verify_second_factor(db, kit, user=who.user, code=typed, ip=None, purpose="login") == "recovery_code"
        db.commit()
        with pytest.raises(InvalidError):
            auth_login.verify_second_factor(db, kit, user=who.user, code=codes[3], ip=None, purpose="login")
        assert auth_login.count_unused_recovery_codes(db, who.user) == 9


def test_regenerating_recovery_codes_invalidates_the_old_set(app, db, kit):
    who = make_user(db, kit)
    with app.test_request_context():
        old = credentials.regenerate_recovery_codes(db, kit, user=who.user)
        credentials.regenerate_recovery_codes(db, kit, user=who.user)
        db.commit()
        with pytest.raises(InvalidError):
            auth_login.verify_second_factor(db, kit, user=who.user, code=old[0], ip=None, purpose="login")


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
