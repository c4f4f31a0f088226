"""The Notifications page, its POST actions, and the unread count in the navigation."""

from __future__ import annotations

import re

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.notifications import services
from govern.notifications.models import Notification
from tests.factories import csrf_token, make_user, signed_in
from tests.sql_capture import statements


def test_the_page_lists_notifications_and_the_nav_shows_the_unread_count(app, db, kit):
    who, client = signed_in(app, db, kit)
    services.notify(db, user=who.user, kind="t", title="Approval needed: Admin on Acme", link="/grants/")
    services.notify(db, user=who.user, kind="t", title="Request approved", body="Enjoy")
    db.commit()
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'Notifications <span class="badge badge-count" aria-label="2 unread">2</span>', home)
    page = client.get("/notifications/").get_data(as_text=True)
    assert '<a href="/grants/">Approval needed: Admin on Acme</a>' in page and "Enjoy" in page
    assert "Mark all read" in page


def test_mark_one_read_and_all_read_by_post_with_csrf(app, db, kit):
    who, client = signed_in(app, db, kit)
    first, second = (services.notify(db, user=who.user, kind="t", title=t)[0] for t in ("one", "two"))
    db.commit()
    assert client.post(f"/notifications/{first.id}/read").status_code == 400  # no CSRF token
    assert client.get(f"/notifications/{first.id}/read").status_code == 405
    token = csrf_token(client, "/notifications/")
    assert client.post(f"/notifications/{first.id}/read", data={"csrf_token": token}).status_code == 302
    db.expire_all()
    assert db.get(Notification, first.id).read_at is not None and db.get(Notification, second.id).read_at is None
    assert client.post("/notifications/read-all", data={"csrf_token": token}).status_code == 302
    db.expire_all()
    assert db.get(Notification, second.id).read_at is not None
    assert "badge-count" not in client.get("/").get_data(as_text=True)
    assert len(db.scalars(select(AuditEvent).where(AuditEvent.action == "notifications.read")).all()) == 2


def test_someone_elses_notification_is_not_found(app, db, kit):
    other = make_user(db, kit)
    (theirs,) = services.notify(db, user=other.user, kind="t", title="private")
    db.commit()
    _, client = signed_in(app, db, kit)
    token = csrf_token(client, "/notifications/")
    assert client.post(f"/notifications/{theirs.id}/read", data={"csrf_token": token}).status_code == 404
    db.expire_all()
    assert db.get(Notification, theirs.id).read_at is None
    assert "private" not in client.get("/notifications/").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/notifications/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_one_count_query_per_request_and_no_query_per_row(app, db, kit, connection):
    who, client = signed_in(app, db, kit)
    other = make_user(db, kit)
    for n in range(5):  # someone else's unread notifications count for them only
        services.notify(db, user=other.user, kind="t", title=f"o{n}")
    for n in range(3):
        services.notify(db, user=who.user, kind="t", title=f"n{n}")
    db.commit()
    few = statements(connection, lambda: client.get("/notifications/"))
    for n in range(40):
        services.notify(db, user=who.user, kind="t", title=f"m{n}", link="/grants/")
    db.commit()
    many = statements(connection, lambda: client.get("/notifications/"))
    assert len(many) == len(few)
    # The page itself and the navigation both show the unread count, and it comes with the session:
    # the statement that reads the session row and its user counts them; no statement of its own.
    counting = [s for s in many if "count(" in s.lower() and "notifications" in s]
    assert len(counting) == 1 and "web_sessions" in counting[0], counting
    assert re.search(r'aria-label="43 unread">43</span>', client.get("/").get_data(as_text=True))
    page2 = client.get("/notifications/?page=2").get_data(as_text=True)
    assert "← Newer" in page2
