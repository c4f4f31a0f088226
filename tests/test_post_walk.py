"""Every POST endpoint of the URL map, walked: CSRF is enforced on each, and junk input never 500s.

The endpoint list comes from ``app.url_map``, so an endpoint added later is covered without
touching this file; ids in URLs point at real rows where the test can make one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from govern import web
from govern.audit.models import AuditEvent
from govern.auth.models import User, UserRole
from tests.factories import csrf_token, login, make_account, make_grant, make_user, publish_policy

#: Field names every form might read, added to the names found on the endpoint's own GET page.
COMMON_FIELDS = ("email", "password", "current_password", "new_password", "confirm", "code", "token", "next",
                 "roles", "full_name", "person_id", "reason", "since", "until", "actor", "action", "target_type",
                 "target_id", "file", "is_admin", "password_hash", "user_id", "status")

#: Endpoints that read no field and are slow on purpose (ten argon2 hashes a request): two payloads do.
READS_NO_FIELD = frozenset({"auth.regenerate_recovery_codes"})

OVERSIZED = "x" * 20_000
JUNK_VALUES: list[Any] = [
    "",
    OVERSIZED,
    "\x01\x02\x1b[31m\r\nSet-Cookie: a=b",
    "１２３４５６",  # full-width digits: str.isdigit() says yes, int() and the database may not
    "-1",
    "99999999999999999999999999",
    "1e308",
    "<script>alert(1)</script>' OR '1'='1",
    "../../etc/passwd",
    ["1", "2", "3"],
    "\ufeff\u202e\u200b",
]


def _path_for(rule: Any, ids: dict[str, int]) -> str:
    """The rule's URL with every placeholder filled: a real id where we made one, else 1 or 'zz'."""

    def fill(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "int":
            return str(ids.get(name, 1))
        return "zz"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", fill, rule.rule)


def _post_rules(app: Flask) -> list[Any]:
    return sorted((r for r in app.url_map.iter_rules() if "POST" in (r.methods or ())), key=lambda r: r.rule)


def _field_names(client: FlaskClient, rule: Any, path: str) -> set[str]:
    names = set(COMMON_FIELDS)
    if "GET" in (rule.methods or ()):
        html = client.get(path).get_data(as_text=True)
        names |= set(re.findall(r'name="([^"]+)"', html)) - {"csrf_token"}
    return names


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """An unsealed vault, so the vault's forms run their own code on the junk too."""
    from govern.crypto.keyring import Keyring

    return {"VAULT_KEYRING_JSON": Keyring.generate().to_json()}


@pytest.fixture
def world(app: Flask, db: Any, kit: Any) -> dict[str, Any]:
    """An admin, a victim login and one row of each kind the POST endpoints address."""
    admin = make_user(db, kit, roles=("admin",))
    victim = make_user(db, kit)
    account = make_account(db)
    grant = make_grant(db, victim.user.person, account, status="requested")
    policy = publish_policy(db)
    db.commit()
    ids = {"user_id": victim.id, "person_id": victim.user.person_id, "account_id": account.id,
           "grant_id": grant.id, "version_id": policy.id}
    return {"admin": admin, "victim": victim, "ids": ids}


def _audit_count(db: Any) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_every_post_endpoint_refuses_a_request_without_a_valid_csrf_token(app, db, world):
    signed_in, anonymous = app.test_client(), app.test_client()
    login(signed_in, db, world["admin"])
    foreign = csrf_token(app.test_client(), "/login")  # a real token, but of another session
    before = _audit_count(db)
    checked = 0
    for rule in _post_rules(app):
        path = _path_for(rule, world["ids"])
        # Bearer-token APIs (SCIM) take no cookie and so need no CSRF token: without a bearer
        # token, a browser session (forged request or not) gets 401 from them.
        is_bearer = web.view_permission(app, rule.endpoint) in web.BEARER_AUTH
        for client in (signed_in, anonymous):
            for token in (None, "", "forged", foreign):
                data = {"roles": "admin", "email": "x@example.com"} | ({} if token is None else {"csrf_token": token})
                response = client.post(path, data=data)
                body = response.get_data(as_text=True)
                if is_bearer:
                    assert response.status_code == 401, (path, token, response.status_code)
                    continue
                assert response.status_code == 400, (path, token, response.status_code)
                assert "The form expired" in body, (path, token)
                checked += 1
    assert checked >= 4 * 2 * 20
    # Refused before any view ran: no event, no change, and the signed-in session is still alive.
    assert _audit_count(db) == before
    assert signed_in.get("/account").status_code == 200
    db.expire_all()
    assert "admin" not in db.get(User, world["victim"].id).roles


def _junk_payloads(names: set[str]) -> list[dict[str, Any]]:
    ordered = sorted(names)
    payloads: list[dict[str, Any]] = [{}]
    for value in JUNK_VALUES:
        payloads.append({name: value for name in ordered})
    payloads.append({name: "\x00" for name in ordered})
    return payloads


RAW_BODIES: list[tuple[bytes, str]] = [
    (b"email=%ff%fe%fd&password=%c3%28&code=%ed%a0%80&roles=%80", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00\x01=\xc3\x28&%%%=&&&=", "application/x-www-form-urlencoded"),
    (b'{"email": "a@example.com", "roles": ["admin"]}', "application/json"),
    (b"\x00" * 2048, "application/octet-stream"),
    (b"--nope\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../x\"\r\n\r\n\xff\x00\r\n--nope--\r\n",
     "multipart/form-data; boundary=nope"),
    (b"--broken", "multipart/form-data"),
    ("&".join(f"f{n}=v" for n in range(3000)).encode(), "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_post_endpoint_answers_500_to_junk(app, db, world, who):
    client = app.test_client()
    if who == "admin":
        login(client, db, world["admin"])  # a fresh second factor: step-up views run their form code too
    token = csrf_token(client, "/account" if who == "admin" else "/login")
    failures: list[str] = []
    for rule in _post_rules(app):
        if rule.endpoint == "auth.logout":
            continue  # ends the session this walk runs in; it has its own tests
        path = _path_for(rule, world["ids"])
        payloads = _junk_payloads(_field_names(client, rule, path))
        for data in payloads[:2] if rule.endpoint in READS_NO_FIELD else payloads:
            response = client.post(path, data={"csrf_token": token, **data})
            response.get_data()  # drain streamed answers (CSV exports) before the next request
            if response.status_code >= 500:
                failures.append(f"{path} {sorted(data)[:3]}={str(next(iter(data.values()), ''))[:20]!r}: {response.status_code}")
        for body, content_type in RAW_BODIES:
            response = client.post(path, data=body, content_type=content_type, headers={"X-CSRFToken": token})
            response.get_data()
            if response.status_code >= 500:
                failures.append(f"{path} raw {content_type} {body[:20]!r}: {response.status_code}")
        # The same junk in the query string of the POST.
        response = client.post(path + "?next=%ff%00&page=-9&before=%ff", data={"csrf_token": token})
        response.get_data()
        if response.status_code >= 500:
            failures.append(f"{path} query junk: {response.status_code}")
    assert failures == []
    # Mass assignment: no field could make the victim an admin or set a password hash.
    db.expire_all()
    assert "admin" not in db.scalars(select(UserRole.role).where(UserRole.user_id == world["victim"].id)).all()
    assert db.scalar(select(User.password_hash).where(User.id == world["victim"].id)) not in ("$argon2id$", "x")
