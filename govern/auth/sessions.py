"""Server-side sessions: the cookie carries a random token, the state lives in ``web_sessions``.

This is what makes logout, deactivation and role changes end a session at once (a cookie
captured earlier finds no row), and what enforces the idle and absolute timeouts on the server.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any, cast

from flask import Flask, Request, Response, g, request
from flask import session as flask_session
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import String, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload
from werkzeug.datastructures import CallbackDict

from govern import audit
from govern.audit.services import AuditContext
from govern.auth.models import User, WebSession
from govern.crypto.tokens import new_token, token_digest
from govern.db import get_session, rowcount, utcnow
from govern.errors import NotFoundError
from govern.notifications.services import unread_count_of

#: The cookie name when served over HTTPS: the __Host- prefix pins it to this host, path / and Secure.
SECURE_COOKIE_NAME = "__Host-govern_session"
PLAIN_COOKIE_NAME = "govern_session"
#: last_seen_at is written at most this often for a session whose data did not change.
TOUCH_INTERVAL = timedelta(seconds=60)


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The session dict of one request, with what save_session needs to know."""

    def __init__(self, initial: dict[str, Any] | None = None, *, row: WebSession | None = None) -> None:
        def on_update(_self: ServerSession) -> None:
            _self.modified = True

        super().__init__(initial or {}, on_update)
        self.row = row
        #: The row's user (with person and roles), read in the same statement as the row.
        self.user: User | None = None
        #: That user's unread notifications when the request began (same statement).
        self.unread_notifications: int | None = None
        self.modified = False
        self.regenerate = False
        self.ended = False
        self.expired = False
        #: The user whose session had expired (the form they were sending may come back after sign-in).
        self.expired_user_id: int | None = None
        #: Set by the login flow: stamps to write with the next save.
        self.mark_authenticated = False
        self.mark_mfa_verified = False
        #: When the second factor happened, if not now (a provider's MFA at single sign-on).
        self.mfa_verified_stamp: Any = None

    @property
    def digest(self) -> str | None:
        """The stored id (token digest) of this session, if it has been saved."""
        return self.row.id if self.row is not None else None


def cookie_name(request: Request) -> str:
    """Secure requests use the __Host- cookie; plain HTTP (local embedded use) the plain one."""
    return SECURE_COOKIE_NAME if request.is_secure else PLAIN_COOKIE_NAME


#: Built once: every request reads its session, and its user with roles and person, with it; and
#: the user's unread notifications, which the layout of every page shows.
_SESSION_AND_USER = (
    select(WebSession, User, unread_count_of(WebSession.user_id)).outerjoin(User, User.id == WebSession.user_id)
    .options(joinedload(User.role_rows)).where(WebSession.id == bindparam("session_id", type_=String))
)


def server_session() -> ServerSession:
    """The request's session, typed as what ServerSessionInterface opens for every request."""
    return cast(ServerSession, flask_session)


class ServerSessionInterface(SessionInterface):
    """Loads and stores session state in the database through the request's DB session."""

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(cookie_name(request))
        if not token or len(token) > 100:
            return ServerSession()
        db = get_session()
        try:
            # The signed-in user (with roles and person) comes in the same statement: Flask-Login's
            # loader takes it from here instead of asking again.
            found = db.execute(_SESSION_AND_USER, {"session_id": token_digest(token)}).unique().first()
            row = found[0] if found is not None else None
        except OperationalError:
            # Database down: carry on without a session; the view's own query answers 503.
            db.rollback()
            return ServerSession()
        if row is None:
            return ServerSession()
        now = utcnow()
        started = row.authenticated_at or row.created_at
        idle_out = now - row.last_seen_at > app.config["SESSION_IDLE_TIMEOUT"]
        if idle_out or now - started > app.config["SESSION_ABSOLUTE_TIMEOUT"]:
            db.execute(delete(WebSession).where(WebSession.id == row.id))
            if row.user_id is not None:
                audit.record(db, "auth.session.expired", target_type="user", target_id=row.user_id,
                             details={"limit": "idle" if idle_out else "absolute"}, context=_system_context(request))
            db.commit()
            expired = ServerSession()
            expired.expired = row.user_id is not None
            expired.expired_user_id = row.user_id
            return expired
        try:
            data = json.loads(row.data)
        except ValueError:
            data = {}
        # Detached, so the request's rollbacks and commits do not expire it: saving the session
        # then needs no second round trip to read the row again.
        db.expunge(row)
        opened = ServerSession(data, row=row)
        assert found is not None  # row came from it
        opened.user, opened.unread_notifications = found[1], found[2]
        return opened

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        if g.get("database_down"):
            return  # the database-down page: nothing to save, nowhere to save it

        db = get_session()
        name = cookie_name(request)
        secure = request.is_secure
        carried_authenticated_at = session.row.authenticated_at if session.row is not None else None
        carried_mfa_verified_at = session.row.mfa_verified_at if session.row is not None else None
        if session.ended or (session.row is not None and session.regenerate):
            if session.row is not None:
                db.execute(delete(WebSession).where(WebSession.id == session.row.id))
            if session.ended:
                db.commit()
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")
                return
            session.row = None
        now = utcnow()
        if session.row is None:
            if not session:
                return  # nothing to remember about an anonymous visitor
            _purge_idle_sessions(db, now - app.config["SESSION_IDLE_TIMEOUT"], request)
            token = new_token()
            values: dict[str, Any] = {
                "id": token_digest(token),
                "public_id": secrets.token_hex(8),
                "user_id": _user_id(session),
                "data": json.dumps(dict(session)),
                "created_at": now,
                "last_seen_at": now,
                "authenticated_at": now if session.mark_authenticated else carried_authenticated_at,
                "mfa_verified_at": (session.mfa_verified_stamp or now) if session.mark_mfa_verified else carried_mfa_verified_at,
                "ip": (request.remote_addr or "")[:64] or None,
                "user_agent": (request.user_agent.string or "")[:200] or None,
            }
            db.execute(insert(WebSession).values(**values))
            db.commit()
            response.set_cookie(
                name, token, path="/", secure=secure, httponly=True, samesite="Lax"
            )  # a browser-session cookie: the server decides when it ends
            return
        changes: dict[str, Any] = {}
        if session.modified:
            changes["data"] = json.dumps(dict(session))
            changes["user_id"] = _user_id(session)
        if session.mark_mfa_verified:
            changes["mfa_verified_at"] = session.mfa_verified_stamp or now
        if changes or now - session.row.last_seen_at >= TOUCH_INTERVAL:
            changes["last_seen_at"] = now
            result = db.execute(update(WebSession).where(WebSession.id == session.row.id).values(**changes))
            db.commit()
            if rowcount(result) == 0:
                # The row was deleted during this request (logout elsewhere, role change...).
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")


def _system_context(request: Request) -> AuditContext:
    # No current_user here: the session that would identify one is being opened or saved.
    return AuditContext(actor_label="system", ip=request.remote_addr)


def _purge_idle_sessions(db: Any, cutoff: Any, request: Request) -> None:
    """Delete sessions idle past the limit (an indexed delete), so the table cannot grow without bound."""
    signed_in = db.scalar(select(func.count()).select_from(WebSession).where(WebSession.last_seen_at < cutoff, WebSession.user_id.is_not(None)))
    purged = db.execute(delete(WebSession).where(WebSession.last_seen_at < cutoff)).rowcount
    if signed_in:
        audit.record(db, "auth.sessions.purged", details={"count": purged, "signed_in": signed_in, "limit": "idle"},
                     context=_system_context(request))


def purge_stale_sessions(db: Any, *, idle_timeout: timedelta, absolute_timeout: timedelta,
                         now: Any = None) -> dict[str, int]:
    """Delete every session past its idle or absolute limit (the jobs runner calls this)."""
    now = now or utcnow()
    stale = or_(WebSession.last_seen_at < now - idle_timeout,
                func.coalesce(WebSession.authenticated_at, WebSession.created_at) < now - absolute_timeout)
    signed_in = db.scalar(select(func.count()).select_from(WebSession).where(stale, WebSession.user_id.is_not(None))) or 0
    purged = db.execute(delete(WebSession).where(stale)).rowcount or 0
    if signed_in:
        audit.record(db, "auth.sessions.purged", details={"count": purged, "signed_in": signed_in, "limit": "jobs"})
    return {"purged": purged, "signed_in": signed_in}


def _user_id(session: ServerSession) -> int | None:
    raw = session.get("_user_id")
    return int(raw) if raw is not None and str(raw).isdigit() else None


# --- ending sessions: every session of a user, one session, the list of live ones --------------


def end_user_sessions(
    session: Session, *, user: User, actor: User | None, reason: str, keep_session_id: str | None = None
) -> int:
    """End every session of ``user`` (but ``keep_session_id``); a captured cookie stops working at once."""
    stmt = delete(WebSession).where(WebSession.user_id == user.id)
    if keep_session_id is not None:
        stmt = stmt.where(WebSession.id != keep_session_id)
    ended: int = rowcount(session.execute(stmt.execution_options(synchronize_session=False)))
    if ended:
        audit.record(session, "auth.sessions.ended", actor=actor, target_type="user", target_id=user.id,
                     details={"count": ended, "reason": reason})
    return ended


def list_user_sessions(session: Session, user: User, *, idle: timedelta, absolute: timedelta) -> list[WebSession]:
    """The user's live sessions (not past either timeout), most recently used first."""
    now = utcnow()
    return [
        row for row in session.scalars(
            select(WebSession).where(WebSession.user_id == user.id, WebSession.last_seen_at > now - idle)
            .order_by(WebSession.last_seen_at.desc())
        )
        if now - (row.authenticated_at or row.created_at) <= absolute
    ]


def end_one_session(session: Session, *, actor: User, owner: User, public_id: str) -> None:
    """End one session of ``owner`` by its public handle."""
    row = session.scalar(select(WebSession).where(WebSession.public_id == public_id, WebSession.user_id == owner.id))
    if row is None:
        raise NotFoundError("That session has already ended.")
    session.delete(row)
    audit.record(session, "auth.session.ended", actor=actor, target_type="user", target_id=owner.id,
                 details={"session": public_id, "reason": "ended_by_owner" if actor.id == owner.id else "ended_by_admin"})
