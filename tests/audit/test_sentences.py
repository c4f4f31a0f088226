"""Audit events read as sentences (govern.activity), with their code still shown, on every page that lists them."""

from __future__ import annotations

import ast
import pathlib
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import govern
from govern import activity, audit
from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.incidents.services import lock_down
from govern.vault.versions import create_secret
from tests.factories import Company, login
from tests.sql_capture import statements

GOVERN = pathlib.Path(govern.__file__).parent
SECRET_VALUE = "Zebra-Cobalt-Violin-91!"


def written_action_codes() -> dict[str, str]:
    """Every action code govern's source writes, read from its calls of audit.record and audit.Entry.

    A code built at run time must be one the reader can follow: a literal, either branch of an
    ``x if c else y``, an f-string (its fields read as "*"), or a module-level dict's values.
    """
    found: dict[str, str] = {}
    unreadable: list[str] = []
    for path in sorted(GOVERN.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        dicts = {target.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Dict) for target in node.targets if isinstance(target, ast.Name)}

        def read(expr: ast.expr, where: str) -> list[str]:
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                return [expr.value]
            if isinstance(expr, ast.IfExp):
                return read(expr.body, where) + read(expr.orelse, where)
            if isinstance(expr, ast.JoinedStr):
                return ["".join(part.value if isinstance(part, ast.Constant) else "*" for part in expr.values)]
            if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name) and expr.value.id in dicts:
                return [code for value in dicts[expr.value.id].values if value is not None for code in read(value, where)]
            unreadable.append(where)
            return []

        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name == "record" and len(node.args) >= 2:
                expr = node.args[1]
            elif name == "Entry" and node.args:
                expr = node.args[0]
            else:
                continue
            where = f"{path.relative_to(GOVERN.parent)}:{node.lineno}"
            for code in read(expr, where):
                found.setdefault(code, where)
    assert not unreadable, f"action codes this test cannot read: {unreadable}"
    return found


def test_the_source_scan_finds_the_codes_govern_writes():
    codes = written_action_codes()
    # Literals, both branches of a conditional, an f-string and a dict's values are all seen.
    assert {"vault.secret_created", "grant.created", "grant.requested", "auth.*.mfa_ok", "vault.totp_seed_revealed",
            "rotation.task_opened", "grant.request_cancelled"} <= set(codes)
    assert len(codes) > 100


def test_every_action_code_written_anywhere_has_a_sentence():
    missing = {code: where for code, where in written_action_codes().items()
               if code not in activity.SENTENCES and activity.sentence_for(code.replace("*", "login")) is None}
    assert not missing, f"add a sentence to govern.activity.SENTENCES for: {missing}"


def test_every_sentence_uses_only_fields_it_is_given():
    known = {"actor", "target", "action", "on_target", "part", *activity._DETAIL_FIELDS}
    for code, template in activity.SENTENCES.items():
        assert set(re.findall(r"{(\w+)}", template)) <= known, code


@pytest.fixture
def app_overrides(keyring: Any) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def company(company: Company) -> Company:
    return company.account_team()


def _event(db, action: str) -> AuditEvent:
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id.desc())).first()


def test_a_secret_created_reads_with_who_what_and_where_and_never_the_value(db, ring, company):
    secret = create_secret(db, actor=company.it.user, keyring=ring, account=company.account, kind="password",
                                 label="Password", value=SECRET_VALUE)
    db.commit()
    event = _event(db, "vault.secret_created")
    said = activity.describe(db, [event])[event.id]
    account = company.account
    assert said.text == (f"{company.it.user.person.full_name} created the secret Password of "
                         f"@{account.handle} on {activity.PLATFORM_LABELS[account.platform]}")
    assert said.action == "vault.secret_created"
    assert SECRET_VALUE not in said.text and secret.id


def test_unknown_codes_and_vanished_targets_still_read(db, company):
    audit.record(db, "future.thing_done", actor=company.admin.user, target_type="secret", target_id=999999)
    audit.record(db, "vault.revealed", target_type="secret", target_id=999998)
    db.commit()
    said = activity.describe(db, [_event(db, "future.thing_done"), _event(db, "vault.revealed")])
    texts = sorted(s.text for s in said.values())
    assert texts == [f"{company.admin.user.person.full_name}: future.thing_done (secret #999999)",
                     "govern revealed the secret #999998"]


def test_names_cost_one_query_per_kind_whatever_the_number_of_events(db, connection, company, ring):
    for n in range(3):
        create_secret(db, actor=company.it.user, keyring=ring, account=company.account, kind="note",
                            label=f"Note {n}", value="x")
    db.commit()
    few = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(3)))
    many = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(50)))
    kinds = {e.target_type for e in many if e.target_type in activity._LOADERS} | {"user"}
    sent_for_many = statements(connection, lambda: activity.describe(db, many))
    assert len(sent_for_many) <= len(kinds)
    assert len(statements(connection, lambda: activity.describe(db, few))) <= len(sent_for_many)


def test_the_audit_page_shows_sentences_with_their_codes(app, db, company, ring):
    create_secret(db, actor=company.it.user, keyring=ring, account=company.account, kind="password",
                        label="Password", value=SECRET_VALUE)
    db.commit()
    client = app.test_client()
    login(client, db, company.admin)
    page = client.get("/audit/?action=vault.secret_created").get_data(as_text=True)
    assert f"{company.it.user.person.full_name} created the secret Password of @{company.account.handle}" in page
    assert '<code class="event-code"' in page and ">vault.secret_created</code>" in page
    assert SECRET_VALUE not in page


def test_the_incident_timeline_shows_sentences(app, db, company, ring):
    create_secret(db, actor=company.it.user, keyring=ring, account=company.account, kind="password",
                        label="Password", value=SECRET_VALUE)
    db.commit()
    incident = lock_down(db, actor=company.it.user, account=company.account, compromised_since=utcnow() - timedelta(hours=1),
                                  summary="phished")
    db.commit()
    client = app.test_client()
    login(client, db, company.it)
    page = client.get(f"/rotation/incidents/{incident.id}").get_data(as_text=True)
    assert f"{company.it.user.person.full_name} locked down the account @{company.account.handle}" in page
    assert ">rotation.account_locked</code>" in page
    assert SECRET_VALUE not in page
