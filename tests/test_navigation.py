"""The main navigation: each app role sees a link to every area it may open, and only those."""

from __future__ import annotations

import re

import pytest

from tests.factories import login, make_user

NAV_RE = re.compile(r'<nav class="nav"[^>]*aria-label="Main">(.*?)</nav>', re.S)
LINK_RE = re.compile(r'<a href="([^"]+)"[^>]*>([^<]+)</a>')

EVERYONE = {"Home": "/", "Access": "/grants/", "Policies": "/policies/", "Credentials": "/vault/"}
AREAS = {
    "People": "/people/", "Accounts": "/accounts/", "Reports": "/reports/", "Offboarding": "/offboarding/",
}


@pytest.fixture
def app_overrides():
    """An unsealed vault, so the Credentials link opens."""
    from govern.crypto.keyring import Keyring

    return {"VAULT_KEYRING_JSON": Keyring.generate().to_json()}


@pytest.mark.parametrize(("roles", "expected"), [
    ((), EVERYONE),
    (("manager",), EVERYONE | AREAS | {"Reviews": "/reviews/mine"}),
    (("hr",), EVERYONE | AREAS),
    (("it",), EVERYONE | AREAS | {"Rotation": "/rotation/", "API tokens": "/admin/api-tokens",
                                   "Connectors": "/connectors/"}),
    (("auditor",), EVERYONE | AREAS | {"Reviews": "/reviews/", "Users": "/admin/users/", "Audit trail": "/audit/",
                                        "Rotation": "/rotation/", "Connectors": "/connectors/"}),
    (("admin",), EVERYONE | AREAS | {"Reviews": "/reviews/", "Users": "/admin/users/", "Audit trail": "/audit/",
                                      "Jobs": "/jobs/", "Rotation": "/rotation/", "Connectors": "/connectors/", "Webhooks": "/admin/webhooks/",
                                      "API tokens": "/admin/api-tokens"}),
], ids=["staff", "manager", "hr", "it", "auditor", "admin"])
def test_navigation_by_role(app, db, kit, roles, expected):
    user = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, user)
    page = client.get("/").get_data(as_text=True)
    nav = NAV_RE.search(page)
    assert nav, "no main navigation on the home page"
    links = {label.strip(): href for href, label in LINK_RE.findall(nav.group(1))}
    assert links == expected
    # No link leads to a refusal: every area the menu offers opens for this user.
    for label, href in links.items():
        assert client.get(href).status_code == 200, f"{label} ({href}) is refused to {roles or 'staff'}"


def test_the_current_area_is_marked(app, db, kit):
    user = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, user)
    for path, label in (("/people/", "People"), ("/accounts/roles", "Accounts"), ("/reports/access", "Reports"),
                        ("/policies/report", "Reports"), ("/policies/", "Policies")):
        nav = NAV_RE.search(client.get(path).get_data(as_text=True))
        assert nav is not None
        current = re.findall(r'<a href="[^"]+" class="active" aria-current="page">([^<]+)</a>', nav.group(1))
        assert current == [label], path


def test_a_role_given_during_a_session_shows_in_the_navigation_at_once(app, db, kit):
    from govern.auth.models import UserRole

    user = make_user(db, kit)
    client = app.test_client()
    login(client, db, user)
    first = NAV_RE.search(client.get("/").get_data(as_text=True))
    assert first is not None and "Jobs" not in first.group(1)

    db.add(UserRole(user_id=user.user.id, role="admin"))  # written past the app, as an SQL admin would
    db.commit()
    again = NAV_RE.search(client.get("/").get_data(as_text=True))
    assert again is not None
    assert {label.strip() for _href, label in LINK_RE.findall(again.group(1))} >= {"Users", "Audit trail", "Jobs"}
