"""Rotation tasks and exposures through the API: IT, admins and auditors read; never a secret value."""

from __future__ import annotations

from typing import Any

import pytest

from govern.crypto.keyring import Keyring
from govern.rotation.tasks import cancel_task, open_task
from govern.vault import access
from tests.api.helpers import Api, personal_token
from tests.sql_capture import statements

PROBLEM = "application/problem+json"
VALUE = "Old-Password-123!"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def app_overrides(keyring: Keyring) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def cast(company, ring):  # type: ignore[no-untyped-def]
    """Three secrets of Acme Instagram and one of the other account, each with a task (one cancelled);
    the publisher revealed the first one."""
    company.account_team()
    company.add_staff("hr")
    for name in ("login", "backup", "spare"):
        company.add_secret(name, ring, label=f"Instagram {name}", value=VALUE)
    company.add_secret("other_login", ring, account=company.other_account, label="Other login", value=VALUE)
    db = company.db
    company.add("task_login", open_task(db, actor=None, secret=company.login, reason="scheduled", note="overdue").task)
    company.add("task_backup", open_task(db, actor=company.it.user, secret=company.backup, reason="manual",
                                         note="test").task)
    company.add("task_spare", open_task(db, actor=company.it.user, secret=company.spare, reason="manual",
                                        note="test").task)
    company.add("task_other", open_task(db, actor=company.it.user, secret=company.other_login, reason="manual",
                                        note="test").task)
    cancel_task(db, actor=company.it.user, task=company.task_spare, reason="not needed")
    access.reveal(db, actor=company.publisher.user, keyring=ring, secret=company.login, reason="posting the launch",
                  mfa_fresh=True)
    return company.commit()


def _walk(api: Api, path: str) -> list[dict[str, Any]]:
    page = api.get(path)
    assert page.status_code == 200, page.json
    rows = list(page.json["items"])
    while page.json["next"]:
        page = api.client.get(page.json["next"], headers=api.headers)
        rows += page.json["items"]
    return rows


def test_the_task_queue_by_status_and_cursor(app, db, cast) -> None:
    it = Api(app, personal_token(db, cast.it, "rotation:read"))
    live = _walk(it, "/rotation-tasks?limit=1")
    ids = [t["id"] for t in live]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert set(ids) == {cast.task_login.id, cast.task_backup.id, cast.task_other.id}
    login = next(t for t in live if t["id"] == cast.task_login.id)
    assert login["secret_label"] == "Instagram login" and login["account_name"] == "Acme Instagram"
    assert login["reason"] == "scheduled" and login["status"] == "open" and login["notes"]
    assert {t["id"] for t in _walk(it, "/rotation-tasks?status=cancelled")} == {cast.task_spare.id}
    assert {t["id"] for t in _walk(it, "/rotation-tasks?status=all&limit=2")} == {
        cast.task_login.id, cast.task_backup.id, cast.task_spare.id, cast.task_other.id}
    assert _walk(it, "/rotation-tasks?status=done") == []
    one = it.get(f"/rotation-tasks/{cast.task_spare.id}")
    assert one.status_code == 200 and one.json["status"] == "cancelled" and one.json["cancel_reason"] == "not needed"
    assert it.get("/rotation-tasks/999999").status_code == 404
    for bad in ("status=soon", "limit=500", "secret=1"):
        answer = it.get(f"/rotation-tasks?{bad}")
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, bad


@pytest.mark.parametrize(("role", "may"), [("it", True), ("admin", True), ("auditor", True), ("hr", False),
                                           ("manager", False)])
def test_who_reads_rotation(app, db, cast, role, may) -> None:
    who = getattr(cast, role)
    scopes = ("rotation:read",) if may else ("people:read",)  # others cannot even hold rotation:read
    api = Api(app, personal_token(db, who, *scopes))
    for path in ("/rotation-tasks", f"/rotation-tasks/{cast.task_login.id}", "/exposures"):
        assert api.get(path).status_code == (200 if may else 403), (role, path)


def test_the_scope_is_needed_even_for_it(app, db, cast) -> None:
    it = Api(app, personal_token(db, cast.it, "accounts:read"))
    for path in ("/rotation-tasks", f"/rotation-tasks/{cast.task_login.id}", "/exposures"):
        refused = it.get(path)
        assert refused.status_code == 403 and refused.mimetype == PROBLEM, path


def test_exposures_newest_first_filtered_and_without_values(app, db, cast) -> None:
    auditor = Api(app, personal_token(db, cast.auditor, "rotation:read"))
    rows = _walk(auditor, "/exposures?limit=1")
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
    assert len(ids) == 5  # IT typed four values; the publisher revealed one
    newest = rows[0]
    assert newest["person_id"] == cast.publisher.user.person_id and newest["reason"] == "posting the launch"
    assert newest["secret_label"] == "Instagram login" and newest["user_email"] == cast.publisher.email
    assert newest["kind"] == "value" and newest["version"] == 1
    by_person = _walk(auditor, f"/exposures?person_id={cast.publisher.user.person_id}")
    assert [row["id"] for row in by_person] == [newest["id"]]
    by_account = _walk(auditor, f"/exposures?account_id={cast.other_account.id}")
    assert [row["secret_id"] for row in by_account] == [cast.other_login.id]
    by_secret = _walk(auditor, f"/exposures?secret_id={cast.login.id}")
    assert len(by_secret) == 2
    both = _walk(auditor, f"/exposures?secret_id={cast.login.id}&person_id={cast.it.user.person_id}")
    assert len(both) == 1
    listed = auditor.get("/exposures")
    assert VALUE not in listed.get_data(as_text=True)
    for bad in ("person_id=abc", "account_id=0", "secret_id=-1", "limit=0"):
        answer = auditor.get(f"/exposures?{bad}")
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, bad


def test_lists_read_the_same_statements_for_one_row_or_many(app, db, connection, cast) -> None:
    it = Api(app, personal_token(db, cast.it, "rotation:read"))
    for path in ("/rotation-tasks?status=all&", "/exposures?"):
        one = statements(connection, lambda path=path: it.get(f"{path}limit=1"))
        many = statements(connection, lambda path=path: it.get(f"{path}limit=200"))
        assert len(one) == len(many), (path, many)
