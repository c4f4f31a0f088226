"""Deny by default: every endpoint declares a permission from the one policy table."""

from __future__ import annotations

import re

import pytest
from werkzeug.routing import Rule

from govern import web
from govern.auth.models import APP_ROLES
from tests.factories import csrf_token, login, make_user

#: Reviewed list of endpoints anyone may reach without signing in.
PUBLIC_ENDPOINTS = {
    "static", "home.healthz", "auth.login", "auth.login_code", "auth.login_passkey", "auth.setup", "auth.setup_password",
    "auth.setup_authenticator",
    # A person without a login accepts a policy with an emailed one-time link (govern.policies.links).
    "policies.acknowledge", "policies.acknowledge_read", "policies.acknowledge_accept", "policies.acknowledged",
    # The API's description and reference page, and revoking a leaked API token by its value.
    "api.openapi", "api.reference", "api.revoke_by_value",
    # Single sign-on: leaving for the identity provider and coming back with a code (govern.sso).
    "sso.start", "sso.callback", "sso.signed_out",
}


@pytest.fixture
def app_overrides():
    """An unsealed vault, so vault endpoints answer by their permission (sealed, they answer 503)."""
    from govern.crypto.keyring import Keyring

    return {"VAULT_KEYRING_JSON": Keyring.generate().to_json()}


def _rules(app) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules()]


def test_every_endpoint_declares_a_known_permission(app):
    missing = [r.endpoint for r in _rules(app) if web.view_permission(app, r.endpoint) is None]
    assert missing == [], f"endpoints without @permission: {missing}"
    for rule in _rules(app):
        assert web.view_permission(app, rule.endpoint) in web.POLICY


def test_public_endpoints_are_exactly_the_reviewed_list(app):
    public = {r.endpoint for r in _rules(app) if web.view_permission(app, r.endpoint) == web.PUBLIC}
    assert public == PUBLIC_ENDPOINTS


def test_an_endpoint_without_a_permission_is_refused_at_runtime(app):
    @app.route("/undeclared")
    def undeclared():
        return "should never be served"

    response = app.test_client().get("/undeclared")
    assert response.status_code == 403
    assert "should never be served" not in response.get_data(as_text=True)


def _concrete_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "999999" if "int" in m.group(0) else "x", rule.rule)


def _matrix(app):
    """(role, endpoint, method, path, allowed) for every non-public, session-authenticated rule,
    generated from POLICY (bearer-token endpoints have their own test below)."""
    cells = []
    for rule in _rules(app):
        name = web.view_permission(app, rule.endpoint)
        if name == web.PUBLIC or _is_bearer(app, rule):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for role in ("staff", *APP_ROLES):
                allowed = bool({"*", "staff", role} & web.POLICY[name])  # every user is also staff
                cells.append((role, rule.endpoint, method, _concrete_path(rule), allowed))
    return cells


def test_the_matrix_covers_every_protected_endpoint(app):
    endpoints = {cell[1] for cell in _matrix(app)} | {r.endpoint for r in _bearer_rules(app)}
    protected = {r.endpoint for r in _rules(app) if web.view_permission(app, r.endpoint) != web.PUBLIC}
    assert endpoints == protected


def _is_bearer(app, rule: Rule) -> bool:
    """Called with a bearer token: a machine permission (SCIM), or any endpoint of a token blueprint (the API)."""
    return web.view_permission(app, rule.endpoint) in web.BEARER_AUTH or \
        rule.endpoint.partition(".")[0] in web.BEARER_BLUEPRINTS


def _bearer_rules(app) -> list[Rule]:
    return [r for r in _rules(app) if _is_bearer(app, r) and web.view_permission(app, r.endpoint) != web.PUBLIC]


def test_bearer_permissions_are_for_machine_roles_only():
    """A bearer permission is granted to no app role, so a session can never satisfy it."""
    assert web.BEARER_AUTH
    for name in web.BEARER_AUTH:
        assert not ({"*", "staff", *APP_ROLES} & web.POLICY[name]), name


@pytest.mark.parametrize("role", [None, "admin"])
def test_bearer_endpoints_refuse_sessions_and_anonymous_callers(app, db, kit, role):
    """Without a valid token every bearer endpoint answers 401 (never a redirect, never CSRF's 400)."""
    client = app.test_client()
    if role:
        login(client, db, make_user(db, kit, roles=(role,)))
    rules = _bearer_rules(app)
    assert rules
    for rule in rules:
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(_concrete_path(rule), method=method)
            assert response.status_code == 401, (role, rule.endpoint, method, response.status_code)


@pytest.mark.parametrize("role", ["staff", *APP_ROLES])
def test_role_matrix_from_the_policy_table(app, db, kit, role):
    """Each role gets 403 exactly where the policy table says no, and never a 500."""
    who = make_user(db, kit, roles=() if role == "staff" else (role,))
    client = app.test_client()
    login(client, db, who)
    token = csrf_token(client, "/account")
    for cell_role, endpoint, method, path, allowed in _matrix(app):
        if cell_role != role or endpoint == "auth.logout":  # logout has its own tests
            continue
        response = client.open(path, method=method, data={"csrf_token": token} if method == "POST" else None)
        response.close()  # as a WSGI server does: a streamed export ends its request context now
        assert response.status_code < 500, (role, endpoint, method, response.status_code)
        if allowed:
            assert response.status_code != 403, (role, endpoint, method)
        elif getattr(app.view_functions[endpoint], web.KNOWN_OBJECT_ATTRIBUTE, None):
            assert response.status_code == 404, (role, endpoint, method, response.status_code)  # path names no object
        else:
            assert response.status_code == 403, (role, endpoint, method, response.status_code)


def test_anonymous_visitors_are_sent_to_login_or_refused(app):
    client = app.test_client()
    for role, endpoint, method, path, _ in _matrix(app):
        if role != "staff":
            continue
        response = client.open(path, method=method)
        if method == "GET":
            assert response.status_code == 302 and "/login" in response.headers["Location"], endpoint
        else:
            assert response.status_code in (400, 401), endpoint  # CSRF or sign-in needed


def test_denials_are_audited(app, db, kit):
    from sqlalchemy import select

    from govern.audit.models import AuditEvent

    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    assert client.get("/audit/").status_code == 403
    denied = db.scalars(select(AuditEvent).where(AuditEvent.action == "authz.denied")).all()
    assert denied and denied[-1].actor_user_id == who.id and denied[-1].outcome == "denied"



def test_read_only_roles_hold_read_permissions_only(app):
    """Auditors are read-only: every permission that names them only reads."""
    assert "auditor" in web.READ_ONLY_ROLES
    held = {name for name, roles in web.POLICY.items() if roles & web.READ_ONLY_ROLES}
    assert {"audit.read", "reviews.read", "offboarding.evidence"} <= held
    assert sorted(name for name in held if not web.is_read_permission(name)) == []
    assert not web.is_read_permission("reviews.manage") and not web.is_read_permission("offboarding.manage")


def test_no_read_permission_guards_a_change_of_state(app):
    """A read permission's POST endpoints are exports (they record who exported); nothing else writes."""
    posts = {r.endpoint for r in _rules(app) if {"POST", "PUT", "PATCH", "DELETE"} & set(r.methods or ())
             and web.is_read_permission(web.view_permission(app, r.endpoint) or "")}
    assert posts and all("export" in endpoint or endpoint.endswith(("_csv", "_json")) for endpoint in posts), posts
