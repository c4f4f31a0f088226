"""Each person routes their notifications: by email (the default), to their own chat, or the app only;
and the admin's webhook pages."""

from __future__ import annotations

from sqlalchemy import select

from govern.db import get_session
from govern.notifications import services as notifications
from govern.notifications.models import ChatMessage, Notification, OutboxMessage
from govern.webhooks import chat
from govern.webhooks.subscriptions import webhook_box
from tests.factories import Company, csrf_from
from tests.support import TEST_SECRET_KEY
from tests.webhooks.receiver import Endpoint, start

BOX = webhook_box([TEST_SECRET_KEY])


def _notify_and_email(db, user, kind: str) -> None:
    notifications.notify(db, kind=kind, title=f"About {kind}", user=user, link="/grants/", body="Please look.")
    notifications.email_users(db, users=[user], kind=kind, subject=f"About {kind}", body="Please look.", link="/grants/")


def test_each_person_chooses_email_chat_or_the_app_and_security_notices_always_email(app, db, company):
    company.add_user("mail_user")
    company.add_user("chat_user")
    company.add_user("quiet_user")
    company.commit()
    chat.set_chat_channel(db, actor=company.chat_user.user, fmt="slack", url="http://127.0.0.1:9/me", box=BOX,
                          allow_plain_loopback=True)
    notifications.set_preferences(db, actor=company.chat_user.user, choices={"grants": "chat"})
    notifications.set_preferences(db, actor=company.quiet_user.user, choices={"grants": "app", "made-up": "chat"})
    for who in (company.mail_user, company.chat_user, company.quiet_user):
        _notify_and_email(db, who.user, "grant.approval_needed")
        _notify_and_email(db, who.user, "auth.password_changed")  # a security notice
    db.flush()

    def emails(who) -> list[str]:
        return list(db.scalars(select(OutboxMessage.subject).where(OutboxMessage.to_address == who.user.email)))

    assert emails(company.mail_user) == ["About grant.approval_needed", "About auth.password_changed"]
    assert emails(company.chat_user) == ["About auth.password_changed"]
    assert emails(company.quiet_user) == ["About auth.password_changed"]
    chats = db.scalars(select(ChatMessage)).all()
    assert [(m.user_id, m.kind) for m in chats] == [(company.chat_user.user.id, "grant.approval_needed")]
    for who in (company.mail_user, company.chat_user, company.quiet_user):  # everyone has both in the app
        assert db.scalar(select(Notification.id).where(Notification.user_id == who.user.id,
                                                       Notification.kind == "grant.approval_needed"))
    assert notifications.preferences_of(db, company.quiet_user.user.id)["grants"] == "app"


def test_chat_messages_reach_the_persons_own_chat_and_are_retried(scratch_app):
    endpoint = start(Endpoint(answers=[500]))
    with scratch_app.app_context():
        session = get_session()
        company = Company(scratch_app, session)
        company.add_user("person")
        company.commit()
        user = company.person.user
        chat.set_chat_channel(session, actor=user, fmt="teams", url=endpoint.url, box=BOX, allow_plain_loopback=True)
        notifications.set_preferences(session, actor=user, choices={"rotation": "chat"})
        notifications.notify(session, kind="rotation.reminder", title="Rotation overdue: Password of @acme",
                             user=user, link="/rotation/tasks/3", body="It is 2 day(s) late.")
        session.commit()
        assert chat.send_chat(session, box=BOX) == {"sent": 0, "failed": 1, "gave_up": 0}
        message = session.scalars(select(ChatMessage)).one()
        message.next_attempt_at = message.created_at  # the backoff has passed
        session.commit()
        assert chat.send_chat(session, box=BOX)["sent"] == 1
        assert chat.send_chat(session, box=BOX)["sent"] == 0  # once
    card = endpoint.bodies[0]["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Rotation overdue: Password of @acme"
    assert card["actions"][0]["url"].endswith("/rotation/tasks/3")
    endpoint.stop()


def test_only_admins_manage_webhooks_and_an_address_is_never_shown_back(app, db, company):
    company.add_staff("admin", "it")
    assert company.client_for(company.it).get("/admin/webhooks/").status_code == 403
    admin = company.client_for(company.admin)
    page = admin.get("/admin/webhooks/new")
    token = csrf_from(page.get_data(as_text=True))
    url = "https://hooks.slack.com/services/T0001/B0001/abcdefSECRETpart"
    created = admin.post("/admin/webhooks/new", data={"csrf_token": token, "name": "Security channel", "format": "slack",
                                                      "url": url, "event_types": ["grant.requested", "secret.revealed"]})
    assert created.status_code == 200 and "Webhook added" in created.get_data(as_text=True)
    listing = admin.get("/admin/webhooks/").get_data(as_text=True)
    assert "Security channel" in listing and "SECRETpart" not in listing and "hooks.slack.com/…part" in listing
    bad = admin.post("/admin/webhooks/new", data={"csrf_token": token, "name": "x", "format": "slack",
                                                  "url": "https://evil.example/hook", "event_types": ["grant.requested"]})
    assert bad.status_code == 400 and "hooks.slack.com" in bad.get_data(as_text=True)
    assert "evil.example" not in bad.get_data(as_text=True)  # the typed address is not echoed either


def test_a_person_sets_their_chat_and_routes_groups_to_it(app, db, company):
    company.add_user("someone")
    client = company.client_for(company.someone)
    page = client.get("/account/notifications/")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    refused = client.post("/account/notifications/", data={"csrf_token": token, "group_grants": "chat"},
                          follow_redirects=True)
    assert "Add your chat first" in refused.get_data(as_text=True)
    set_chat = client.post("/account/notifications/chat", data={"csrf_token": token, "format": "slack",
                                                                "url": "https://hooks.slack.com/services/T/B/mine1234"},
                           follow_redirects=True)
    assert "Your chat is set" in set_chat.get_data(as_text=True) and "mine1234" not in set_chat.get_data(as_text=True)
    saved = client.post("/account/notifications/", data={"csrf_token": token, "group_grants": "chat",
                                                          "group_rotation": "app"}, follow_redirects=True)
    assert "saved" in saved.get_data(as_text=True)
    prefs = notifications.preferences_of(db, company.someone.user.id)
    assert prefs["grants"] == "chat" and prefs["rotation"] == "app" and prefs["offboarding"] == "email"
