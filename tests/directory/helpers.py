"""Helpers of the directory tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern.audit.models import AuditEvent
from govern.directory.models import Person
from tests.factories import TestUser, login, make_user

HEADER = ("employee_id", "email", "full_name", "department", "title", "manager_email", "start_date", "end_date", "status")


def signed_in(app: Flask, db: Session, kit: Any, *roles: str) -> tuple[TestUser, FlaskClient]:
    """A user with ``roles``, signed in on a fresh client."""
    who = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, who)
    return who, client


def csv_bytes(rows: Iterable[Sequence[Any]], header: Sequence[str] = HEADER, *, delimiter: str = ",",
              bom: bool = False) -> bytes:
    """A CSV file as an HR system would export it (cells are joined as given, no quoting)."""
    lines = [delimiter.join(header), *(delimiter.join("" if c is None else str(c) for c in row) for row in rows)]
    text = "\r\n".join(lines) + "\r\n"
    return (("\ufeff" if bom else "") + text).encode()


def count_people(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Person)) or 0


def count_events(db: Session, action: str | None = None) -> int:
    query = select(func.count()).select_from(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    return db.scalar(query) or 0


def person(db: Session, email: str) -> Person | None:
    """A fresh read of the person with ``email`` (bypassing the session's identity map)."""
    return db.scalar(select(Person).where(Person.email == email).execution_options(populate_existing=True))


def count_statements(connection: Any, client: FlaskClient, path: str) -> int:
    """SQL statements run by one GET of ``path`` (after a warm-up: the session's last-seen stamp
    is written at most once a minute)."""
    from sqlalchemy import event

    assert client.get(path).status_code == 200
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(connection.engine, "before_cursor_execute", before)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(connection.engine, "before_cursor_execute", before)
    return len(seen)
