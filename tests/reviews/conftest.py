"""A small company for access reviews: owners, managers, grants on three accounts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from govern.db import utcnow
from tests.factories import Company


@pytest.fixture
def company(company: Company) -> Company:
    """Who reviews what:

    - Instagram @acme, owned by Olga (a manager): Sam's publisher grant -> Olga; Olga's own
      admin grant -> Olga's manager Bea; a revoked grant is out of scope.
    - X @acme_news, no owner: Mo's analyst grant -> Mo's manager Bea; Nell has no manager -> nobody.
    - LinkedIn, owned by a departed person: Sam's moderator grant -> Sam's manager Olga.
    """
    company.add_user("admin", "admin", full_name="Ada Admin")
    company.add_user("auditor", "auditor", full_name="Aud Itor")
    company.add_user("bea", "manager", full_name="Bea Boss")
    company.add_user("olga", "manager", full_name="Olga Owner", manager=company.bea, department="Marketing")
    company.add_user("sam", full_name="Sam Staff", manager=company.olga, department="Marketing")
    company.add_person("mo", full_name="Mo Member", manager=company.bea, department="Support")
    company.add_person("nell", full_name="Nell Nomanager", department="Support")
    company.add_person("gone", full_name="Gus Gone", status="departed")
    company.add_account("insta", display_name="Acme Instagram", handle="acme", owner=company.olga)
    company.add_account("x", display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news")
    company.add_account("linkedin", display_name="Acme LinkedIn", handle="acme-li", platform="linkedin",
                    url="https://www.linkedin.com/company/acme-li", owner=company.gone)
    company.add_grant("sam_insta", company.sam, company.insta, "publisher")
    company.add_grant("olga_insta", company.olga, company.insta, "admin")
    company.add_grant("old_insta", company.mo, company.insta, "analyst", status="revoked")
    company.add_grant("mo_x", company.mo, company.x, "analyst")
    company.add_grant("nell_x", company.nell, company.x, "admin")
    company.add_grant("sam_linkedin", company.sam, company.linkedin, "moderator")
    company.due = utcnow() + timedelta(days=14)
    return company.commit()
