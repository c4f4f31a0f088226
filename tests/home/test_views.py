"""The home page of each role costs a fixed number of SQL statements, whatever the data (issue 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govern.db import utcnow
from govern.offboarding.scheduling import schedule_offboarding
from tests.directory.helpers import count_statements, signed_in
from tests.factories import make_account, make_grant, make_person, publish_policy
from tests.offboarding.helpers import SETTINGS


def _more_company(db, actor, n: int) -> None:
    """People with grants, and offboardings scheduled for some of them (the HR and admin home list those)."""
    account = make_account(db)
    for k in range(n):
        person = make_person(db)
        make_grant(db, person, account)
        if k % 2 == 0:
            schedule_offboarding(db, actor=actor, person=person, effective_at=utcnow() + timedelta(days=3),
                                             settings=SETTINGS)
    db.commit()


@pytest.mark.parametrize("role", ["admin", "it", "manager", "hr", "auditor", None])
def test_home_page_statements_do_not_grow_with_the_data(app, db, kit, connection, role):
    who, client = signed_in(app, db, kit, *((role,) if role else ()))
    publish_policy(db)
    db.commit()
    _more_company(db, who, 3)
    with_few = count_statements(connection, client, "/")
    _more_company(db, who, 30)
    with_many = count_statements(connection, client, "/")
    assert with_many == with_few, (role, with_few, with_many)
