"""The policy gate's way forward (issue 16): send the grantee the policy; a person without a login
accepts it with a one-time link; then the grant goes through."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.grants.models import Grant
from govern.notifications.models import Notification, OutboxMessage
from govern.policies.models import Acknowledgement, AcknowledgementLink
from tests.factories import csrf_from, login, make_account, make_grant, make_person, make_user, publish_policy

TOKEN = re.compile(r"/policies/acknowledge#token=([A-Za-z0-9_-]+)")


@pytest.fixture
def setup(app, db, kit):
    manager = make_user(db, kit, roles=("manager",), full_name="Mona Manager")
    account = make_account(db, display_name="Acme Gate", business_owner_id=manager.user.person_id)
    nolog = make_person(db, full_name="Nora Nologin", email="nora@example.com")
    policy = publish_policy(db)
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    return manager, account, nolog, policy, client


def _grant(client, account, email):
    path = f"/grants/new?account_id={account.id}"
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "account_id": account.id, "person": email,
                                   "role_code": "publisher", "reason": "Posts for the launch"})


def _send(client, account, page_html):
    form = re.search(r'<form method="post" action="/grants/policy-request".*?</form>', page_html, re.S).group(0)
    data = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    assert data["account_id"] == str(account.id) and data["role_code"] == "publisher"
    return client.post("/grants/policy-request", data=data)


def _link_token(db, to):
    db.expire_all()
    bodies = db.scalars(select(OutboxMessage.body_text).where(OutboxMessage.to_address == to)
                        .order_by(OutboxMessage.id)).all()
    return TOKEN.search(bodies[-1]).group(1)


def _accept_with(app, token):
    anonymous = app.test_client()
    page = anonymous.get("/policies/acknowledge")
    assert page.status_code == 200 and 'id="ack-form"' in page.get_data(as_text=True)
    entered = anonymous.post("/policies/acknowledge", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                            "token": token})
    return anonymous, entered


def test_a_person_without_a_login_gets_a_one_time_link_and_then_the_grant_goes_through(app, db, setup):
    manager, account, nolog, policy, client = setup
    refused = _grant(client, account, nolog.email)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 200 and "must first accept" in html
    assert 'id="policy-gate"' in html and "one-time link" in html
    sent = _send(client, account, html)
    assert sent.status_code == 302 and sent.headers["Location"] == f"/grants/new?account_id={account.id}"

    token = _link_token(db, nolog.email)
    link = db.scalar(select(AcknowledgementLink))
    assert link.person_id == nolog.id and link.policy_version_id == policy.id and link.used_at is None
    assert link.expires_at - link.created_at == timedelta(days=7)
    # Stored hashed only: the token is nowhere in the database but the email's body.
    assert token not in link.token_digest
    audit_text = " ".join(db.scalars(select(AuditEvent.details_json)).all())
    assert token not in audit_text
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "policy.acknowledgement_requested"))
    assert event.actor_label == manager.email and f'"person_id":{nolog.id}' in event.details_json.replace(" ", "")

    anonymous, entered = _accept_with(app, token)
    assert entered.status_code == 302 and entered.headers["Location"] == "/policies/acknowledge/read"
    read = anonymous.get("/policies/acknowledge/read").get_data(as_text=True)
    assert "Hello Nora Nologin" in read and "Be kind. Keep credentials secret." in read
    accepted = anonymous.post("/policies/acknowledge/accept", data={"csrf_token": csrf_from(read)})
    assert accepted.status_code == 302 and accepted.headers["Location"] == "/policies/acknowledge/done"
    assert "Thank you" in anonymous.get("/policies/acknowledge/done").get_data(as_text=True)

    db.expire_all()
    assert db.scalar(select(Acknowledgement).where(Acknowledgement.person_id == nolog.id)) is not None
    assert db.scalar(select(AcknowledgementLink)).used_at is not None
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "policy.accepted"))
    assert event.actor_label.startswith("acknowledgement link #") and "nora@example.com" in event.actor_label
    note = db.scalar(select(Notification).where(Notification.user_id == manager.id, Notification.kind == "policy.accepted"))
    assert "Nora Nologin accepted" in note.title and note.link == f"/grants/new?account_id={account.id}&person=nora%40example.com"

    # The link worked once.
    _, again = _accept_with(app, token)
    assert again.status_code == 400 and "does not work any more" in again.get_data(as_text=True)
    # And the grant goes through now.
    assert _grant(client, account, nolog.email).status_code == 302
    assert db.scalar(select(Grant).where(Grant.person_id == nolog.id)).status == "active"


def test_links_expire_are_voided_by_a_newer_link_or_version_and_reject_junk(app, db, setup):
    manager, account, nolog, policy, client = setup
    html = _grant(client, account, nolog.email).get_data(as_text=True)
    _send(client, account, html)
    first = _link_token(db, nolog.email)
    # Sent again a few minutes later is refused; after that, a new link voids the first.
    assert _send(client, account, html).status_code == 302
    assert len(db.scalars(select(AcknowledgementLink)).all()) == 1
    db.execute(update(AcknowledgementLink).values(created_at=utcnow() - timedelta(hours=1)))
    db.commit()
    _send(client, account, html)
    second = _link_token(db, nolog.email)
    assert second != first
    assert _accept_with(app, first)[1].status_code == 400
    # Expired.
    db.execute(update(AcknowledgementLink).where(AcknowledgementLink.used_at.is_(None))
               .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    assert _accept_with(app, second)[1].status_code == 400
    # A newer version of the policy voids a link of the old one.
    db.execute(update(AcknowledgementLink).values(expires_at=utcnow() + timedelta(days=1), used_at=None))
    db.commit()
    publish_policy(db)
    db.commit()
    assert _accept_with(app, second)[1].status_code == 400
    for junk in ("", "x", "A" * 43, "A" * 5000):
        assert _accept_with(app, junk)[1].status_code == 400
    # Without having entered a token, the read and accept steps send you back.
    stranger = app.test_client()
    assert stranger.get("/policies/acknowledge/read").status_code == 302
    assert db.scalar(select(Acknowledgement).where(Acknowledgement.person_id == nolog.id)) is None


def test_someone_with_a_login_is_sent_the_policy_page_not_a_link(app, db, kit, setup):
    manager, account, _nolog, policy, client = setup
    colleague = make_user(db, kit, full_name="Lars Login")
    db.commit()
    html = _grant(client, account, colleague.email).get_data(as_text=True)
    assert "sign in and accept" in html
    assert _send(client, account, html).status_code == 302
    db.expire_all()
    body = db.scalar(select(OutboxMessage.body_text).where(OutboxMessage.to_address == colleague.email))
    assert f"/policies/{policy.id}" in body and "#token=" not in body
    assert db.scalar(select(Notification).where(Notification.user_id == colleague.id,
                                                Notification.kind == "policy.acknowledgement_requested")) is not None


def test_only_who_may_grant_the_person_may_send_the_policy(app, db, kit, setup):
    manager, account, nolog, policy, client = setup
    other = make_user(db, kit, roles=("manager",))
    foreign = make_account(db, display_name="Not Theirs")
    db.commit()
    outsider = app.test_client()
    login(outsider, db, other)
    token = csrf_from(outsider.get("/grants/").get_data(as_text=True))
    data = {"csrf_token": token, "person_id": nolog.id, "version_id": policy.id, "account_id": foreign.id, "role_code": "publisher"}
    assert outsider.post("/grants/policy-request", data=data).status_code == 403
    staff = make_user(db, kit)
    db.commit()
    plain = app.test_client()
    login(plain, db, staff)
    assert plain.post("/grants/policy-request", data=data | {"csrf_token": csrf_from(plain.get("/account").get_data(as_text=True))}).status_code == 403
    assert db.execute(text("SELECT count(*) FROM acknowledgement_links")).scalar() == 0


def test_a_request_refused_at_approval_offers_the_policy_and_is_approved_after_acceptance(app, db, kit, setup):
    manager, account, nolog, policy, client = setup

    request = make_grant(db, nolog, account, "publisher", status="requested")
    db.commit()
    token = csrf_from(client.get("/grants/").get_data(as_text=True))
    refused = client.post(f"/grants/{request.id}/approve", data={"csrf_token": token})
    assert refused.status_code == 302 and refused.headers["Location"] == f"/grants/?policy_for={request.id}#policy-gate"
    page = client.get(refused.headers["Location"]).get_data(as_text=True)
    assert "must first accept" in page and 'id="policy-gate"' in page and "approve the request" in page
    form = re.search(r'<form method="post" action="/grants/policy-request".*?</form>', page, re.S).group(0)
    data = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    assert data["grant_id"] == str(request.id)
    assert client.post("/grants/policy-request", data=data).headers["Location"] == "/grants/"
    assert db.scalar(select(AcknowledgementLink)).grant_id == request.id

    anonymous, entered = _accept_with(app, _link_token(db, nolog.email))
    read = anonymous.get(entered.headers["Location"]).get_data(as_text=True)
    anonymous.post("/policies/acknowledge/accept", data={"csrf_token": csrf_from(read)})
    note = db.scalar(select(Notification).where(Notification.user_id == manager.id, Notification.kind == "policy.accepted"))
    assert note.link == "/grants/#waiting"
    # The pending request proceeds as it always did: the manager approves it.
    token = csrf_from(client.get("/grants/").get_data(as_text=True))
    assert client.post(f"/grants/{request.id}/approve", data={"csrf_token": token}).status_code == 302
    db.expire_all()
    assert db.get(Grant, request.id).status == "active"
    # Someone who may not decide that request is not offered the gate, nor may send it.
    other = make_user(db, kit, roles=("manager",))
    db.commit()
    outsider = app.test_client()
    login(outsider, db, other)
    assert 'id="policy-gate"' not in outsider.get(f"/grants/?policy_for={request.id}").get_data(as_text=True)


@pytest.mark.parametrize("value", ["x", "-1", "0", "99999999999999999999", "１２"])
def test_odd_policy_for_values_show_the_access_page_without_a_gate(app, db, setup, value):
    client = setup[-1]
    response = client.get(f"/grants/?policy_for={value}")
    assert response.status_code == 200 and 'id="policy-gate"' not in response.get_data(as_text=True)
