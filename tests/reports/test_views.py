"""Reports: who may see what, filters, sorting, pagination, exports and their audit, query counts."""

from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.grants.models import Grant
from govern.reports import access, filters
from govern.reports import matrix as matrix_report
from tests.factories import csrf_token, login, make_account, make_grant, make_person, make_user

# --- the company -----------------------------------------------------------------------------------


@pytest.fixture
def company(company):
    """A manager owning one account with a report of theirs, two other accounts, holders on each.

    ours    (instagram, owned by the manager): stranger is moderator
    theirs  (x, owned by someone else):        report is publisher, stranger is analyst
    hidden  (linkedin, owned by someone else): outsider is admin
    """
    company.add_user("admin", "admin", full_name="Ada Admin")
    company.add_user("manager", "manager", full_name="Mia Manager")
    company.add_person("owner", full_name="Olga Owner", department="Communications")
    company.add_person("report", full_name="Rita Report", department="Marketing", manager=company.manager, employee_id="E-100")
    company.add_person("stranger", full_name="Sam Stranger", department="Support")
    company.add_person("outsider", full_name="Otto Outsider", department="IT")
    company.add_account("ours", handle="ours", display_name="Ours on Instagram", owner=company.manager)
    company.add_account("theirs", platform="x", handle="theirs", url="https://x.com/theirs", display_name="Theirs on X",
                    owner=company.owner)
    company.add_account("hidden", platform="linkedin", handle="hidden-co", url="https://www.linkedin.com/company/hidden-co",
                    display_name="Hidden on LinkedIn", owner=company.owner)
    approved = {"approved_by_id": company.admin.id}
    company.add_grant("stranger_ours", company.stranger, company.ours, "moderator", **approved)
    company.add_grant("report_theirs", company.report, company.theirs, "publisher", **approved,
                  expires_at=utcnow() + timedelta(days=30))
    company.add_grant("stranger_theirs", company.stranger, company.theirs, "analyst", **approved)
    company.add_grant("outsider_hidden", company.outsider, company.hidden, "admin", **approved)
    company.add_grant("revoked", company.report, company.ours, "analyst", status="revoked", ended_at=utcnow(),
                  revoked_by_id=company.manager.id, revoke_reason="Campaign over")
    return company.commit()


def signed_in(client, db, kit, *roles):
    who = make_user(db, kit, roles=roles)
    login(client, db, who)
    return who


def body(response) -> str:
    return response.get_data(as_text=True)


def export(client, path, data=None, *, page="/reports/access"):
    """POST an export with the session's CSRF token, read from a report page."""
    token = csrf_token(client, page)
    return client.post(path, data={"csrf_token": token, **(data or {})})


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response))))


# --- who may look ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "auditor", "hr", "it"])
def test_roles_that_see_everything(client, db, kit, company, role):
    signed_in(client, db, kit, role)
    page = body(client.get("/reports/access"))
    for name in ("Sam Stranger", "Rita Report", "Otto Outsider"):
        assert name in page
    assert "Campaign over" not in page  # the register lists active grants only
    for path in (f"/reports/accounts/{company.hidden.id}", f"/reports/people/{company.outsider.id}", "/reports/", "/reports/matrix"):
        assert client.get(path).status_code == 200, path


def test_plain_staff_are_refused(client, db, kit, company):
    signed_in(client, db, kit)
    assert client.get("/reports/access").status_code == 403
    assert client.get(f"/reports/accounts/{company.ours.id}").status_code == 403
    token = csrf_token(client, "/account")
    assert client.post("/reports/access.csv", data={"csrf_token": token}).status_code == 403


def test_a_manager_sees_their_accounts_and_their_reports_only(client, db, kit, company):
    login(client, db, company.manager)
    page = body(client.get("/reports/access"))
    assert "Sam Stranger" in page and "Ours on Instagram" in page  # a holder on their account
    assert "Rita Report" in page and "Theirs on X" in page  # their report, on someone else's account
    assert "Otto Outsider" not in page and "Hidden on LinkedIn" not in page
    # The stranger's analyst role on someone else's account is none of the manager's business.
    assert page.count("Sam Stranger") == 1


def test_a_manager_gets_404_for_accounts_and_people_outside_their_scope(client, db, kit, company):
    login(client, db, company.manager)
    assert client.get(f"/reports/accounts/{company.hidden.id}").status_code == 404
    assert client.get(f"/reports/people/{company.outsider.id}").status_code == 404
    assert client.get("/reports/accounts/999999").status_code == 404
    token = csrf_token(client, "/reports/access")
    assert client.post(f"/reports/accounts/{company.hidden.id}.csv", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/reports/people/{company.outsider.id}.json", data={"csrf_token": token}).status_code == 404


def test_a_manager_sees_only_the_visible_rows_of_a_shared_account_or_person(client, db, kit, company):
    login(client, db, company.manager)
    theirs = body(client.get(f"/reports/accounts/{company.theirs.id}"))  # visible through their report
    assert "Rita Report" in theirs and "Sam Stranger" not in theirs
    stranger = body(client.get(f"/reports/people/{company.stranger.id}"))  # visible as a holder on "ours"
    assert "Ours on Instagram" in stranger and "Theirs on X" not in stranger
    rows = csv_rows(export(client, f"/reports/people/{company.stranger.id}.csv"))
    assert [r["account"] for r in rows] == ["Ours on Instagram"]


# --- filters, sorting, pages -----------------------------------------------------------------------


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ({"department": "Marketing"}, ["Rita Report"], ["Sam Stranger", "Otto Outsider"]),
    ({"platform": "x"}, ["Rita Report", "Sam Stranger"], ["Otto Outsider"]),
    ({"role": "admin"}, ["Otto Outsider"], ["Rita Report", "Sam Stranger"]),
    ({"q": "stranger"}, ["Sam Stranger"], ["Rita Report", "Otto Outsider"]),
    ({"q": "E-100"}, ["Rita Report"], ["Sam Stranger"]),
    ({"q": "100%_"}, [], ["Rita Report", "Sam Stranger", "Otto Outsider"]),
    ({"platform": "myspace", "role": "emperor"}, ["Rita Report", "Sam Stranger", "Otto Outsider"], []),
])
def test_filters(client, db, kit, company, query, shown, hidden):
    signed_in(client, db, kit, "auditor")
    page = body(client.get("/reports/access", query_string=query))
    for name in shown:
        assert name in page
    for name in hidden:
        assert name not in page


def test_the_page_shows_platform_role_names_expiry_and_approver(client, db, kit, company):
    signed_in(client, db, kit, "auditor")
    page = body(client.get("/reports/access", query_string={"q": "rita"}))
    assert "Contributor" in page  # X's own name for a publisher
    assert (company.report_theirs.expires_at.strftime("%Y-%m-%d")) in page
    assert "Ada Admin" in page


@pytest.fixture
def many(db, kit):
    """65 holders of one account, named so that their order is known."""
    admin = make_user(db, kit, roles=("admin",))
    account = make_account(db, display_name="Busy account")
    people = [make_person(db, full_name=f"Holder {n:03d}", department="Marketing") for n in range(65)]
    for n, person in enumerate(people):
        make_grant(db, person, account, "analyst", approved_by_id=admin.id,
                   expires_at=utcnow() + timedelta(days=n + 1) if n % 2 else None)
    db.commit()
    return people


def test_pagination_50_per_page(client, db, kit, many):
    signed_in(client, db, kit, "auditor")
    first = body(client.get("/reports/access", query_string={"department": "Marketing"}))
    assert "(65)" in first and "Holder 000" in first and "Holder 049" in first and "Holder 050" not in first
    assert "page 1 of 2" in first and "page=2" in first
    second = body(client.get("/reports/access", query_string={"department": "Marketing", "page": 2}))
    assert "Holder 050" in second and "Holder 064" in second and "Holder 049" not in second
    assert "No active grants match." in body(client.get("/reports/access", query_string={"page": 10**12}))


def test_sorting(client, db, kit, many):
    signed_in(client, db, kit, "auditor")
    down = body(client.get("/reports/access", query_string={"sort": "person", "dir": "desc"}))
    assert down.index("Holder 064") < down.index("Holder 063")
    # Soonest expiry first, grants without an end last, on SQLite and PostgreSQL alike.
    soon = body(client.get("/reports/access", query_string={"sort": "expires", "page": 1}))
    assert soon.index("Holder 001") < soon.index("Holder 003")
    assert soon.index("Holder 063") < soon.index("Holder 000")  # the 32 time-bound ones, then the others
    assert "Holder 064" not in soon
    last = body(client.get("/reports/access", query_string={"sort": "expires", "page": 2}))
    assert "Holder 064" in last
    assert client.get("/reports/access", query_string={"sort": "password", "dir": "sideways"}).status_code == 200


def test_services_keyset_batches_cover_every_row_once(app, db, kit, many):
    auditor = make_user(db, kit, roles=("auditor",))
    with app.app_context():
        batches = list(access.iter_row_batches(db, auditor.user, filters.AccessFilter(department="Marketing"), batch=7))
    names = [row.person for batch in batches for row in batch]
    assert names == [p.full_name for p in many]
    assert [len(b) for b in batches] == [7] * 9 + [2]



def test_a_grant_that_ends_during_an_export_is_left_out(app, db, kit, many):
    auditor = make_user(db, kit, roles=("auditor",))
    with app.app_context():
        batches = access.iter_row_batches(db, auditor.user, filters.AccessFilter(department="Marketing"), batch=10)
        first = next(batches)
        later = db.scalars(select(Grant).join(Grant.person).where(Grant.person.has(full_name="Holder 050"))).one()
        later.status = "revoked"
        db.flush()
        rest = [row.person for batch in batches for row in batch]
    assert [row.person for row in first] == [f"Holder {n:03d}" for n in range(10)]
    assert "Holder 050" not in rest and len(rest) == 54 and rest == sorted(rest)


# --- exports ---------------------------------------------------------------------------------------


def test_csv_export_of_the_filtered_set_is_audited(client, db, kit, company):
    who = signed_in(client, db, kit, "auditor")
    response = export(client, "/reports/access.csv", {"platform": "x"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"] and ".csv" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = csv_rows(response)
    assert body(response).splitlines()[0].split(",") == list(access.ACCESS_COLUMNS)
    assert sorted(r["person"] for r in rows) == ["Rita Report", "Sam Stranger"]
    rita = next(r for r in rows if r["person"] == "Rita Report")
    assert rita["platform"] == "x" and rita["role"] == "publisher" and rita["platform_role"] == "Contributor"
    assert rita["employee_id"] == "E-100" and rita["approved_by"] == company.admin.email and rita["expires"]
    event_row = db.scalars(select(AuditEvent).where(AuditEvent.action == "report.exported")).one()
    assert event_row.actor_user_id == who.id
    assert json.loads(event_row.details_json) == {"report": "access", "format": "csv", "filter": {"platform": "x"}}


def test_json_export_is_valid_json(client, db, kit, company):
    signed_in(client, db, kit, "hr")
    response = export(client, "/reports/access.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = json.loads(body(response))
    assert {row["person"] for row in data} == {"Rita Report", "Sam Stranger", "Otto Outsider"}
    assert set(data[0]) == set(access.ACCESS_COLUMNS)
    empty = export(client, "/reports/access.json", {"q": "nobody-at-all"})
    assert json.loads(body(empty)) == []


def test_spreadsheet_formulas_are_neutralised_in_csv_but_not_in_json(client, db, kit, company):
    evil = make_person(db, full_name="=HYPERLINK(\"http://evil\")", department="+Sales")
    make_grant(db, evil, company.ours, "analyst")
    db.commit()
    signed_in(client, db, kit, "admin")
    rows = csv_rows(export(client, "/reports/access.csv", {"q": "hyperlink"}))
    assert rows[0]["person"] == "'=HYPERLINK(\"http://evil\")" and rows[0]["department"] == "'+Sales"
    data = json.loads(body(export(client, "/reports/access.json", {"q": "hyperlink"})))
    assert data[0]["person"] == "=HYPERLINK(\"http://evil\")"


def test_exports_need_post_and_a_csrf_token(client, db, kit, company):
    signed_in(client, db, kit, "auditor")
    assert client.get("/reports/access.csv").status_code == 405
    assert client.post("/reports/access.csv").status_code == 400
    assert client.post("/reports/access.json", data={"csrf_token": "forged"}).status_code == 400
    assert client.post(f"/reports/accounts/{company.ours.id}.csv").status_code == 400
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "report.exported")) is None


def test_per_account_and_per_person_exports_carry_history(client, db, kit, company):
    signed_in(client, db, kit, "auditor")
    rows = csv_rows(export(client, f"/reports/accounts/{company.ours.id}.csv"))
    assert {(r["person"], r["role"], r["status"]) for r in rows} == {
        ("Sam Stranger", "moderator", "active"), ("Rita Report", "analyst", "revoked")}
    revoked = next(r for r in rows if r["status"] == "revoked")
    assert revoked["revoke_reason"] == "Campaign over" and revoked["revoked_by"] == company.manager.email and revoked["ended_at"]
    person = json.loads(body(export(client, f"/reports/people/{company.report.id}.json")))
    assert sorted((r["account"], r["status"]) for r in person) == [("Ours on Instagram", "revoked"), ("Theirs on X", "active")]
    assert set(person[0]) == set(access.HISTORY_COLUMNS)
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "report.exported").order_by(AuditEvent.id)).all()
    assert [(e.target_type, e.target_id) for e in events] == [("account", str(company.ours.id)), ("person", str(company.report.id))]


def test_account_and_person_pages_split_active_and_history(client, db, kit, company):
    signed_in(client, db, kit, "auditor")
    page = body(client.get(f"/reports/accounts/{company.ours.id}"))
    active, history = page.split("History and open requests")
    assert "Sam Stranger" in active and "Rita Report" not in active
    assert "Rita Report" in history and "Campaign over" in history
    person = body(client.get(f"/reports/people/{company.report.id}"))
    assert "Theirs on X" in person and "Campaign over" in person
    assert client.get("/reports/people/999999").status_code == 404


def test_matrix_for_a_department(client, db, kit, company):
    signed_in(client, db, kit, "auditor")
    assert "Choose a department" in body(client.get("/reports/matrix"))
    page = body(client.get("/reports/matrix", query_string={"department": "Support"}))
    assert "Sam Stranger" in page and "Ours on Instagram" in page and "Theirs on X" in page
    assert ">moderator<" in page and ">analyst<" in page and "Rita Report" not in page


def test_matrix_refuses_what_does_not_fit(client, db, kit, company, monkeypatch):
    monkeypatch.setattr(matrix_report, "MATRIX_MAX_PEOPLE", 1)
    signed_in(client, db, kit, "auditor")
    page = body(client.get("/reports/matrix", query_string={"platform": "x"}))
    assert "too much for one screen" in page and "Sam Stranger" not in page


# --- query counts ----------------------------------------------------------------------------------


@contextmanager
def counting(connection):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(connection.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection.engine, "before_cursor_execute", count)


def _add_holders(db, account, count, start):
    for n in range(start, start + count):
        make_grant(db, make_person(db, full_name=f"Bulk {n:03d}", department="Bulk"), account, "analyst")
    db.commit()


def test_statement_counts_do_not_grow_with_rows(client, db, kit, connection):
    admin = make_user(db, kit, roles=("admin",))
    login(client, db, admin)
    account = make_account(db, display_name="Counted")
    _add_holders(db, account, 10, 0)
    token = csrf_token(client, "/reports/access")
    client.get("/reports/access")  # warm caches (templates, compiled statements)

    def measure() -> tuple[int, int, int, int]:
        with counting(connection) as page:
            assert client.get("/reports/access", query_string={"department": "Bulk"}).status_code == 200
        with counting(connection) as csv_export:
            response = client.post("/reports/access.csv", data={"csrf_token": token, "department": "Bulk"})
            rows = len(csv_rows(response))
        with counting(connection) as account_page:
            assert client.get(f"/reports/accounts/{account.id}").status_code == 200
        with counting(connection) as matrix:
            assert client.get("/reports/matrix", query_string={"department": "Bulk"}).status_code == 200
        return len(page), len(csv_export), len(account_page), len(matrix), rows

    small = measure()
    _add_holders(db, account, 70, 10)
    large = measure()
    assert small[-1] == 10 and large[-1] == 80
    print("statement counts", small, large)
    assert small[:-1] == large[:-1], (small, large)
