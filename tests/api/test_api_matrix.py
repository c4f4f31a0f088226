"""The API's role and scope matrix, walked over the URL map: every /api/v1 endpoint, every role, a token
holding every scope the role allows and one holding none of the endpoint's. 403 exactly where POLICY or
the scope says no; never a 500; every endpoint names a scope."""

from __future__ import annotations

import re
from typing import Any

import pytest

from govern import web
from govern.api.auth import SCOPE_ATTRIBUTE
from govern.api.spec import ANY_SCOPE
from govern.auth import apitokens
from govern.auth.models import APP_ROLES
from tests.api.helpers import Api, personal_token
from tests.factories import make_user

#: Changes the token itself: tested on its own (tests/api/test_tokens.py).
SKIPPED = {"api.revoke_current"}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    from govern.crypto.keyring import Keyring

    return {"VAULT_KEYRING_JSON": Keyring.generate().to_json(), "API_RATE_LIMIT": 100_000}


def _api_rules(app: Any) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint.startswith("api.")]


def _path(rule: Any) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "999999" if "int" in m.group(0) else "x", rule.rule)


def _scopes_for(roles: frozenset[str]) -> list[str]:
    return [name for name, scope in apitokens.SCOPES.items() if not scope.service_only
            and any(web.roles_allow(roles | {"staff"}, p) for p in scope.permissions)]


def test_every_api_endpoint_names_a_permission_and_a_scope(app) -> None:
    for rule in _api_rules(app):
        view = app.view_functions[rule.endpoint]
        assert web.view_permission(app, rule.endpoint) in web.POLICY, rule.endpoint
        if web.view_permission(app, rule.endpoint) != web.PUBLIC:
            scope = getattr(view, SCOPE_ATTRIBUTE, None)
            assert scope == ANY_SCOPE or scope in apitokens.SCOPES, rule.endpoint


@pytest.mark.parametrize("role", ["staff", *APP_ROLES])
def test_api_matrix_from_the_policy_table_and_the_scopes(app, db, kit, role) -> None:
    who = make_user(db, kit, roles=() if role == "staff" else (role,))
    db.commit()
    roles = frozenset() if role == "staff" else frozenset({role})
    scopes = _scopes_for(roles)
    full = Api(app, personal_token(db, who, *scopes))
    for rule in _api_rules(app):
        name = web.view_permission(app, rule.endpoint)
        if name == web.PUBLIC or rule.endpoint in SKIPPED:
            continue
        scope = getattr(app.view_functions[rule.endpoint], SCOPE_ATTRIBUTE)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = {} if method in ("POST", "PATCH", "PUT") else None
            answer = full.call(method, _path(rule).removeprefix("/api/v1"), json=body)
            assert answer.status_code < 500, (role, rule.endpoint, method, answer.status_code)
            assert answer.mimetype in ("application/json", "application/problem+json"), (rule.endpoint, answer.mimetype)
            allowed = web.roles_allow(roles | {"staff"}, name) and (scope == ANY_SCOPE or scope in scopes)
            if allowed:
                assert answer.status_code != 403, (role, rule.endpoint, method, answer.get_json())
            else:
                assert answer.status_code == 403, (role, rule.endpoint, method, answer.status_code)


def test_a_token_without_the_endpoints_scope_is_refused_whatever_its_roles(app, db, kit) -> None:
    admin = make_user(db, kit, roles=("admin", "hr", "it", "auditor", "manager"))
    db.commit()
    for rule in _api_rules(app):
        scope = getattr(app.view_functions[rule.endpoint], SCOPE_ATTRIBUTE, None)
        if web.view_permission(app, rule.endpoint) == web.PUBLIC or scope in (ANY_SCOPE, None):
            continue
        others = [s for s in _scopes_for(admin.user.roles) if s != scope][:1]
        api = Api(app, personal_token(db, admin, *others))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = api.call(method, _path(rule).removeprefix("/api/v1"),
                              json={} if method in ("POST", "PATCH") else None)
            assert answer.status_code == 403, (rule.endpoint, method, answer.status_code)


def test_an_api_view_without_a_scope_or_a_permission_is_refused(app, db, kit) -> None:
    admin = make_user(db, kit, roles=("admin",))
    db.commit()
    api = Api(app, personal_token(db, admin, *_scopes_for(admin.user.roles)))

    @web.permission("staff")
    def scopeless() -> str:
        return "should never be served"

    def undeclared() -> str:
        return "should never be served"

    app.add_url_rule("/api/v1/scopeless", endpoint="api.scopeless", view_func=scopeless)
    app.add_url_rule("/api/v1/undeclared", endpoint="api.undeclared", view_func=undeclared)
    for path in ("/scopeless", "/undeclared"):
        answer = api.get(path)
        assert answer.status_code == 403 and answer.mimetype == "application/problem+json", path
        assert "never be served" not in answer.get_data(as_text=True)
