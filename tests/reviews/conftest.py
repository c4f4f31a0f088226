"""A small company for access reviews: owners, managers, grants on three accounts."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from govern.db import utcnow
from tests.factories import make_account, make_grant, make_person, make_user


@pytest.fixture
def world(app, db, kit):
    """Who reviews what:

    - Instagram @acme, owned by Olga (a manager): Sam's publisher grant -> Olga; Olga's own
      admin grant -> Olga's manager Bea; a revoked grant is out of scope.
    - X @acme_news, no owner: Mo's analyst grant -> Mo's manager Bea; Nell has no manager -> nobody.
    - LinkedIn, owned by a departed person: Sam's moderator grant -> Sam's manager Olga.
    """
    admin = make_user(db, kit, roles=("admin",), full_name="Ada Admin")
    auditor = make_user(db, kit, roles=("auditor",), full_name="Aud Itor")
    bea = make_user(db, kit, roles=("manager",), full_name="Bea Boss")
    olga = make_user(db, kit, roles=("manager",), full_name="Olga Owner")
    olga.user.person.manager_id = bea.user.person_id
    olga.user.person.department = "Marketing"
    sam = make_user(db, kit, full_name="Sam Staff")
    sam.user.person.manager_id = olga.user.person_id
    sam.user.person.department = "Marketing"
    mo = make_person(db, full_name="Mo Member", manager_id=bea.user.person_id, department="Support")
    nell = make_person(db, full_name="Nell Nomanager", department="Support")
    gone = make_person(db, full_name="Gus Gone", status="departed")
    insta = make_account(db, display_name="Acme Instagram", handle="acme", business_owner_id=olga.user.person_id)
    x = make_account(db, display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news")
    linkedin = make_account(db, display_name="Acme LinkedIn", handle="acme-li", platform="linkedin",
                            url="https://www.linkedin.com/company/acme-li", business_owner_id=gone.id)
    grants = SimpleNamespace(
        sam_insta=make_grant(db, sam.user.person, insta, "publisher"),
        olga_insta=make_grant(db, olga.user.person, insta, "admin"),
        old_insta=make_grant(db, mo, insta, "analyst", status="revoked"),
        mo_x=make_grant(db, mo, x, "analyst"),
        nell_x=make_grant(db, nell, x, "admin"),
        sam_linkedin=make_grant(db, sam.user.person, linkedin, "moderator"),
    )
    db.commit()
    return SimpleNamespace(admin=admin, auditor=auditor, bea=bea, olga=olga, sam=sam, mo=mo, nell=nell, gone=gone,
                           insta=insta, x=x, linkedin=linkedin, grants=grants, due=utcnow() + timedelta(days=14))
