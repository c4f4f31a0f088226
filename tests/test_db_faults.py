"""R9 on PostgreSQL: a request stuck behind a lock fails with a 503 within the lock timeout, changing nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from govern.app import create_app
from govern.auth.models import User
from govern.db import database
from govern.schema import upgrade
from tests.factories import login, make_user, post
from tests.support import app_config


def test_a_request_stuck_behind_the_audit_chain_lock_gets_a_503_not_a_hang(tmp_path, scratch_database_url):
    if not scratch_database_url.startswith("postgresql"):
        pytest.skip("lock_timeout is PostgreSQL's; SQLite gives up after busy_timeout (30 s) with the same 503")
    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url, DB_LOCK_TIMEOUT_SECONDS=1))
    kit = app.extensions["govern.auth"]
    with database(app).session_scope() as session:
        admin, other = make_user(session, kit, roles=("admin",)), make_user(session, kit)
        session.commit()
        client = app.test_client()
        login(client, session, admin)
    blocker_engine = create_engine(scratch_database_url)
    blocker = blocker_engine.connect()
    # Another transaction holds the audit chain head (as a long job that recorded an event would).
    blocker.execute(text("UPDATE audit_chain_head SET last_hash = last_hash WHERE id = 1"))
    result: dict[str, Any] = {}

    def deactivate() -> None:
        response = post(client, f"/admin/users/{other.id}/deactivate")
        result["status"], result["body"] = response.status_code, response.get_data(as_text=True)

    try:
        worker = threading.Thread(target=deactivate)
        worker.start()
        worker.join(timeout=60)  # without a lock timeout the request would wait forever
        assert not worker.is_alive(), "the request hung behind the lock"
    finally:
        blocker.rollback()
        blocker.close()
        blocker_engine.dispose()
    assert result["status"] == 503, result
    assert "did not do it" in result["body"] or "Nothing was changed" in result["body"]
    with database(app).session_scope() as session:
        assert session.get(User, other.id).is_active
    database(app).engine.dispose()
