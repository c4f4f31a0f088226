"""`govern audit verify` in a real subprocess against a real, committed database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete, update

from govern import audit
from govern.audit.models import AuditEvent
from govern.audit.services import AuditContext
from govern.db import Database
from tests.factories import allow_tampering
from tests.support import cli_env, run_with_terminal_stderr

GOVERN = str(Path(sys.executable).parent / "govern")
CTX = AuditContext(actor_label="test")


def _verify(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERN, "audit", "verify"], capture_output=True, text=True, env=cli_env(tmp_path, url),
                          timeout=120)


def _write_events(database: Database, count: int) -> list[int]:
    with database.session_scope() as session:
        ids = [audit.record(session, "test.cli", target_type="thing", target_id=n, details={"n": n}, context=CTX).id
               for n in range(count)]
        session.commit()
    return ids


def test_verify_an_empty_chain(tmp_path, committed_database):
    result = _verify(tmp_path, committed_database.url)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact: 0 events verified" in result.stdout


def test_verify_reports_an_intact_chain_then_an_edited_event(tmp_path, committed_database):
    ids = _write_events(committed_database, 4)
    intact = _verify(tmp_path, committed_database.url)
    assert intact.returncode == 0, intact.stderr
    assert "audit chain intact: 4 events verified" in intact.stdout

    with committed_database.session_scope() as session:
        allow_tampering(session)
        session.execute(update(AuditEvent).where(AuditEvent.id == ids[2]).values(details_json='{"n":99}'))
        session.commit()
    broken = _verify(tmp_path, committed_database.url)
    assert broken.returncode == 1
    assert f"audit chain BROKEN at event {ids[2]}: " in broken.stderr
    assert "edited" in broken.stderr and "2 events before it verified" in broken.stderr
    assert "intact" not in broken.stdout


def test_verify_reports_events_deleted_from_the_end(tmp_path, committed_database):
    ids = _write_events(committed_database, 3)
    with committed_database.session_scope() as session:
        allow_tampering(session)
        session.execute(delete(AuditEvent).where(AuditEvent.id == ids[-1]))
        session.commit()
    broken = _verify(tmp_path, committed_database.url)
    assert broken.returncode == 1
    assert f"audit chain BROKEN at event {ids[-1]}: " in broken.stderr
    assert "intact" not in broken.stdout


def test_verify_shows_a_progress_bar_on_a_terminal_and_not_in_a_pipe(tmp_path, committed_database):
    _write_events(committed_database, 3)
    env = cli_env(tmp_path, committed_database.url)
    result, terminal = run_with_terminal_stderr([GOVERN, "audit", "verify"], env)
    assert result.returncode == 0 and "audit chain intact: 3 events verified" in result.stdout
    assert "verifying audit chain" in terminal and "100%" in terminal, terminal
    piped = _verify(tmp_path, committed_database.url)
    assert piped.returncode == 0 and "verifying audit chain" not in piped.stderr + piped.stdout
