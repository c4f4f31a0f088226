"""The pages of API tokens: one's own tokens, and the service tokens admins and IT manage."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from govern import activity
from govern.audit.models import AuditEvent
from govern.auth.apitokens import SCOPES
from govern.auth.models import ApiToken, WebSession
from govern.db import utcnow
from govern.web import POLICY
from tests.api.helpers import Api
from tests.factories import Company, csrf_from

TOKEN_RE = re.compile(r'<code id="api-token">([^<]+)</code>')
SCOPE_BOX_RE = re.compile(r'name="scopes"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="scopes"')


@pytest.fixture
def company(company: Company) -> Company:
    """Plain staff, HR, an admin, two IT users, the login an integration runs as, its next owner, an account."""
    company.add_user("staff")
    company.add_staff("hr", "admin", "it")
    company.add_user("it2", "it")
    company.add_user("integrator", "hr", "it", full_name="Ines Integrator")
    company.add_user("successor", "hr", "it", full_name="Sam Successor")
    company.add_account("account", display_name="Acme Instagram")
    return company.commit()


def _post(client: FlaskClient, page: str, path: str, data: dict[str, Any]) -> Any:
    """POST ``data`` with the CSRF token of ``page``."""
    html = client.get(page).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_from(html), **data})


def _create_mine(client: FlaskClient, **data: Any) -> Any:
    return _post(client, "/account/api-tokens", "/account/api-tokens",
                 {"name": "report script", "expires_in": "30", **data})


def _create_service(client: FlaskClient, **data: Any) -> Any:
    return _post(client, "/admin/api-tokens", "/admin/api-tokens", {"name": "HR sync", "expires_in": "90", **data})


def _shown_token(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:3000]
    html = response.get_data(as_text=True)
    assert "will not show it again" in html
    match = TOKEN_RE.search(html)
    assert match, "no token on the page"
    return match.group(1)


def _offered_scopes(html: str) -> set[str]:
    return {a or b for a, b in SCOPE_BOX_RE.findall(html)}


def _allowed(roles: set[str]) -> set[str]:
    """The scopes POLICY lets ``roles`` hold on a personal token."""
    return {name for name, scope in SCOPES.items()
            if not scope.service_only and any(POLICY[p] & roles for p in scope.permissions)}


def _token(db: Any, name: str) -> ApiToken:
    db.expire_all()
    return db.scalars(select(ApiToken).where(ApiToken.name == name)).one()


def _stale_mfa(db: Any, who: Any) -> None:
    db.execute(update(WebSession).where(WebSession.user_id == who.id).values(mfa_verified_at=utcnow() - timedelta(minutes=6)))
    db.commit()


# --- one's own tokens -------------------------------------------------------------------------------------


def test_a_personal_token_made_on_the_page_calls_the_api(app, db, company):
    client = company.client_for(company.hr)
    response = _create_mine(client, scopes=["people:read"])
    text = _shown_token(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert text.startswith("govp_")
    listed = Api(app, text).get("/people")
    assert listed.status_code == 200, listed.json
    row = _token(db, "report script")
    assert row.kind == "personal" and row.user_id == company.hr.id and row.last_used_at is not None
    assert row.expires_at - utcnow() > timedelta(days=29)


def test_the_token_is_shown_once_and_never_on_the_list(app, db, company):
    client = company.client_for(company.hr)
    text = _shown_token(_create_mine(client, scopes=["people:read"]))
    listing = client.get("/account/api-tokens")
    html = listing.get_data(as_text=True)
    row = _token(db, "report script")
    assert listing.status_code == 200 and "report script" in html and row.prefix in html
    assert text not in html
    assert "will not show it again" not in client.get("/account").get_data(as_text=True)
    # Nor kept anywhere else: not in the audit trail, not in the server-side session.
    assert all(text not in (e.details_json or "") for e in db.scalars(select(AuditEvent)))
    assert all(text not in data for data in db.scalars(select(WebSession.data)))


def test_the_page_offers_only_the_scopes_of_ones_roles(app, db, company):
    staff_page = company.client_for(company.staff).get("/account/api-tokens").get_data(as_text=True)
    hr_page = company.client_for(company.hr).get("/account/api-tokens").get_data(as_text=True)
    it_page = company.client_for(company.it).get("/account/api-tokens").get_data(as_text=True)
    assert _offered_scopes(staff_page) == _allowed({"staff"}) and "policies:read" in _offered_scopes(staff_page)
    assert _offered_scopes(hr_page) == _allowed({"staff", "hr"})
    assert {"people:read", "people:write", "offboarding:write"} <= _offered_scopes(hr_page)
    assert "people:read" not in _offered_scopes(staff_page) and "audit:read" not in _offered_scopes(hr_page)
    # Never a reveal: not even IT get one on a personal token.
    assert "secrets:reveal" not in _offered_scopes(it_page) | _offered_scopes(hr_page)


def test_a_scope_beyond_ones_roles_is_refused_when_posted_anyway(app, db, company):
    staff = company.client_for(company.staff)
    refused = _create_mine(staff, scopes=["policies:read", "people:read"])
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "Your roles do not allow people:read" in html and 'id="api-token"' not in html
    it = company.client_for(company.it)
    reveal = _create_mine(it, scopes=["secrets:reveal"])
    assert reveal.status_code == 400 and "never reveal secrets" in reveal.get_data(as_text=True)
    unknown = _create_mine(staff, scopes=["root:all"])
    assert unknown.status_code == 400 and "Unknown scopes" in unknown.get_data(as_text=True)
    bad_expiry = _create_mine(staff, scopes=["policies:read"], expires_in="4000")
    assert bad_expiry.status_code == 400
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "report script")) is None


def test_revoking_ones_token_makes_the_api_answer_401(app, db, company):
    client = company.client_for(company.hr)
    text = _shown_token(_create_mine(client, scopes=["people:read"]))
    row = _token(db, "report script")
    # Someone else cannot revoke it: it does not exist for them.
    other = company.client_for(company.admin)
    assert _post(other, "/account/api-tokens", f"/account/api-tokens/{row.id}/revoke", {}).status_code == 404
    assert Api(app, text).get("/people").status_code == 200
    response = _post(client, "/account/api-tokens", f"/account/api-tokens/{row.id}/revoke", {})
    assert response.status_code == 302 and response.headers["Location"] == "/account/api-tokens"
    refused = Api(app, text).get("/people")
    assert refused.status_code == 401 and refused.json["detail"] == "The token was revoked."
    assert _token(db, "report script").revoked_by_id == company.hr.id
    assert "revoked" in client.get("/account/api-tokens").get_data(as_text=True)


def test_creating_a_token_needs_a_fresh_second_factor(app, db, company):
    client = company.client_for(company.hr)
    page = client.get("/account/api-tokens").get_data(as_text=True)
    _stale_mfa(db, company.hr)
    assert "Confirm your code" in client.get("/account/api-tokens").get_data(as_text=True)
    response = client.post("/account/api-tokens", data={"csrf_token": csrf_from(page), "name": "late",
                                                         "scopes": ["people:read"], "expires_in": "30"})
    assert response.status_code == 401
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "late")) is None


# --- service tokens ---------------------------------------------------------------------------------------


def test_an_admin_creates_a_service_token_for_an_owner(app, db, company):
    client = company.client_for(company.admin)
    text = _shown_token(_create_service(client, owner=company.integrator.email, roles=["hr"], scopes=["people:read"]))
    assert text.startswith("govs_")
    row = _token(db, "HR sync")
    assert row.kind == "service" and row.owner_person_id == company.integrator.user.person_id
    assert row.user_id == company.integrator.id and row.created_by_id == company.admin.id
    assert Api(app, text).get("/people").status_code == 200
    listing = client.get("/admin/api-tokens").get_data(as_text=True)
    assert "HR sync" in listing and "Ines Integrator" in listing and row.prefix in listing and text not in listing
    # The owner must exist and hold the roles the token uses.
    unknown = _create_service(client, name="ghost", owner="nobody@example.com", roles=["hr"], scopes=["people:read"])
    assert unknown.status_code == 400 and "No one in the directory" in unknown.get_data(as_text=True)
    beyond = _create_service(client, name="too much", owner=company.integrator.email, roles=["admin"],
                             scopes=["people:read"])
    assert beyond.status_code == 400 and "does not hold admin" in beyond.get_data(as_text=True)
    # An admin is never offered a reveal, and it is refused when posted anyway.
    assert "secrets:reveal" not in _offered_scopes(listing)
    reveal = _create_service(client, name="reveal", owner=company.integrator.email, roles=["it"],
                             scopes=["secrets:reveal"], account_ids=[str(company.account.id)])
    assert reveal.status_code in (302, 400) and 'id="api-token"' not in reveal.get_data(as_text=True)
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "reveal")) is None


def test_a_reveal_token_waits_for_a_second_it_user(app, db, company):
    it = company.client_for(company.it)
    page = it.get("/admin/api-tokens").get_data(as_text=True)
    assert "secrets:reveal" in _offered_scopes(page) and "Acme Instagram" in page
    text = _shown_token(_create_service(it, name="Deploy bot", owner=company.integrator.email, roles=["it"],
                                        scopes=["secrets:reveal"], account_ids=[str(company.account.id)]))
    row = _token(db, "Deploy bot")
    assert "awaiting approval" in it.get("/admin/api-tokens").get_data(as_text=True)
    assert Api(app, text).get("/people").status_code == 401
    # The IT user who created it cannot approve it (and is offered no button).
    assert f"/admin/api-tokens/{row.id}/approve" not in it.get("/admin/api-tokens").get_data(as_text=True)
    response = _post(it, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/approve", {})
    assert response.status_code == 302
    assert "A second IT user approves" in it.get("/admin/api-tokens").get_data(as_text=True)
    assert _token(db, "Deploy bot").approved_at is None
    # A second IT user can.
    it2 = company.client_for(company.it2)
    assert f"/admin/api-tokens/{row.id}/approve" in it2.get("/admin/api-tokens").get_data(as_text=True)
    response = _post(it2, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/approve", {})
    assert response.status_code == 302
    approved = _token(db, "Deploy bot")
    assert approved.approved_by_id == company.it2.id
    listing = it2.get("/admin/api-tokens").get_data(as_text=True)
    assert "awaiting approval" not in listing and "Acme Instagram" in listing
    assert {"api_token.created", "api_token.approved"} <= set(db.scalars(
        select(AuditEvent.action).where(AuditEvent.target_type == "api_token", AuditEvent.target_id == str(row.id))))


def test_an_admin_hands_a_service_token_over_and_it_is_audited(app, db, company):
    client = company.client_for(company.admin)
    text = _shown_token(_create_service(client, owner=company.integrator.email, roles=["hr"], scopes=["people:read"]))
    row = _token(db, "HR sync")
    response = _post(client, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/owner",
                     {"owner": company.successor.email})
    assert response.status_code == 302
    assert "now belongs to Sam Successor" in client.get("/admin/api-tokens").get_data(as_text=True)
    moved = _token(db, "HR sync")
    assert moved.owner_person_id == company.successor.user.person_id and moved.user_id == company.successor.id
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.owner_changed")).one()
    assert event.target_id == str(row.id) and event.actor_user_id == company.admin.id
    sentence = activity.describe(db, [event])[event.id].text
    assert "gave the API token “HR sync”" in sentence and row.prefix in sentence
    assert Api(app, text).get("/people").status_code == 200
    # Nobody by that email: refused with a sentence, nothing changes.
    _post(client, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/owner", {"owner": "nobody@example.com"})
    assert "No one in the directory" in client.get("/admin/api-tokens").get_data(as_text=True)
    assert _token(db, "HR sync").user_id == company.successor.id
    # IT may revoke a service token; revoking stops it.
    it = company.client_for(company.it)
    assert _post(it, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/revoke", {}).status_code == 302
    assert Api(app, text).get("/people").status_code == 401


def test_personal_tokens_are_not_managed_on_the_admin_page(app, db, company):
    hr = company.client_for(company.hr)
    _shown_token(_create_mine(hr, scopes=["people:read"]))
    row = _token(db, "report script")
    admin = company.client_for(company.admin)
    assert "report script" not in admin.get("/admin/api-tokens").get_data(as_text=True)
    assert _post(admin, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/revoke", {}).status_code == 404
    assert _token(db, "report script").revoked_at is None


@pytest.mark.parametrize("who", ["staff", "hr"])
def test_the_admin_page_is_for_admins_and_it_only(app, db, company, who):
    client = company.client_for(getattr(company, who))
    assert client.get("/admin/api-tokens").status_code == 403
    assert client.get("/account/api-tokens").status_code == 200


def test_service_token_changes_need_a_fresh_second_factor(app, db, company):
    client = company.client_for(company.admin)
    page = client.get("/admin/api-tokens").get_data(as_text=True)
    _stale_mfa(db, company.admin)
    response = client.post("/admin/api-tokens", data={
        "csrf_token": csrf_from(page), "name": "late", "owner": company.integrator.email, "roles": ["hr"],
        "scopes": ["people:read"], "expires_in": "30"})
    assert response.status_code == 401
    assert db.scalar(select(ApiToken.id).where(ApiToken.name == "late")) is None


@pytest.mark.parametrize("how", ["hand over", "revoke"])
def test_handing_over_or_revoking_closes_the_leavers_checklist_item(app, db, company, how):
    from govern.offboarding.models import OffboardingItem
    from tests.factories import offboard

    client = company.client_for(company.admin)
    _shown_token(_create_service(client, owner=company.integrator.email, roles=["hr"], scopes=["people:read"]))
    row = _token(db, "HR sync")
    offboard(db, company.integrator.user.person, "leaving")
    db.commit()
    item = db.scalars(select(OffboardingItem).where(OffboardingItem.ref_type == "api_token",
                                                    OffboardingItem.ref_id == row.id)).one()
    assert item.status == "open"
    if how == "hand over":
        response = _post(client, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/owner",
                         {"owner": company.successor.email})
    else:
        response = _post(client, "/admin/api-tokens", f"/admin/api-tokens/{row.id}/revoke", {})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(OffboardingItem, item.id).status != "open"
