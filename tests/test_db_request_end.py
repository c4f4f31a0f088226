"""The end of a request: what a view changed and did not commit is never saved; a page that only
read is not rolled back object by object (SQLite and PostgreSQL, on a database of their own)."""

from __future__ import annotations

import pytest
from flask import Flask, session
from sqlalchemy import func, inspect, select

from govern import audit
from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.audit.services import AuditContext
from govern.db import database, get_session
from govern.db_tuning import discard_uncommitted
from govern.directory.models import Person
from govern.schema import upgrade
from govern.web import PUBLIC, permission
from tests.support import app_config

CTX = AuditContext(actor_label="test")


@pytest.fixture
def real_app(tmp_path, scratch_database_url) -> Flask:
    """An app on a database it commits to for real: the read mode of its connections applies."""
    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    with app.app_context(), database(app).session_scope() as db:
        db.add(Person(full_name="Ada Example", email="ada@example.com"))
        db.commit()

    @permission(PUBLIC)
    def flush_and_remember() -> str:
        # A GET view that writes and forgets to commit; the session cookie's save then commits.
        audit.record(get_session(), "test.uncommitted", context=CTX)
        session["seen"] = True
        return "ok"

    @permission(PUBLIC)
    def change_and_remember() -> str:
        # Changed, not even flushed: the session save's commit would flush it.
        get_session().scalars(select(Person)).one().full_name = "Changed Unsaved"
        session["seen"] = True
        return "ok"

    app.add_url_rule("/_test/flush", "test_flush", flush_and_remember)
    app.add_url_rule("/_test/change", "test_change", change_and_remember)
    yield app
    database(app).engine.dispose()


def _events(app: Flask, action: str) -> int:
    with app.app_context(), database(app).session_scope() as db:
        return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))


def test_a_flushed_write_the_view_did_not_commit_is_not_saved_with_the_session(real_app):
    response = real_app.test_client().get("/_test/flush")
    assert response.status_code == 200 and "govern_session" in response.headers.get("Set-Cookie", "")
    assert _events(real_app, "test.uncommitted") == 0


def test_a_changed_object_the_view_did_not_flush_is_not_saved_with_the_session(real_app):
    response = real_app.test_client().get("/_test/change")
    assert response.status_code == 200 and "govern_session" in response.headers.get("Set-Cookie", "")
    with real_app.app_context(), database(real_app).session_scope() as db:
        assert db.scalars(select(Person.full_name)).one() == "Ada Example"


def test_a_page_that_only_read_keeps_its_objects_and_is_not_rolled_back(real_app, scratch_database_url):
    if not scratch_database_url.startswith("sqlite"):
        pytest.skip("SQLite's read mode (govern.db_tuning); PostgreSQL has none")
    with real_app.test_request_context("/people/", method="GET"):
        db = get_session()
        person = db.scalars(select(Person)).one()
        discard_uncommitted(db)
        assert db.in_transaction() and not inspect(person).expired_attributes
        # Once the page writes, the end of the request undoes it (and expires what it loaded).
        audit.record(db, "test.page_write", context=CTX)
        discard_uncommitted(db)
        assert not db.in_transaction() and inspect(person).expired_attributes
    assert _events(real_app, "test.page_write") == 0
