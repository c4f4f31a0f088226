"""Grant rules, each with its message."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.grants import services
from govern.grants.models import Grant, PlatformRemoval
from govern.grants.notices import approvers
from tests.factories import accept_policy, make_account, make_grant, make_person, make_user, offboard, publish_policy


@pytest.fixture
def company(app, company):
    """A manager who owns an account, a report of theirs, an admin, and published policies."""
    company.add_staff("manager", "admin")
    company.add_account("account", owner=company.manager, max_credential_holders=2)
    company.add_person("report", manager=company.manager, full_name="Rita Report")
    company.add_policies()
    accept_policy(company.db, company.report, company.standard)
    company.commit()
    with app.test_request_context():
        yield company


def test_a_manager_grants_a_time_bound_publisher_role_on_their_account(db, company):
    until = utcnow() + timedelta(days=30)
    grant = services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id,
                                role_code="publisher", reason="Spring campaign", expires_at=until)
    assert grant.status == "active" and grant.approved_by_id == company.manager.id and grant.expires_at == until
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.created")).one()
    assert event.target_id == str(grant.id) and event.actor_user_id == company.manager.id


def test_a_manager_may_not_grant_on_someone_elses_account_to_a_stranger(db, company):
    other = make_account(db)
    stranger = make_person(db)
    with pytest.raises(ForbiddenError, match="accounts you own or to people who report to you"):
        services.grant_role(db, actor=company.manager.user, person_id=stranger.id, account_id=other.id, role_code="analyst", reason="x")
    # ...but may grant to their own report on any account.
    services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=other.id, role_code="analyst", reason="x")


def test_staff_without_manager_role_cannot_grant(db, company, kit):
    staff = make_user(db, kit)
    with pytest.raises(ForbiddenError):
        services.grant_role(db, actor=staff.user, person_id=company.report.id, account_id=company.account.id, role_code="analyst", reason="x")


def test_owner_and_admin_roles_need_a_second_persons_approval(db, company, kit):
    accept_policy(db, company.report, company.privileged)
    grant = services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id,
                                role_code="admin", reason="Backup admin")
    assert grant.status == "requested" and grant.approved_by_id is None
    with pytest.raises(ForbiddenError, match="second person"):
        services.approve_grant(db, actor=company.manager.user, grant=grant)
    grantee_user = make_user(db, kit, roles=("admin",))
    grant.person_id = grantee_user.user.person_id  # the grantee may never approve their own grant
    db.flush()
    db.expire(grant)
    with pytest.raises(ForbiddenError):
        services.approve_grant(db, actor=grantee_user.user, grant=grant)
    grant.person_id = company.report.id
    db.flush()
    db.expire(grant)
    services.approve_grant(db, actor=company.admin.user, grant=grant, note="ok")
    assert grant.status == "active" and grant.approved_by_id == company.admin.id


def test_no_grant_to_someone_leaving_or_departed(db, company):
    for status in ("leaving", "departed"):
        leaver = make_person(db, manager_id=company.manager.user.person_id, status=status)
        with pytest.raises(ConflictError, match=f"is {status}"):
            services.grant_role(db, actor=company.manager.user, person_id=leaver.id, account_id=company.account.id, role_code="analyst", reason="x")


def test_revealing_roles_need_the_current_policy_accepted(db, company):
    newcomer = make_person(db, manager_id=company.manager.user.person_id)
    with pytest.raises(ConflictError, match="must first accept the current standard policy"):
        services.grant_role(db, actor=company.manager.user, person_id=newcomer.id, account_id=company.account.id, role_code="publisher", reason="x")
    # Non-revealing roles do not need it.
    services.grant_role(db, actor=company.manager.user, person_id=newcomer.id, account_id=company.account.id, role_code="analyst", reason="x")
    # A newer version must be accepted again.
    publish_policy(db, "standard")
    with pytest.raises(ConflictError, match="version 2"):
        services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="publisher", reason="x")


def test_the_credential_holder_limit_is_enforced(db, company):
    for _ in range(2):
        holder = make_person(db)
        make_grant(db, holder, company.account, "publisher")
    with pytest.raises(ConflictError, match="already has 2 credential holders, its maximum"):
        services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="publisher", reason="x")


def test_duplicate_live_grants_are_refused(db, company):
    services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="analyst", reason="x")
    with pytest.raises(ConflictError, match="already holds or has requested"):
        services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="analyst", reason="again")


def test_the_database_refuses_a_duplicate_live_grant_even_without_the_check(db, company):
    make_grant(db, company.report, company.account, "analyst")
    with pytest.raises(ConflictError):
        services._insert(db, Grant(person_id=company.report.id, account_id=company.account.id, role_code="analyst",
                                   status="requested", reason="race", starts_at=utcnow()))


def test_a_reason_and_a_future_end_are_required(db, company):
    with pytest.raises(InvalidError, match="Say why"):
        services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="analyst", reason="  ")
    with pytest.raises(InvalidError, match="future"):
        services.grant_role(db, actor=company.manager.user, person_id=company.report.id, account_id=company.account.id, role_code="analyst",
                            reason="x", expires_at=utcnow() - timedelta(days=1))


def test_revoking_the_last_admin_is_refused_unless_an_admin_overrides(db, company):
    only_admin = make_grant(db, company.report, company.account, "admin")
    with pytest.raises(ConflictError, match="last admin"):
        services.revoke_grant(db, actor=company.manager.user, grant=only_admin, reason="moving on")
    with pytest.raises(ConflictError, match="last admin"):
        services.revoke_grant(db, actor=company.admin.user, grant=only_admin, reason="moving on")  # no override reason
    removal = services.revoke_grant(db, actor=company.admin.user, grant=only_admin, reason="moving on", override_reason="account is being closed")
    assert only_admin.status == "revoked" and removal.confirmed_at is None
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.revoked")).one()
    assert '"last_admin_override":true' in event.details_json


def test_revoking_one_of_two_admins_is_fine_and_opens_a_platform_removal(db, company):
    linkedin = make_account(db, platform="linkedin", handle="acme-corp", url="https://www.linkedin.com/company/acme-corp",
                            business_owner_id=company.manager.user.person_id)
    first = make_grant(db, company.report, linkedin, "admin")
    make_grant(db, make_person(db), linkedin, "owner")
    removal = services.revoke_grant(db, actor=company.manager.user, grant=first, reason="left the team")
    assert removal.platform_role == "LinkedIn Super admin"
    assert first.revoke_reason == "left the team" and first.revoked_by_id == company.manager.id and first.ended_at
    services.confirm_removal(db, actor=company.admin.user, removal=removal, note="removed in Page admin tools")
    assert removal.confirmed_at and removal.confirmed_by_id == company.admin.id
    with pytest.raises(ConflictError):
        services.confirm_removal(db, actor=company.admin.user, removal=removal, note="again")


def test_time_bound_grants_expire_by_themselves(db, company):
    soon = make_grant(db, company.report, company.account, "analyst", expires_at=utcnow() + timedelta(hours=1))
    later = make_grant(db, make_person(db), company.account, "analyst", expires_at=utcnow() + timedelta(days=10))
    request = make_grant(db, make_person(db), company.account, "moderator", status="requested", expires_at=utcnow() + timedelta(hours=1))
    result = services.expire_grants(db, now=utcnow() + timedelta(hours=2))
    assert result == {"expired": 1, "kept_last_admin": 0, "requests_lapsed": 1}
    assert soon.status == "expired" and later.status == "active" and request.status == "rejected"
    assert db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == soon.id)) is not None
    assert services.expire_grants(db, now=utcnow() + timedelta(hours=2)) == {"expired": 0, "kept_last_admin": 0, "requests_lapsed": 0}


def test_an_expiring_last_admin_stays_and_the_refusal_is_audited(db, company):
    grant = make_grant(db, company.report, company.account, "admin", expires_at=utcnow() + timedelta(minutes=5))
    result = services.expire_grants(db, now=utcnow() + timedelta(hours=1))
    assert result["kept_last_admin"] == 1 and grant.status == "active"
    assert "grant.expiry_refused_last_admin" in db.scalars(select(AuditEvent.action)).all()


def test_staff_request_and_the_owner_decides(db, company, kit):
    staffer = make_user(db, kit)
    accept_policy(db, staffer.user.person, company.standard)
    grant = services.request_role(db, actor=staffer.user, account_id=company.account.id, role_code="publisher", reason="cover")
    assert grant.status == "requested" and grant.person_id == staffer.user.person_id
    with pytest.raises(ForbiddenError):
        services.approve_grant(db, actor=staffer.user, grant=grant)
    services.approve_grant(db, actor=company.manager.user, grant=grant)
    assert grant.status == "active"


def test_a_rejection_needs_a_reason(db, company, kit):
    staffer = make_user(db, kit)
    grant = services.request_role(db, actor=staffer.user, account_id=company.account.id, role_code="analyst", reason="curious")
    with pytest.raises(InvalidError):
        services.reject_grant(db, actor=company.manager.user, grant=grant, note="")
    services.reject_grant(db, actor=company.manager.user, grant=grant, note="not needed")
    assert grant.status == "rejected"


@pytest.mark.parametrize(("role", "decider", "allowed"), [
    ("analyst", "account_owner", True), ("analyst", "their_manager", True), ("analyst", "app_admin", True),
    ("analyst", "other_manager", False), ("analyst", "the_requester", False),
    # A role that reveals the credentials: the account's owner alone decides.
    ("publisher", "account_owner", True), ("publisher", "their_manager", False), ("publisher", "app_admin", False),
    ("publisher", "other_manager", False), ("publisher", "the_requester", False),
])
def test_who_decides_a_staff_request(db, kit, company, role, decider, allowed):
    boss = make_user(db, kit, roles=("manager",))
    staffer = make_user(db, kit)
    staffer.user.person.manager_id = boss.user.person_id
    accept_policy(db, staffer.user.person, company.standard)
    deciders = {"account_owner": company.manager.user, "their_manager": boss.user, "app_admin": company.admin.user,
                "other_manager": make_user(db, kit, roles=("manager",)).user, "the_requester": staffer.user}
    grant = services.request_role(db, actor=staffer.user, account_id=company.account.id, role_code=role,
                                  reason="I cover the weekend rota")
    if allowed:
        services.approve_grant(db, actor=deciders[decider], grant=grant)
        assert grant.status == "active" and grant.approved_by_id == deciders[decider].id
    else:
        with pytest.raises(ForbiddenError):
            services.approve_grant(db, actor=deciders[decider], grant=grant)
        assert grant.status == "requested"


# --- revealing roles on someone else's account: the business owner approves ----------------------------


@pytest.fixture
def elsewhere(company):
    """Olga owns an account; Mike, a manager who does not own it, has a report with the policy accepted."""
    company.add_user("olga", "manager", full_name="Olga Owner")
    company.add_account("olga_account", owner=company.olga, max_credential_holders=5)
    company.add_user("mike", "manager", full_name="Mike Manager")
    company.add_person("rita", manager=company.mike, full_name="Rita Reporter")
    accept_policy(company.db, company.rita, company.standard)
    accept_policy(company.db, company.rita, company.privileged)
    company.commit()


def test_a_manager_granting_a_revealing_role_on_someone_elses_account_waits_for_its_owner(db, company, elsewhere):
    grant = services.grant_role(db, actor=company.mike.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code="publisher",
                                reason="Covers the launch")
    assert grant.status == "requested" and grant.approved_by_id is None and services.awaits_owner(grant)
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.requested")).one()
    assert '"owner_approval":true' in event.details_json
    # Nobody but the owner approves it: not the manager who asked, not an app admin.
    for who in (company.mike.user, company.admin.user):
        with pytest.raises(ForbiddenError):
            services.approve_grant(db, actor=who, grant=grant)
    assert grant.status == "requested"
    services.approve_grant(db, actor=company.olga.user, grant=grant)
    assert grant.status == "active" and grant.approved_by_id == company.olga.id
    approved = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.approved")).one()
    assert '"owner_approval":true' in approved.details_json


def test_the_owner_granting_a_revealing_role_makes_it_active_at_once(db, company, elsewhere):
    grant = services.grant_role(db, actor=company.olga.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code="publisher",
                                reason="Covers the launch")
    assert grant.status == "active" and grant.approved_by_id == company.olga.id


def test_an_admin_granting_a_revealing_role_on_an_owned_account_waits_for_the_owner(db, company, elsewhere):
    grant = services.grant_role(db, actor=company.admin.user, person_id=company.rita.id, account_id=company.olga_account.id,
                                role_code="publisher", reason="Covers the launch")
    assert grant.status == "requested" and services.awaits_owner(grant)
    services.approve_grant(db, actor=company.olga.user, grant=grant)
    assert grant.status == "active"


def test_roles_that_reveal_nothing_need_no_owner_approval(db, company, elsewhere):
    grant = services.grant_role(db, actor=company.mike.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code="analyst",
                                reason="Reads the insights")
    assert grant.status == "active"


def test_admin_and_owner_roles_still_need_a_second_person_when_the_owner_grants_them(db, kit, company, elsewhere):
    for role in ("admin", "owner"):
        grant = services.grant_role(db, actor=company.olga.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code=role,
                                    reason="Backup")
        assert grant.status == "requested" and not services.awaits_owner(grant)
        with pytest.raises(ForbiddenError, match="second person"):
            services.approve_grant(db, actor=company.olga.user, grant=grant)
        services.approve_grant(db, actor=company.admin.user, grant=grant)
        assert grant.status == "active" and grant.approved_by_id == company.admin.id
    # Asked for by someone else, the owner's approval is the second person's.
    newcomer = make_person(db, manager_id=company.mike.user.person_id)
    accept_policy(db, newcomer, company.privileged)
    grant = services.grant_role(db, actor=company.mike.user, person_id=newcomer.id, account_id=company.olga_account.id, role_code="admin",
                                reason="Backup")
    with pytest.raises(ForbiddenError):
        services.approve_grant(db, actor=company.admin.user, grant=grant)
    services.approve_grant(db, actor=company.olga.user, grant=grant)
    assert grant.status == "active" and grant.approved_by_id == company.olga.id


def test_without_an_active_owner_the_usual_deciders_approve(db, kit, company, elsewhere):
    offboard(db, company.olga.user.person, "leaving")
    grant = services.grant_role(db, actor=company.mike.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code="publisher",
                                reason="Covers the launch")
    assert grant.status == "active"
    unowned = make_account(db, business_owner_id=None)
    grant = services.grant_role(db, actor=company.mike.user, person_id=company.rita.id, account_id=unowned.id, role_code="publisher",
                                reason="Covers the launch")
    assert grant.status == "active"


def test_the_owner_is_told_and_sees_the_request_waiting(db, company, elsewhere):
    grant = services.grant_role(db, actor=company.mike.user, person_id=company.rita.id, account_id=company.olga_account.id, role_code="publisher",
                                reason="Covers the launch")
    assert [u.id for u in approvers(db, grant)] == [company.olga.id]
