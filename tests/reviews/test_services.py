"""Access review rules: scope, reviewer assignment, decisions through the normal revocation, closing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from govern.grants.models import Grant, PlatformRemoval
from govern.reviews import services
from govern.reviews.models import ReviewItem
from tests.factories import make_grant


@pytest.fixture(autouse=True)
def _request(app):
    """Services run inside a request in the app; audit events take their context from it."""
    with app.test_request_context():
        yield


def _open(db, company, actor=None, scope_kind="all", scope_value=None, name="Q3 review"):
    return services.open_campaign(db, actor=(actor or company.admin).user, name=name, scope_kind=scope_kind,
                                  scope_value=scope_value, due_at=company.due)


def _items(db, campaign):
    return {item.grant_id: item for item in db.scalars(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id))}


def _events(db, action):
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


@pytest.mark.parametrize(("owner", "owner_status", "manager", "manager_status", "expected"), [
    (10, "active", 20, "active", 10),       # the account's business owner
    (1, "active", 20, "active", 20),        # the owner holds the grant: their manager
    (None, None, 20, "active", 20),         # no owner: the holder's manager
    (10, "departed", 20, "active", 20),     # a departed owner cannot review
    (10, "leaving", 20, "active", 10),      # a leaving owner still can
    (1, "active", None, None, None),        # own grant and no manager: nobody
    (None, None, None, None, None),
    (None, None, 20, "departed", None),
])
def test_choose_reviewer(owner, owner_status, manager, manager_status, expected):
    assert services.choose_reviewer(grantee_id=1, owner_id=owner, owner_status=owner_status,
                                    manager_id=manager, manager_status=manager_status) == expected


def test_every_active_grant_becomes_an_item_for_the_right_reviewer(db, company):
    campaign = _open(db, company)
    items = _items(db, campaign)
    assert set(items) == {company.sam_insta.id, company.olga_insta.id, company.mo_x.id, company.nell_x.id, company.sam_linkedin.id}
    assert items[company.sam_insta.id].reviewer_id == company.olga.user.person_id       # owner
    assert items[company.olga_insta.id].reviewer_id == company.bea.user.person_id       # owner's own grant -> manager
    assert items[company.mo_x.id].reviewer_id == company.bea.user.person_id             # no owner -> manager
    assert items[company.nell_x.id].reviewer_id is None                               # nobody can
    assert items[company.sam_linkedin.id].reviewer_id == company.olga.user.person_id    # departed owner -> manager
    assert all(item.decision is None for item in items.values())
    assert campaign.created_by_id == company.admin.id and campaign.closed_at is None
    event = _events(db, "review.campaign_opened")[0]
    assert event.target_id == str(campaign.id) and '"item_count":5' in event.details_json and '"unassigned":1' in event.details_json


def test_a_platform_scope(db, company):
    campaign = _open(db, company, scope_kind="platform", scope_value="X")
    assert set(_items(db, campaign)) == {company.mo_x.id, company.nell_x.id}
    assert campaign.scope_value == "x"


def test_a_department_scope_covers_grants_held_by_its_people(db, company):
    campaign = _open(db, company, scope_kind="department", scope_value=" marketing ")
    assert set(_items(db, campaign)) == {company.sam_insta.id, company.olga_insta.id, company.sam_linkedin.id}


def test_an_admin_may_open_a_campaign_but_auditors_managers_and_staff_may_not(db, company):
    assert _open(db, company, actor=company.admin).created_by_id == company.admin.id
    for who in (company.auditor, company.olga, company.sam):
        with pytest.raises(ForbiddenError):
            _open(db, company, actor=who)


@pytest.mark.parametrize(("fields", "reason"), [
    ({"name": "  "}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"scope_kind": "everything"}, "scope_kind"),
    ({"scope_kind": "platform", "scope_value": "myspace"}, "platform"),
    ({"scope_kind": "platform", "scope_value": ""}, "platform"),
    ({"scope_kind": "department", "scope_value": ""}, "department"),
    ({"scope_kind": "department", "scope_value": "d" * 121}, "department"),
    ({"scope_kind": "department", "scope_value": "Legal"}, "department"),  # nobody there: nothing to review
    ({"scope_kind": "platform", "scope_value": "tiktok"}, "platform"),
    ({"due_at": None}, "due_at"),
    ({"due_at": "past"}, "due_at"),
])
def test_bad_campaigns_are_refused(db, company, fields, reason):
    args = {"name": "Review", "scope_kind": "all", "scope_value": None, "due_at": company.due, **fields}
    if args["due_at"] == "past":
        args["due_at"] = utcnow() - timedelta(days=1)
    with pytest.raises(InvalidError) as caught:
        services.open_campaign(db, actor=company.admin.user, **args)
    assert reason in caught.value.reasons
    assert db.scalars(select(ReviewItem)).all() == []


# --- deciding ------------------------------------------------------------------------------------------


def test_the_reviewer_keeps_a_grant(db, company):
    item = _items(db, _open(db, company))[company.sam_insta.id]
    services.decide_item(db, actor=company.olga.user, item=item, decision="keep", reason="")
    assert item.decision == "keep" and item.decided_by_id == company.olga.id and item.decided_at is not None and item.reason is None
    assert db.get(Grant, company.sam_insta.id).status == "active"
    event = _events(db, "review.item_decided")[0]
    assert event.target_id == str(item.id) and '"decision":"keep"' in event.details_json and '"on_behalf":false' in event.details_json


def test_the_reviewer_revokes_through_the_normal_revocation(db, company):
    item = _items(db, _open(db, company, name="Spring"))[company.sam_insta.id]
    services.decide_item(db, actor=company.olga.user, item=item, decision="revoke", reason="Left the social team")
    grant = db.get(Grant, company.sam_insta.id)
    assert item.decision == "revoke" and item.reason == "Left the social team"
    assert grant.status == "revoked" and grant.revoked_by_id == company.olga.id
    assert grant.revoke_reason == "Access review \u201cSpring\u201d: Left the social team"
    removal = db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == grant.id))
    assert removal is not None and removal.confirmed_at is None
    revoked = _events(db, "grant.revoked")[0]
    assert '"cause":"access_review"' in revoked.details_json and revoked.actor_user_id == company.olga.id
    assert len(_events(db, "review.item_decided")) == 1


def test_revoking_needs_a_reason_and_a_known_decision(db, company):
    item = _items(db, _open(db, company))[company.sam_insta.id]
    with pytest.raises(InvalidError, match="Say why"):
        services.decide_item(db, actor=company.olga.user, item=item, decision="revoke", reason="   ")
    with pytest.raises(InvalidError, match="keep or revoke"):
        services.decide_item(db, actor=company.olga.user, item=item, decision="delete", reason="x")
    with pytest.raises(InvalidError, match="under 1500"):
        services.decide_item(db, actor=company.olga.user, item=item, decision="revoke", reason="x" * 1501)
    assert item.decision is None and db.get(Grant, item.grant_id).status == "active"


def test_only_the_assigned_reviewer_or_an_admin_decides(db, company):
    items = _items(db, _open(db, company))
    item = items[company.sam_insta.id]
    for who in (company.sam, company.bea, company.auditor):
        with pytest.raises(NotFoundError):
            services.decide_item(db, actor=who.user, item=item, decision="keep", reason="")
    unassigned = items[company.nell_x.id]
    services.decide_item(db, actor=company.admin.user, item=unassigned, decision="keep", reason="Still on the news desk")
    assert unassigned.decision == "keep" and unassigned.decided_by_id == company.admin.id
    assert '"on_behalf":true' in _events(db, "review.item_decided")[0].details_json


def test_an_item_is_decided_once(db, company):
    item = _items(db, _open(db, company))[company.sam_insta.id]
    services.decide_item(db, actor=company.olga.user, item=item, decision="keep", reason="")
    with pytest.raises(ConflictError, match="decided already"):
        services.decide_item(db, actor=company.admin.user, item=item, decision="revoke", reason="no")


def test_the_last_admin_is_not_revoked_by_a_review(db, company):
    item = _items(db, _open(db, company))[company.olga_insta.id]  # Olga is @acme's only admin
    with pytest.raises(ConflictError, match="last admin"):
        services.decide_item(db, actor=company.bea.user, item=item, decision="revoke", reason="Not needed")


def test_a_grant_that_ended_meanwhile_can_be_closed_as_revoked_but_not_kept(db, company):
    items = _items(db, _open(db, company))
    item = items[company.mo_x.id]
    db.get(Grant, company.mo_x.id).status = "expired"
    db.flush()
    with pytest.raises(ConflictError, match="is expired already"):
        services.decide_item(db, actor=company.bea.user, item=item, decision="keep", reason="")
    services.decide_item(db, actor=company.bea.user, item=item, decision="revoke", reason="Gone anyway")
    assert item.decision == "revoke" and db.get(Grant, company.mo_x.id).status == "expired"
    assert db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == company.mo_x.id)) is None


# --- closing and reading -------------------------------------------------------------------------------


def test_closing_marks_open_items_not_reviewed(db, company):
    campaign = _open(db, company)
    items = _items(db, campaign)
    services.decide_item(db, actor=company.olga.user, item=items[company.sam_insta.id], decision="keep", reason="")
    with pytest.raises(ForbiddenError):
        services.close_campaign(db, actor=company.auditor.user, campaign=campaign)
    assert services.close_campaign(db, actor=company.admin.user, campaign=campaign) == 4
    db.expire_all()
    decisions = {grant_id: item.decision for grant_id, item in _items(db, campaign).items()}
    assert decisions.pop(company.sam_insta.id) == "keep"
    assert set(decisions.values()) == {"not_reviewed"}
    assert campaign.closed_at is not None and campaign.closed_by_id == company.admin.id
    event = _events(db, "review.campaign_closed")[0]
    assert '"not_reviewed":4' in event.details_json and '"kept":1' in event.details_json
    progress = services.progress_of(db, [campaign.id])[campaign.id]
    assert (progress.total, progress.open, progress.keep, progress.not_reviewed, progress.percent) == (5, 0, 1, 4, 20)
    with pytest.raises(ConflictError, match="closed already"):
        services.close_campaign(db, actor=company.admin.user, campaign=campaign)
    with pytest.raises(ConflictError):
        services.decide_item(db, actor=company.admin.user, item=items[company.mo_x.id], decision="keep", reason="")
    with pytest.raises(ForbiddenError):
        services.close_campaign(db, actor=company.olga.user, campaign=_open(db, company))


def test_open_items_of_a_reviewer_across_campaigns(db, company):
    first = _open(db, company, name="First")
    second = _open(db, company, scope_kind="platform", scope_value="instagram", name="Second")
    items, total = services.open_items_for(db, company.olga.user.person_id)
    assert total == 3 and {c.name for _, c in items} == {"First", "Second"}
    services.close_campaign(db, actor=company.admin.user, campaign=second)
    items, total = services.open_items_for(db, company.olga.user.person_id)
    assert total == 2 and {c.id for _, c in items} == {first.id}
    assert services.open_items_for(db, company.sam.user.person_id) == ([], 0)
    # A short list counts what it holds; a full one counts them all.
    for limit, shown in ((1, 1), (2, 2), (3, 2)):
        items, total = services.open_items_for(db, company.olga.user.person_id, limit=limit)
        assert (len(items), total) == (shown, 2), limit


def test_reviewer_loads_and_item_filters(db, company):
    campaign = _open(db, company)
    loads = {r.name: (r.total, r.open) for r in services.reviewers_of(db, campaign.id)}
    assert loads == {"Olga Owner": (2, 2), "Bea Boss": (2, 2), None: (1, 1)}
    assert services.list_items(db, campaign.id, services.ItemFilter(reviewer="none"), page=1).total == 1
    found = services.list_items(db, campaign.id, services.ItemFilter(platform="x", q="@acme_news"), page=1)
    assert found.total == 2 and {item.grant.person.full_name for item, _ in found.items} == {"Mo Member", "Nell Nomanager"}
    found = services.list_items(db, campaign.id, services.ItemFilter(reviewer=str(company.bea.user.person_id)), page=1)
    assert {reviewer.full_name for _, reviewer in found.items} == {"Bea Boss"}
    none = services.list_items(db, campaign.id, services.ItemFilter(decision="keep"), page=1)
    assert (none.items, none.total) == ([], 0)


def test_a_new_grant_after_opening_is_not_in_the_campaign(db, company):
    campaign = _open(db, company)
    make_grant(db, company.mo, company.insta, "publisher")
    assert len(_items(db, campaign)) == 5
