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
from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.auth.models import User, UserRole
from govern.crypto.keyring import Keyring
from govern.policies.models import PolicyVersion
from govern.rotation.tasks import open_task
from govern.vault.versions import create_secret
from tests.factories import Company, accept_policy, csrf_token, login, make_grant, make_person, make_user

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
    return {"VAULT_KEYRING_JSON": Keyring.generate().to_json()}


@pytest.fixture
def company(company: Company) -> Company:
    """An admin, a victim login and one row of each kind the POST endpoints address."""
    company.add_staff("admin")
    company.add_user("victim")
    company.add_account("account")
    company.add_grant("grant", company.victim, company.account, status="requested")
    company.add_policy("standard")
    return company.commit()


def _ids(company: Company) -> dict[str, int]:
    """The ids the URL map's placeholders name."""
    return {"user_id": company.victim.id, "person_id": company.victim.user.person_id, "account_id": company.account.id,
            "grant_id": company.grant.id, "version_id": company.standard.id}


def _audit_count(db: Any) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_every_post_endpoint_refuses_a_request_without_a_valid_csrf_token(app, db, company):
    ids = _ids(company)
    signed_in, anonymous = app.test_client(), app.test_client()
    login(signed_in, db, company.admin)
    foreign = csrf_token(app.test_client(), "/login")  # a real token, but of another session
    before = _audit_count(db)
    checked = 0
    for rule in _post_rules(app):
        path = _path_for(rule, ids)
        # Bearer-token APIs (SCIM) take no cookie and so need no CSRF token: without a bearer
        # token, a browser session (forged request or not) gets 401 from them.
        is_bearer = web.view_permission(app, rule.endpoint) in web.BEARER_AUTH or \
            rule.endpoint.partition(".")[0] in web.BEARER_BLUEPRINTS
        for client in (signed_in, anonymous):
            for token in (None, "", "forged", foreign):
                data = {"roles": "admin", "email": "x@example.com"} | ({} if token is None else {"csrf_token": token})
                response = client.post(path, data=data)
                body = response.get_data(as_text=True)
                if is_bearer:
                    # The API's public revoke-by-value takes JSON only: a form post is a 415, nothing done.
                    expected = 415 if web.view_permission(app, rule.endpoint) == web.PUBLIC else 401
                    assert response.status_code == expected, (path, token, response.status_code)
                    continue
                assert response.status_code == 400, (path, token, response.status_code)
                assert "The form expired" in body, (path, token)
                checked += 1
    assert checked >= 4 * 2 * 20
    # Refused before any view ran: no event, no change, and the signed-in session is still alive.
    assert _audit_count(db) == before
    assert signed_in.get("/account").status_code == 200
    db.expire_all()
    assert "admin" not in db.get(User, company.victim.id).roles


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
def test_no_post_endpoint_answers_500_to_junk(app, db, company, who):
    ids = _ids(company)
    client = app.test_client()
    if who == "admin":
        login(client, db, company.admin)  # a fresh second factor: step-up views run their form code too
    token = csrf_token(client, "/account" if who == "admin" else "/login")
    failures: list[str] = []
    for rule in _post_rules(app):
        if rule.endpoint == "auth.logout":
            continue  # ends the session this walk runs in; it has its own tests
        path = _path_for(rule, ids)
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
    assert "admin" not in db.scalars(select(UserRole.role).where(UserRole.user_id == company.victim.id)).all()
    assert db.scalar(select(User.password_hash).where(User.id == company.victim.id)) not in ("$argon2id$", "x")


# --- post-redirect-get: every successful POST answers a redirect ----------------------------------

#: POST endpoints whose successful answer is a page, on purpose: a reveal shows a secret's plaintext
#: to the one who asked (each display is an audited exposure, so it is never kept to show again), and
#: an export streams a file. A preview of an uploaded file changes nothing. Everything else redirects.
RENDERS_ON_SUCCESS = {
    "vault.reveal": "reveal: the plaintext, once, to the one who asked",
    "vault.reveal_seed": "reveal of a 2FA seed",
    "rotation.show_staged": "reveal of a staged value",
    "vault_tools.generate": "JSON for the generate button; nothing is stored",
    "vault_tools.import_file": "preview of an uploaded secrets file; nothing is written",
    "directory.import_file": "preview of an uploaded HR file; nothing is written",
    "directory.export": "file download", "audit.export": "file download",
    "reports.access_csv": "file download", "reports.access_json": "file download",
    "reports.account_csv": "file download", "reports.account_json": "file download",
    "reports.person_csv": "file download", "reports.person_json": "file download",
    "api_tokens.create_mine": "a new API token's text, once, to who created it (never kept to show again)",
    "api_tokens.create_service": "a new service token's text, once, to who created it",
}


def _redirected(response: Any) -> bool:
    return response.status_code in (302, 303) and bool(response.headers.get("Location"))


def test_successful_posts_redirect_and_show_one_time_values_once(app, db, kit, company):
    """Each POST below succeeds (it writes an audit event) and answers 302/303; a value shown once
    (recovery codes, a setup secret, a SCIM token, a generated password) is on the page it
    redirects to, and only the first time."""
    admin, victim, ids = company.admin, company.victim, _ids(company)
    it = make_user(db, kit, roles=("it",))
    grantee = make_person(db, email="grantee@example.com")
    accept_policy(db, grantee, db.get(PolicyVersion, ids["version_id"]))
    requested = make_grant(db, make_person(db), db.get(Account, ids["account_id"]), "analyst", status="requested")
    keyring = app.extensions["govern.keyring"]
    with app.test_request_context():
        secret = create_secret(db, actor=it.user, keyring=keyring, account=requested.account, kind="password",
                                     label="Walk login", value="Walk-Old-Pass-1!")
        task = open_task(db, actor=it.user, secret=secret, reason="manual").task
    db.commit()
    admin_client, it_client = app.test_client(), app.test_client()
    login(admin_client, db, admin)
    login(it_client, db, it)
    due = "2030-01-31"
    cases: list[tuple[Any, str, dict[str, Any], str | None]] = [
        (admin_client, "/account/recovery-codes", {}, "recovery-codes"),
        (admin_client, "/admin/users/new", {"email": "walk.new@example.com", "full_name": "Walk New", "roles": ["it"]},
         "setup-secret"),
        (admin_client, f"/admin/users/{victim.id}/reset-mfa", {}, "setup-secret"),
        (admin_client, "/admin/scim-tokens/", {"name": "Walk IdP"}, "scim-token"),
        (it_client, f"/rotation/tasks/{task.id}/stage", {"mode": "generate"}, "generated-value"),
        (admin_client, "/people/new", {"full_name": "Walk Person", "email": "walk.person@example.com", "status": "active"}, None),
        (admin_client, "/accounts/new", {"platform": "instagram", "handle": "walkacct", "display_name": "Walk Account",
                                         "tier": "standard", "status": "active", "rotation_interval_days": "90",
                                         "max_credential_holders": "3", "min_admins": "1"}, None),
        (admin_client, f"/grants/new?account_id={ids['account_id']}",
         {"account_id": str(ids["account_id"]), "person": "grantee@example.com", "role_code": "publisher",
          "reason": "walk"}, None),
        (admin_client, f"/grants/{requested.id}/approve", {"note": "ok"}, None),
        (admin_client, "/policies/new", {"tier": "standard", "title": "Walk policy", "body_markdown": "Be nice."}, None),
        (admin_client, "/reviews/new", {"name": "Walk review", "scope_kind": "all", "due_on": due}, None),
        (admin_client, "/offboarding/new", {"person": "walk.person@example.com", "effective_at": "2030-01-01T10:00"}, None),
    ]
    for client, path, data, shown_id in cases:
        before = _audit_count(db)
        token = csrf_token(client, "/account")
        response = client.post(path, data={"csrf_token": token, **data})
        assert _audit_count(db) > before, (path, response.status_code, response.get_data(as_text=True)[:3000])
        assert _redirected(response), (path, response.status_code)
        if shown_id is not None:
            page = client.get(response.headers["Location"])
            assert page.status_code == 200 and f'id="{shown_id}"' in page.get_data(as_text=True), path
            again = client.get(response.headers["Location"])
            assert f'id="{shown_id}"' not in again.get_data(as_text=True), f"{path}: shown twice"
    # And no POST endpoint outside the reviewed list renders its success: the list names real endpoints.
    endpoints = {r.endpoint for r in _post_rules(app)}
    assert set(RENDERS_ON_SUCCESS) <= endpoints, set(RENDERS_ON_SUCCESS) - endpoints
