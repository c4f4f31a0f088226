"""Policy pages: read, publish (admins), accept (everyone), the home page list, the report."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.policies.models import Acknowledgement, PolicyVersion
from tests.factories import (
    accept_policy,
    csrf_token,
    make_account,
    make_grant,
    make_person,
    post,
    publish_policy,
    signed_in,
)
from tests.sql_capture import statements

XSS_BODY = "# Charter\n\n<script>alert('pwned')</script>\n\n[click me](javascript:alert(1)) and [ok](https://acme.example/rules)"


def _publish(client, **fields):
    data = {"tier": "standard", "title": "Social media policy", "body_markdown": "Be kind.", **fields}
    return post(client, "/policies/new", data, token_page="/policies/new")


def test_an_admin_publishes_versions_numbered_per_tier(app, db, kit):
    admin, client = signed_in(app, db, kit, "admin")
    assert _publish(client).status_code == 302
    assert _publish(client, tier="privileged", title="Owners and admins").status_code == 302
    response = _publish(client, body_markdown="Be kinder.")
    assert response.status_code == 302
    latest = db.scalar(select(PolicyVersion).where(PolicyVersion.tier == "standard").order_by(PolicyVersion.version.desc()))
    assert latest.version == 2 and latest.body_markdown == "Be kinder." and latest.published_by_id == admin.id
    assert response.headers["Location"].endswith(f"/policies/{latest.id}")
    page = client.get("/policies/").get_data(as_text=True)
    assert "Standard tier" in page and "Privileged tier" in page and page.count("current") >= 2 and "replaced" in page
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "policy.published")) == 3


def test_the_publish_form_starts_from_the_current_text_of_a_tier(app, db, kit):
    publish_policy(db, "privileged", body="Owners keep recovery codes offline.")
    db.commit()
    _, client = signed_in(app, db, kit, "admin")
    page = client.get("/policies/new?tier=privileged").get_data(as_text=True)
    assert "Owners keep recovery codes offline." in page and 'value="privileged"' in page
    assert client.get("/policies/new?tier=%3Cscript%3E").status_code == 200


@pytest.mark.parametrize("fields", [
    {"tier": "Not A Tier"},
    {"tier": "a"},
    {"tier": "x" * 40},
    {"title": ""},
    {"title": "t" * 300},
    {"body_markdown": ""},
    {"body_markdown": "   "},
])
def test_bad_input_is_shown_on_the_form_not_a_500(app, db, kit, fields):
    _, client = signed_in(app, db, kit, "admin")
    response = _publish(client, **fields)
    assert response.status_code == 200
    assert 'class="error"' in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(PolicyVersion)) == 0


def test_the_policy_is_rendered_safely(app, db, kit):
    _, client = signed_in(app, db, kit, "admin")
    _publish(client, body_markdown=XSS_BODY)
    version = db.scalar(select(PolicyVersion))
    page = client.get(f"/policies/{version.id}").get_data(as_text=True)
    assert "<h2>Charter</h2>" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "javascript:" not in page.lower().replace("[click me](javascript:alert(1))", "")
    assert 'href="javascript' not in page.lower()
    assert '<a href="https://acme.example/rules">ok</a>' in page


@pytest.mark.parametrize("role", ["staff", "manager", "hr", "it", "auditor"])
def test_only_admins_publish(app, db, kit, role):
    _, client = signed_in(app, db, kit, *(() if role == "staff" else (role,)))
    assert client.get("/policies/new").status_code == 403
    token = csrf_token(client, "/account")
    response = client.post("/policies/new", data={"csrf_token": token, "tier": "standard", "title": "x", "body_markdown": "y"})
    assert response.status_code == 403
    assert db.scalar(select(func.count()).select_from(PolicyVersion)) == 0
    assert client.get("/policies/").status_code == 200  # everyone reads the policy


def test_staff_accept_the_current_version_once(app, db, kit):
    version = publish_policy(db, "standard", body="Be kind.")
    db.commit()
    who, client = signed_in(app, db, kit)
    page = client.get(f"/policies/{version.id}").get_data(as_text=True)
    assert "I accept version 1" in page
    response = post(client, f"/policies/{version.id}/accept", {}, token_page=f"/policies/{version.id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/policies/{version.id}")
    response = post(client, f"/policies/{version.id}/accept", {}, token_page=f"/policies/{version.id}", follow_redirects=True)
    assert "You had already accepted this version." in response.get_data(as_text=True)
    acks = db.scalars(select(Acknowledgement)).all()
    assert [(a.person_id, a.policy_version_id) for a in acks] == [(who.user.person_id, version.id)]
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "policy.accepted")).all()
    assert len(events) == 1 and events[0].actor_user_id == who.id
    page = client.get(f"/policies/{version.id}").get_data(as_text=True)
    assert "You accepted this version on" in page and "I accept version" not in page


def test_a_replaced_version_cannot_be_accepted(app, db, kit):
    old = publish_policy(db, "standard")
    current = publish_policy(db, "standard")
    db.commit()
    _, client = signed_in(app, db, kit)
    page = client.get(f"/policies/{old.id}").get_data(as_text=True)
    assert "I accept" not in page and f"/policies/{current.id}" in page
    response = post(client, f"/policies/{old.id}/accept", {}, token_page="/policies/", follow_redirects=True)
    assert "was replaced; accept the current version (version 2) instead" in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Acknowledgement)) == 0


def test_unknown_versions_are_404(app, db, kit):
    _, client = signed_in(app, db, kit)
    assert client.get("/policies/999999").status_code == 404
    assert post(client, "/policies/999999/accept", {}).status_code == 404


def test_accept_redirects_only_to_local_pages(app, db, kit):
    version = publish_policy(db, "standard")
    db.commit()
    _, client = signed_in(app, db, kit)
    response = post(client, f"/policies/{version.id}/accept", {"next": "https://evil.example/"}, token_page="/policies/")
    assert response.status_code == 302 and "evil" not in response.headers["Location"]


def test_the_home_page_lists_policies_to_accept(app, db, kit):
    standard, privileged = publish_policy(db, "standard"), publish_policy(db, "privileged")
    who, client = signed_in(app, db, kit)
    page = client.get("/").get_data(as_text=True)
    assert "Policies to accept" in page and f"/policies/{standard.id}" in page and f"/policies/{privileged.id}" not in page
    make_grant(db, who.user.person, make_account(db), "admin", status="requested")
    db.commit()
    page = client.get("/").get_data(as_text=True)
    assert f"/policies/{standard.id}" in page and f"/policies/{privileged.id}" in page
    post(client, f"/policies/{standard.id}/accept", {}, token_page="/")
    post(client, f"/policies/{privileged.id}/accept", {}, token_page="/")
    assert "Policies to accept" not in client.get("/").get_data(as_text=True)


# --- the report ----------------------------------------------------------------------------------------


@pytest.fixture
def company(company):
    """Acme Instagram's holders under the standard policy: Nina has not accepted it, Dora has, and a
    holder whose name is a spreadsheet formula has not."""
    company.add_policy("standard")
    company.add_account("account", display_name="Acme Instagram")
    company.add_person("nina", full_name="Nina Notyet", department="Sales")
    company.add_grant("nina_publisher", company.nina, company.account, "publisher")
    company.add_person("dora", full_name="Dora Done")
    company.add_grant("dora_publisher", company.dora, company.account, "publisher")
    accept_policy(company.db, company.dora, company.standard)
    company.add_person("formula", full_name="=HYPERLINK(\"http://evil\")")
    company.add_grant("formula_analyst", company.formula, company.account, "analyst")
    return company.commit()


@pytest.mark.parametrize(("role", "status"), [("staff", 403), ("admin", 200), ("auditor", 200), ("hr", 200), ("it", 200), ("manager", 200)])
def test_report_permissions(app, db, kit, company, role, status):
    _, client = signed_in(app, db, kit, *(() if role == "staff" else (role,)))
    assert client.get("/policies/report").status_code == status
    assert client.get("/policies/report.csv").status_code == status


def test_report_page_and_csv(app, db, kit, company):
    _, client = signed_in(app, db, kit, "auditor")
    page = client.get("/policies/report").get_data(as_text=True)
    assert "Nina Notyet" in page and "Dora Done" not in page and "(2)" in page
    assert "Nina Notyet" in client.get("/policies/report?department=sales").get_data(as_text=True)
    assert "Nina Notyet" not in client.get("/policies/report?department=legal").get_data(as_text=True)
    assert client.get("/policies/report?tier=BAD!&page=-4&department=" + "x" * 500).status_code == 200
    assert client.get("/policies/report?page=99999999999999999999").status_code == 200
    response = client.get("/policies/report.csv?department=")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["person", "email", "department", "account", "platform", "handle", "role", "tier", "version"]
    names = {r[0] for r in rows[1:]}
    assert names == {"Nina Notyet", "'=HYPERLINK(\"http://evil\")"}  # formulas neutralised


def test_a_manager_report_is_limited_to_their_accounts_and_reports(app, db, kit, company):
    manager, client = signed_in(app, db, kit, "manager")
    own = make_account(db, business_owner_id=manager.user.person_id)
    make_grant(db, make_person(db, full_name="Owen Ownaccount"), own, "analyst")
    db.commit()
    page = client.get("/policies/report").get_data(as_text=True)
    assert "Owen Ownaccount" in page and "Nina Notyet" not in page
    assert "Nina Notyet" not in client.get("/policies/report.csv").get_data(as_text=True)


def _count_statements(connection, fn):
    """Statements one run of ``fn`` sends, after a warm-up run (tests/sql_capture.py)."""
    return len(statements(connection, fn))


def test_report_queries_do_not_grow_with_rows(app, db, kit, connection):
    publish_policy(db, "standard")
    publish_policy(db, "privileged")
    _, client = signed_in(app, db, kit, "admin")

    def add(n):
        for i in range(n):
            make_grant(db, make_person(db, department="Ops"), make_account(db), "admin" if i % 3 == 0 else "publisher")
        db.commit()

    add(5)
    small_page = _count_statements(connection, lambda: client.get("/policies/report"))
    small_csv = _count_statements(connection, lambda: client.get("/policies/report.csv").get_data())
    add(35)
    assert "(40)" in client.get("/policies/report").get_data(as_text=True)
    assert _count_statements(connection, lambda: client.get("/policies/report")) == small_page
    assert _count_statements(connection, lambda: client.get("/policies/report.csv").get_data()) == small_csv
