"""`govern rotation status` and `govern rotation schedule` through the CLI runner."""

from __future__ import annotations

from sqlalchemy import func, select

from govern.rotation.cli import group
from govern.rotation.models import RotationTask
from tests.rotation.conftest import age, vault_secret


def test_status_and_schedule(app, db, ring, world):
    secret = vault_secret(db, ring, world)
    age(db, secret, 100)
    runner = app.test_cli_runner()
    result = runner.invoke(group, ["status"])
    assert result.exit_code == 0, result.output
    assert "Instagram: 1 overdue, 0 due, 0 rotate now, 1 credentials" in result.output
    result = runner.invoke(group, ["schedule"])
    assert result.exit_code == 0 and "opened 1 rotation task(s); 0 already open" in result.output
    result = runner.invoke(group, ["schedule"])
    assert "opened 0 rotation task(s); 1 already open" in result.output
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(RotationTask)) == 1
    assert "1 live rotation task(s)" in runner.invoke(group, ["status"]).output
