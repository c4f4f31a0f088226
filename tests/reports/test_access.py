"""The access report (govern.reports.access): its pages against a plain reference query, for every sort."""

from __future__ import annotations

import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from govern.accounts.models import Account, Role
from govern.db import utcnow
from govern.directory.models import Person
from govern.grants.models import Grant
from govern.reports import access, filters
from tests.factories import make_account, make_grant, make_person, make_user
from tests.sql_capture import sent

ROLES = ("owner", "admin", "publisher", "moderator", "advertiser", "analyst")

#: The documented order of each sort, written out again: the reference the pages must match.
REFERENCE_ORDER = {
    "person": (Person.full_name, Account.display_name, Role.sort_order),
    "department": (Person.department, Person.full_name, Account.display_name),
    "account": (Account.display_name, Role.sort_order, Person.full_name),
    "platform": (Account.platform, Account.display_name, Person.full_name),
    "role": (Role.sort_order, Account.display_name, Person.full_name),
    "since": (Grant.starts_at,),
    "expires": (Grant.expires_at,),
}
NULLS_LAST = {"department", "expires_at"}


@pytest.fixture
def register(db, kit):
    """A register full of ties: shared names, shared account names, missing departments and ends.

    A manager owns one account, is crisis contact of another and manages three people.
    """
    rng = random.Random(7)
    admin = make_user(db, kit, roles=("auditor",))
    manager = make_user(db, kit, roles=("manager",), full_name="Mia Manager")
    names = ["Ann Able", "Ann Able", "Bob Baker", "Cy Cole", "Cy Cole", "Dee Dale", "Eve East", "Fay Fox"]
    departments = ["Sales", "Sales", None, "Marketing", None, "Support", "Marketing", "Sales"]
    people = [make_person(db, full_name=name, department=dept,
                          manager_id=manager.user.person_id if n in (1, 3, 6) else None)
              for n, (name, dept) in enumerate(zip(names, departments, strict=True))]
    accounts = [
        make_account(db, display_name="Acme", business_owner_id=manager.user.person_id),
        make_account(db, display_name="Acme", platform="x", url="https://x.com/acme2", handle="acme2"),
        make_account(db, display_name="Beta", platform="linkedin", handle="beta",
                     url="https://www.linkedin.com/company/beta", crisis_contact_id=manager.user.person_id),
        make_account(db, display_name="Gamma", handle="gamma"),
        make_account(db, display_name="Delta", platform="x", url="https://x.com/delta", handle="delta"),
    ]
    start = utcnow() - timedelta(days=30)
    grants = []
    for person in people:
        for account in accounts:
            for role in rng.sample(ROLES, rng.randint(0, 2)):
                ended = rng.random() < 0.2
                grants.append(make_grant(
                    db, person, account, role, status="revoked" if ended else "active",
                    starts_at=start + timedelta(days=rng.randint(0, 4)),  # shared start dates
                    expires_at=start + timedelta(days=40 + rng.randint(0, 3)) if rng.random() < 0.5 else None,
                    ended_at=utcnow() if ended else None,
                ))
    db.commit()
    visible_to_manager = {
        g.id for g in grants
        if g.account_id in (accounts[0].id, accounts[2].id) or g.person_id in (people[1].id, people[3].id, people[6].id)
    }
    return SimpleNamespace(admin=admin, manager=manager, grants=grants, visible_to_manager=visible_to_manager)


def _reference(db, sort, descending, grant_ids):
    """The ids of ``grant_ids`` in the sort's order: one plain SELECT sorting everything."""
    terms = []
    for column in (*REFERENCE_ORDER[sort], Grant.id):
        term = column.desc() if descending else column.asc()
        terms.append(term.nulls_last() if column.key in NULLS_LAST else term)
    query = (select(Grant.id).join(Person, Person.id == Grant.person_id).join(Account, Account.id == Grant.account_id)
             .join(Role, Role.code == Grant.role_code).where(Grant.id.in_(grant_ids)).order_by(*terms))
    return list(db.scalars(query))


def _all_pages(db, user, flt, sort, descending, per_page=4):
    ids, page, totals = [], 1, set()
    while True:
        result = access.list_rows(db, user, flt, page=page, sort=sort, descending=descending, per_page=per_page)
        totals.add(result.total)
        assert len(result.rows) <= per_page
        ids += [row.grant_id for row in result.rows]
        if not result.has_next:
            return ids, totals
        page += 1


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("sort", list(access.SORTS))
def test_every_sort_matches_the_reference_order_for_everyone_and_for_a_manager(app, db, register, sort, descending):
    active = {g.id for g in register.grants if g.status == "active"}
    with app.app_context():
        for who, expected in ((register.admin, active), (register.manager, active & register.visible_to_manager)):
            ids, totals = _all_pages(db, who.user, filters.AccessFilter(), sort, descending)
            assert totals == {len(expected)}
            assert ids == _reference(db, sort, descending, expected), (who.user.email, sort, descending)


@pytest.mark.parametrize("sort", ["person", "department", "account", "platform", "since", "expires"])
@pytest.mark.parametrize(("query", "keep"), [
    ({"department": "Sales"}, lambda g: g.person.department == "Sales"),
    ({"platform": "x"}, lambda g: g.account.platform == "x"),
    ({"role": "analyst"}, lambda g: g.role_code == "analyst"),
    ({"q": "cy"}, lambda g: "cy" in g.person.full_name.lower()),
    ({"department": "Marketing", "platform": "instagram"},
     lambda g: g.person.department == "Marketing" and g.account.platform == "instagram"),
])
def test_filtered_pages_match_the_reference_order(app, db, register, sort, query, keep):
    expected = {g.id for g in register.grants if g.status == "active" and keep(g)}
    assert expected  # the filter keeps something, and leaves something out
    assert len(expected) < sum(g.status == "active" for g in register.grants)
    with app.app_context():
        for who, allowed in ((register.admin, expected), (register.manager, expected & register.visible_to_manager)):
            for descending in (False, True):
                ids, totals = _all_pages(db, who.user, filters.parse_filter(query), sort, descending)
                assert totals == {len(allowed)}
                assert ids == _reference(db, sort, descending, allowed), (query, sort, descending)


def test_a_page_costs_three_statements_whatever_the_sort_and_the_size(app, db, kit, register, connection):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    def measure():
        counts = {}
        for who in (register.admin, register.manager):
            for sort in access.SORTS:
                db.expire_all()
                who.user.roles  # noqa: B018 (loaded as a request would before the page)
                statements.clear()
                result = access.list_rows(db, who.user, filters.AccessFilter(), sort=sort)
                assert result.rows
                counts[who.user.email, sort] = len(statements)
        return counts

    event.listen(connection.engine, "before_cursor_execute", count)
    try:
        with app.app_context():
            small = measure()
            account = make_account(db, display_name="Bulk", business_owner_id=register.manager.user.person_id)
            for n in range(120):
                make_grant(db, make_person(db, full_name=f"Bulk {n:03d}"), account, "analyst")
            db.commit()
            large = measure()
    finally:
        event.remove(connection.engine, "before_cursor_execute", count)
    assert small == large
    assert set(small.values()) == {3}  # count, page ids, the page's rows


def _sent(connection, fn):
    """(statement, parameters) of the SELECTs ``fn`` sends (not BEGIN or SAVEPOINT)."""
    return [(statement, parameters) for statement, parameters in sent(connection, fn)
            if statement.lstrip().upper().startswith("SELECT")]


def test_the_default_view_sends_its_count_and_page_of_ids_without_parameters(app, db, register, connection):
    """So PostgreSQL plans them once per connection; a filter keeps the LIMIT a parameter (a plan per value)."""
    with app.app_context():
        default = _sent(connection, lambda: access.list_rows(db, register.admin.user, filters.AccessFilter(), page=2, per_page=4))
        filtered = _sent(connection, lambda: access.list_rows(
            db, register.admin.user, filters.AccessFilter(department="Sales"), page=2, per_page=4))
        manager = _sent(connection, lambda: access.list_rows(db, register.manager.user, filters.AccessFilter(), page=1, per_page=4))

    count, ids, rows = default
    assert not count[1] and not ids[1], (count, ids)  # statuses, LIMIT and OFFSET are in the SQL
    assert "'active'" in count[0] and "LIMIT 4 OFFSET 4" in ids[0]
    assert rows[1]  # the page's grant ids stay parameters
    assert "Sales" not in filtered[1][0] and "LIMIT 4" not in filtered[1][0]  # what a user chose is never in the SQL
    assert "LIMIT 4" not in manager[1][0]  # a manager's scope has parameters: the LIMIT stays one too


def test_on_postgresql_the_default_page_of_ids_is_planned_once(app, db, register, connection, is_postgresql):
    if not is_postgresql:
        pytest.skip("PostgreSQL's prepared statements")
    from sqlalchemy import text

    with app.app_context():
        for _ in range(8):  # psycopg prepares a statement on its 5th run
            access.list_rows(db, register.admin.user, filters.AccessFilter(), per_page=4)
        plans = connection.execute(text(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'SELECT grants.id %LIMIT 4%'"
        )).all()
    assert plans, "the page of ids was not prepared"
    generic, custom = plans[0]
    assert generic >= 2 and custom <= 1  # the plan is reused, not made again at each run
