"""In-app notifications, and the grant events that notify people in govern and by email."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.db import database, utcnow
from govern.errors import NotFoundError
from govern.grants import services as grants
from govern.grants.models import Grant
from govern.notifications import services
from govern.notifications.models import Notification, OutboxMessage
from tests.factories import accept_policy, make_account, make_grant, make_person, make_user, publish_policy


def _notes(db, user_id=None, kind=None):
    query = select(Notification).order_by(Notification.id)
    if user_id is not None:
        query = query.where(Notification.user_id == user_id)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    return db.scalars(query).all()


def _mails(db, kind=None):
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    return db.scalars(query.where(OutboxMessage.kind == kind) if kind else query).all()


def test_notify_counts_and_marks_read(app, db, kit):
    alice, bob = make_user(db, kit), make_user(db, kit)
    with app.test_request_context():
        services.notify(db, users=[alice.user, bob.id, alice.id], kind="test", title="Hello\nthere", link="/grants/")
        services.notify(db, user=alice.user, kind="test", title="Second")
        assert services.unread_count(db, alice.id) == 2 and services.unread_count(db, bob.id) == 1
        first = _notes(db, alice.id)[0]
        assert first.title == "Hello there" and first.link == "/grants/"
        with pytest.raises(NotFoundError):
            services.mark_read(db, actor=bob.user, notification_id=first.id)  # not bob's
        services.mark_read(db, actor=alice.user, notification_id=first.id)
        assert services.unread_count(db, alice.id) == 1
        assert services.mark_all_read(db, actor=alice.user) == 1
        assert services.mark_all_read(db, actor=alice.user) == 0
    assert services.unread_count(db, alice.id) == 0 and services.unread_count(db, bob.id) == 1
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "notifications.read")).all()
    assert len(events) == 2 and all(e.actor_user_id == alice.id for e in events)


def test_links_are_paths_inside_govern(app, db, kit):
    alice = make_user(db, kit)
    for bad in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        with pytest.raises(ValueError):
            services.notify(db, user=alice.user, kind="t", title="x", link=bad)


def test_list_is_paginated_newest_first(app, db, kit):
    alice = make_user(db, kit)
    for n in range(5):
        services.notify(db, user=alice.user, kind="t", title=f"n{n}")
    page1 = services.list_notifications(db, alice.id, page=1, per_page=3)
    page2 = services.list_notifications(db, alice.id, page=2, per_page=3)
    assert [n.title for n in page1.items] == ["n4", "n3", "n2"] and page1.has_next
    assert [n.title for n in page2.items] == ["n1", "n0"] and not page2.has_next


# --- grant events ---------------------------------------------------------------------------------


@pytest.fixture
def company(app, company):
    """Mona manages Rita (who accepted both policies); Olga owns Acme Instagram; Ada is an admin."""
    company.add_user("manager", "manager", full_name="Mona Manager")
    company.add_user("owner", "manager", full_name="Olga Owner")
    company.add_user("admin", "admin", full_name="Ada Admin")
    company.add_account("account", owner=company.owner, display_name="Acme Instagram")
    company.add_user("report", full_name="Rita Report", manager=company.manager)
    company.add_policies(accepted_by=[company.report])
    company.commit()
    with app.test_request_context():
        yield company


def test_a_request_needing_approval_notifies_the_approvers_in_app_and_by_email(db, company):
    grant = grants.grant_role(db, actor=company.manager.user, person_id=company.report.user.person_id, account_id=company.account.id,
                              role_code="admin", reason="Backup admin")
    assert grant.status == "requested"
    # The manager asked, so only the account's owner may decide; admins are not bothered.
    notes = _notes(db, kind="grant.approval_needed")
    assert [n.user_id for n in notes] == [company.owner.id]
    assert "Admin on Acme Instagram for Rita Report" in notes[0].title and notes[0].link == "/grants/"
    (mail,) = _mails(db, "grant.approval_needed")
    assert mail.to_address == company.owner.email and mail.subject.startswith("[govern] Approval needed")
    assert "http://localhost/grants/" in mail.body_text and mail.dedupe_key == f"grant.approval_needed:{grant.id}:{company.owner.id}"


def test_admins_are_asked_when_nobody_closer_may_decide(db, company, kit):
    other_admin = make_user(db, kit, roles=("admin",))
    lone = make_account(db, display_name="Lone account")  # no business owner
    stranger = make_person(db, full_name="Sam Stranger")  # no manager
    accept_policy(db, stranger, publish_policy(db, "privileged"))
    grant = grants.grant_role(db, actor=company.admin.user, person_id=stranger.id, account_id=lone.id, role_code="owner", reason="Founder")
    assert grant.status == "requested"
    # Every admin but the requester (who may never approve their own request).
    assert {n.user_id for n in _notes(db, kind="grant.approval_needed")} == {other_admin.id}
    assert [m.to_address for m in _mails(db, "grant.approval_needed")] == [other_admin.email]


def test_a_self_request_notifies_owner_and_manager(db, company):
    grants.request_role(db, actor=company.report.user, account_id=company.account.id, role_code="analyst", reason="Reporting")
    assert {n.user_id for n in _notes(db, kind="grant.approval_needed")} == {company.owner.id, company.manager.id}
    assert len(_mails(db, "grant.approval_needed")) == 2


def test_approval_and_rejection_notify_the_requester_and_grantee(db, company):
    grant = grants.request_role(db, actor=company.report.user, account_id=company.account.id, role_code="analyst", reason="Reporting")
    grants.approve_grant(db, actor=company.owner.user, grant=grant, note="fine")
    (note,) = _notes(db, kind="grant.approved")
    assert note.user_id == company.report.id and "Request approved" in note.title
    assert [m.to_address for m in _mails(db, "grant.approved")] == [company.report.email]
    second = grants.request_role(db, actor=company.report.user, account_id=company.account.id, role_code="advertiser", reason="Ads")
    grants.reject_grant(db, actor=company.manager.user, grant=second, note="Not this quarter")
    (rejected,) = _notes(db, kind="grant.rejected")
    assert rejected.user_id == company.report.id and rejected.body == "Not this quarter"
    assert len(_mails(db, "grant.rejected")) == 1


def test_expiry_notifies_the_holder_once(db, company):
    grant = make_grant(db, company.report.user.person, company.account, "analyst", expires_at=utcnow() + timedelta(hours=1))
    db.commit()
    later = utcnow() + timedelta(hours=2)
    assert grants.expire_grants(db, now=later)["expired"] == 1
    assert grants.expire_grants(db, now=later)["expired"] == 0
    (note,) = _notes(db, kind="grant.expired")
    assert note.user_id == company.report.id and "Analyst on Acme Instagram" in note.title
    (mail,) = _mails(db, "grant.expired")
    assert mail.to_address == company.report.email and mail.dedupe_key == f"grant.expired:{grant.id}:{company.report.id}"


def test_a_rolled_back_event_leaves_no_notification_and_no_email(app, db, company):
    db.commit()
    # The app's own session, as a view would use it, with the change rolled back instead of committed.
    with database(app).session_scope() as session:
        manager = session.get(type(company.manager.user), company.manager.id)
        grants.grant_role(session, actor=manager, person_id=company.report.user.person_id, account_id=company.account.id,
                          role_code="admin", reason="Backup admin")
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        assert session.scalar(select(func.count()).select_from(Notification)) == 1
        session.rollback()
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert db.scalar(select(func.count()).select_from(Notification)) == 0
    assert db.scalar(select(func.count()).select_from(Grant)) == 0
