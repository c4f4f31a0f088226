"""Server-side sessions: what identifies a user, idle and absolute timeouts, the list of live ones."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.auth import sessions
from govern.auth.models import WebSession
from govern.db import utcnow
from tests.factories import csrf_token, login, make_user


def test_a_session_that_only_passed_the_password_identifies_no_one(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"csrf_token": token, "email": who.email, "password": who.password})
    row = db.scalars(select(WebSession).order_by(WebSession.created_at.desc())).first()
    row.user_id = who.id  # even if the row named the user, it never completed the second factor
    db.commit()
    assert client.get("/").status_code == 302


def test_idle_sessions_are_purged_and_expiry_is_audited(app, db, kit):
    who = make_user(db, kit)
    client = app.test_client()
    login(client, db, who)
    with time_machine.travel(utcnow() + timedelta(minutes=45)):
        app.test_client().get("/login")  # a new visitor's session triggers the purge
        assert db.scalar(select(func.count()).select_from(WebSession).where(WebSession.user_id == who.id)) == 0
        assert "auth.sessions.purged" in db.scalars(select(AuditEvent.action)).all()
    other = make_user(db, kit)
    c2 = app.test_client()
    login(c2, db, other)
    with time_machine.travel(utcnow() + timedelta(minutes=31)):
        c2.get("/")
    assert "auth.session.expired" in db.scalars(select(AuditEvent.action)).all()


def test_expired_sessions_are_not_listed_as_live(app, db, kit):
    who = make_user(db, kit)
    login(app.test_client(), db, who)
    with time_machine.travel(utcnow() + timedelta(minutes=45)):
        assert sessions.list_user_sessions(db, who.user, idle=timedelta(minutes=30), absolute=timedelta(hours=12)) == []
