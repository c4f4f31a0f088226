"""The password generator: the pure function, the per-platform rules, the admin page, the JSON endpoint."""

from __future__ import annotations

import inspect
import json
import logging
import string
from collections import Counter
from itertools import product

import pytest
from sqlalchemy import func, select

from govern.accounts.models import PLATFORMS
from govern.audit.models import AuditEvent
from govern.crypto import generator
from govern.crypto.generator import (
    CharacterRules,
    RuleError,
    check_rules,
    count_passwords,
    entropy_bits,
    generate_password,
)
from govern.vault import rules as rule_services
from govern.vault.rule_models import PasswordRule
from tests.factories import csrf_token, login, make_account, make_user, post

SAMPLES_PER_PLATFORM = 300


def _fits(value: str, rules: CharacterRules) -> bool:
    return (rules.min_length <= len(value) <= rules.max_length and set(value) <= set(rules.alphabet())
            and all(set(value) & set(chars) for chars in rules.required()))


# --- the pure function -------------------------------------------------------------------------------


def test_the_generator_uses_the_secrets_module_and_never_random():
    source = inspect.getsource(generator)
    assert "secrets.choice" in source
    assert "import random" not in source and "from random" not in source


def test_every_seeded_platform_rule_produces_fitting_passwords_of_at_least_128_bits(db, capsys):
    stored = rule_services.list_rules(db)
    assert [r.platform for r in stored] == list(PLATFORMS)
    report = {}
    for rule in stored:
        rules = rule_services.character_rules(rule)
        assert 24 <= rule.default_length <= rule.max_length or rule.max_length < 24
        for _ in range(SAMPLES_PER_PLATFORM):
            value = generate_password(rules)
            assert len(value) == rule.default_length
            assert _fits(value, rules), (rule.platform, value)
        bits = entropy_bits(rules)
        report[rule.platform] = round(bits, 1)
        assert bits >= 128, (rule.platform, bits)
    with capsys.disabled():
        print("\nentropy of generated passwords (bits):", json.dumps(report))


def test_every_length_between_the_limits_fits():
    rules = CharacterRules(min_length=4, max_length=40, default_length=20)
    for length in range(4, 41):
        for _ in range(20):
            assert _fits(value := generate_password(rules, length), rules) and len(value) == length


def test_characters_are_chosen_uniformly():
    # Digits only, length 8: 20,000 draws of 8 characters; every digit is expected 16,000 times
    # (sd ~ 120). Six standard deviations: a false alarm about once in 10^8 runs.
    rules = CharacterRules(min_length=8, max_length=8, default_length=8, lowercase="excluded", uppercase="excluded",
                           digits="required", symbols="excluded")
    counts = Counter("".join(generate_password(rules) for _ in range(20_000)))
    assert set(counts) == set(string.digits)
    for digit, n in counts.items():
        assert abs(n - 16_000) < 6 * 120, (digit, n)


def test_required_classes_are_guaranteed_even_when_rare():
    # One symbol among 63 characters, length 4: most random strings would miss it.
    rules = CharacterRules(min_length=4, max_length=4, default_length=4, symbol_set="!")
    for _ in range(200):
        value = generate_password(rules)
        assert "!" in value and set(value) & set(string.ascii_lowercase) and set(value) & set(string.ascii_uppercase)
        assert set(value) & set(string.digits)


def test_count_of_fitting_passwords_is_exact():
    rules = CharacterRules(min_length=4, max_length=4, default_length=4, lowercase="excluded", uppercase="excluded",
                           digits="required", symbols="required", symbol_set="!#")
    alphabet = rules.alphabet()
    brute = sum(1 for chars in product(alphabet, repeat=4) if _fits("".join(chars), rules))
    assert count_passwords(rules, 4) == brute
    allowed_only = CharacterRules(min_length=4, max_length=8, default_length=6, lowercase="allowed", uppercase="excluded",
                                  digits="excluded", symbols="excluded")
    assert count_passwords(allowed_only, 6) == 26**6


@pytest.mark.parametrize(("changes", "field"), [
    ({"min_length": 20, "max_length": 10, "default_length": 15}, "max_length"),
    ({"default_length": 300}, "default_length"),
    ({"min_length": 2, "default_length": 8}, "min_length"),
    ({"max_length": 1000}, "max_length"),
    ({"lowercase": "excluded", "uppercase": "excluded", "digits": "excluded", "symbols": "excluded"}, "lowercase"),
    ({"symbol_set": "!a"}, "symbol_set"),
    ({"symbol_set": "!!"}, "symbol_set"),
    ({"symbol_set": "! #"}, "symbol_set"),
    ({"symbol_set": ""}, "symbol_set"),
    ({"lowercase": "sometimes"}, "lowercase"),
])
def test_unusable_rules_are_refused_with_a_reason(changes, field):
    values = {"min_length": 8, "max_length": 64, "default_length": 32, **changes}
    with pytest.raises(RuleError) as caught:
        check_rules(CharacterRules(**values))
    assert field in caught.value.reasons


def test_a_length_outside_the_rule_is_refused():
    rules = CharacterRules(min_length=8, max_length=20, default_length=20)
    with pytest.raises(RuleError):
        generate_password(rules, 21)
    with pytest.raises(RuleError):
        generate_password(rules, 7)


def test_generated_passwords_differ():
    rules = CharacterRules(min_length=8, max_length=64, default_length=32)
    assert len({generate_password(rules) for _ in range(1000)}) == 1000


# --- the rules pages -----------------------------------------------------------------------------------


def test_rules_page_lists_every_platform_with_its_strength(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    html = client.get("/vault/password-rules").get_data(as_text=True)
    for label in ("Facebook", "Instagram", "TikTok", "YouTube", "Mastodon", "Other"):
        assert label in html
    assert "bits" in html and "/vault/password-rules/tiktok" in html


def test_it_sees_the_rules_but_cannot_edit_them(app, db, kit):
    it = make_user(db, kit, roles=("it",))
    client = app.test_client()
    login(client, db, it)
    page = client.get("/vault/password-rules")
    assert page.status_code == 200 and "/vault/password-rules/tiktok" not in page.get_data(as_text=True)
    assert client.get("/vault/password-rules/tiktok").status_code == 403
    response = post(client, "/vault/password-rules/tiktok", {"min_length": 4}, token_page="/vault/password-rules")
    assert response.status_code == 403


def test_staff_and_managers_see_no_rules(app, db, kit):
    for roles in ((), ("manager",), ("auditor",)):
        who = make_user(db, kit, roles=roles)
        client = app.test_client()
        login(client, db, who)
        assert client.get("/vault/password-rules").status_code == 403


def _rule_form(**changes):
    data = {"min_length": 8, "max_length": 20, "default_length": 20, "lowercase": "required", "uppercase": "required",
            "digits": "required", "symbols": "required", "symbol_set": "!#$%&()*+,-./:;<=>?@[]^_{|}~",
            "notes": "TikTok: 8 to 20 characters."}
    data.update(changes)
    return data


def test_admin_edits_a_rule_and_it_is_audited(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    response = post(client, "/vault/password-rules/tiktok", _rule_form(max_length=24, default_length=24),
                    token_page="/vault/password-rules/tiktok")
    assert response.status_code == 302
    db.expire_all()
    rule = db.get(PasswordRule, "tiktok")
    assert (rule.max_length, rule.default_length, rule.updated_by_id) == (24, 24, admin.id)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.password_rule.updated")).one()
    details = json.loads(event.details_json)
    assert details["changes"]["max_length"] == {"from": 20, "to": 24}


@pytest.mark.parametrize(("changes", "message"), [
    ({"min_length": 30}, "generated length must lie between"),
    ({"min_length": 30, "default_length": 30}, "maximum length must not be below"),
    ({"lowercase": "excluded", "uppercase": "excluded", "digits": "excluded", "symbols": "excluded"}, "at least one character class"),
    ({"symbol_set": "abc"}, "ASCII punctuation"),
    ({"symbols": "required", "symbol_set": ""}, "List the symbols"),
    ({"max_length": 999, "default_length": 20}, "maximum length must be from"),
])
def test_invalid_rules_are_refused_and_nothing_changes(app, db, kit, changes, message):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    before = db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "vault.password_rule.updated"))
    response = post(client, "/vault/password-rules/tiktok", _rule_form(**changes), token_page="/vault/password-rules/tiktok")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(PasswordRule, "tiktok").max_length == 20
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "vault.password_rule.updated")) == before


def test_unknown_platform_is_404(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    assert client.get("/vault/password-rules/myspace").status_code == 404


# --- the JSON endpoint -----------------------------------------------------------------------------------


def _generate(client, account_id, **data):
    token = csrf_token(client, "/vault/password-rules")
    return client.post(f"/vault/generate?account={account_id}", data=data, headers={"X-CSRFToken": token})


def test_it_generates_a_password_for_an_account_platform(app, db, kit, caplog):
    caplog.set_level(logging.DEBUG)
    it = make_user(db, kit, roles=("it",))
    account = make_account(db, platform="tiktok", handle="acmetok", url="https://www.tiktok.com/@acmetok")
    db.commit()
    client = app.test_client()
    login(client, db, it)
    events_before = db.scalar(select(func.count()).select_from(AuditEvent))
    response = _generate(client, account.id)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    rules = rule_services.character_rules(db.get(PasswordRule, "tiktok"))
    assert len(data["password"]) == 20 and _fits(data["password"], rules)
    assert data["entropy_bits"] >= 128 and data["platform"] == "TikTok"
    # Never stored, audited or logged.
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == events_before
    assert data["password"] not in caplog.text
    second = _generate(client, account.id).get_json()["password"]
    assert second != data["password"]


def test_a_chosen_length_is_honoured_within_the_rules(app, db, kit):
    it = make_user(db, kit, roles=("it",))
    account = make_account(db, platform="x", handle="acmex", url="https://x.com/acmex")
    db.commit()
    client = app.test_client()
    login(client, db, it)
    assert len(_generate(client, account.id, length=64).get_json()["password"]) == 64
    refused = _generate(client, account.id, length=500)
    assert refused.status_code == 400 and "password" not in refused.get_json()


def test_generate_refuses_bad_requests_without_a_500(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    assert _generate(client, 999_999).status_code == 404
    assert _generate(client, "abc").status_code == 400
    assert client.post("/vault/generate?account=1").status_code == 400  # no CSRF token
    assert client.get("/vault/generate?account=1").status_code == 405


@pytest.mark.parametrize("roles", [(), ("manager",), ("hr",), ("auditor",)])
def test_only_it_and_admins_may_generate(app, db, kit, roles):
    who = make_user(db, kit, roles=roles)
    account = make_account(db)
    db.commit()
    client = app.test_client()
    login(client, db, who)
    token = csrf_token(client, "/account")
    response = client.post(f"/vault/generate?account={account.id}", headers={"X-CSRFToken": token})
    assert response.status_code == 403


def test_the_generate_button_macro_points_at_the_endpoint(app, db, kit):
    it = make_user(db, kit, roles=("it",))
    with app.test_request_context("/"):
        from flask import render_template_string
        from flask_login import login_user

        login_user(it.user)
        html = render_template_string('{% from "vault_tools/_generate.html" import generate_button with context %}{{ generate_button(7, "#value") }}')
    assert 'data-generate="/vault/generate?account=7"' in html and 'data-target="#value"' in html


def test_the_vault_forms_offer_the_generate_button(app, db, kit, ring):
    from govern.vault.versions import create_secret

    it = make_user(db, kit, roles=("it",))
    account = make_account(db)
    password = create_secret(db, actor=it.user, keyring=ring, account=account, kind="password", label="Login", value="old-pass-123")
    note = create_secret(db, actor=it.user, keyring=ring, account=account, kind="note", label="Note", value="some note")
    db.commit()
    client = app.test_client()
    login(client, db, it)
    button = f'data-generate="/vault/generate?account={account.id}"'
    assert button in client.get(f"/vault/accounts/{account.id}/new").get_data(as_text=True)
    assert button in client.get(f"/vault/secrets/{password.id}/change").get_data(as_text=True)
    assert button not in client.get(f"/vault/secrets/{note.id}/change").get_data(as_text=True)
