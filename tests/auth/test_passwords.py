"""Password hashing (argon2id) and the password rules."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from govern.auth.models import User
from govern.auth.passwords import PasswordHashing, password_problems
from tests.factories import make_user

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
    from argon2 import extract_parameters
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
