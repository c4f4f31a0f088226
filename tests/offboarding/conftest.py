"""A small company with a leaver who holds grants on three accounts, owns two and reviews one."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from govern.db import utcnow
from govern.reviews.models import ReviewCampaign, ReviewItem
from tests.factories import make_account, make_grant, make_person, make_user


@pytest.fixture
def world(app, db, kit):
    """The company, inside a request context (for service tests)."""
    company = build_world(db, kit)
    with app.test_request_context():
        yield company


@pytest.fixture
def company(app, db, kit):
    """The company, with no context pushed (for tests that use the test client)."""
    return build_world(db, kit)


def build_world(db, kit):
    """Lea (a manager-role user) leaves. Her manager is Max. She holds:

    - LinkedIn @acme-li: admin (the only admin), she is business owner and crisis contact;
    - Instagram @acme: publisher; business owner Olga; Lea holds the recovery phone;
    - X @acme_news: analyst, plus a pending request for publisher.
    She reviews one open access-review item.
    """
    admin = make_user(db, kit, roles=("admin",), full_name="Ada Admin")
    hr = make_user(db, kit, roles=("hr",), full_name="Hana HR")
    it = make_user(db, kit, roles=("it",), full_name="Ivo IT")
    auditor = make_user(db, kit, roles=("auditor",), full_name="Aud Itor")
    max_ = make_user(db, kit, roles=("manager",), full_name="Max Manager")
    olga = make_user(db, kit, roles=("manager",), full_name="Olga Owner")
    lea = make_user(db, kit, roles=("manager",), full_name="Lea Leaver")
    lea.user.person.manager_id = max_.user.person_id
    sam = make_person(db, full_name="Sam Successor", manager_id=max_.user.person_id)
    stranger = make_person(db, full_name="Stan Stranger")
    lea_id = lea.user.person_id
    linkedin = make_account(db, display_name="Acme LinkedIn", handle="acme-li", platform="linkedin",
                            url="https://www.linkedin.com/company/acme-li", business_owner_id=lea_id,
                            crisis_contact_id=lea_id)
    insta = make_account(db, display_name="Acme Instagram", handle="acme", business_owner_id=olga.user.person_id,
                         recovery_phone_person_id=lea_id)
    x = make_account(db, display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news")
    grants = SimpleNamespace(
        linkedin=make_grant(db, lea.user.person, linkedin, "admin"),
        insta=make_grant(db, lea.user.person, insta, "publisher"),
        x=make_grant(db, lea.user.person, x, "analyst"),
        x_request=make_grant(db, lea.user.person, x, "publisher", status="requested"),
        sam_insta=make_grant(db, sam, insta, "moderator"),
    )
    campaign = ReviewCampaign(name="Q4", scope_kind="all", due_at=utcnow() + timedelta(days=7))
    db.add(campaign)
    db.flush()
    review_item = ReviewItem(campaign_id=campaign.id, grant_id=grants.sam_insta.id, reviewer_id=lea_id)
    db.add(review_item)
    db.commit()
    return SimpleNamespace(admin=admin.user, hr=hr.user, it=it.user, auditor=auditor.user, max=max_.user,
                              olga=olga.user, lea=lea.user, person=lea.user.person, sam=sam, stranger=stranger,
                              linkedin=linkedin, insta=insta, x=x, grants=grants, review_item=review_item,
                           users={"admin": admin, "hr": hr, "it": it, "auditor": auditor, "max": max_,
                                  "olga": olga, "lea": lea})
