"""`govern audit verify --against FILE`, `govern audit keys` and `govern audit sinks` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete, select, update

from govern import audit
from govern.audit.models import AuditChainHead, AuditEvent
from govern.db import get_session
from govern.shipping.formats import event_record, ocsf_object
from tests.factories import allow_tampering
from tests.support import TEST_SECRET_KEY, cli_env

GOVERN = str(Path(sys.executable).parent / "govern")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERN, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_verify_against_an_export_catches_a_database_cut_short(scratch_app, tmp_path):
    with scratch_app.app_context():
        session = get_session()
        events = [audit.record(session, "test.exported", target_id=n, details={"n": n}) for n in range(20)]
        session.commit()
        export = tmp_path / "siem-export.jsonl"
        # As an HTTPS sink posted them: batches of OCSF objects, one per line.
        lines = [json.dumps({"events": [ocsf_object(event_record(e)) for e in events[i:i + 7]]}) for i in range(0, 20, 7)]
        export.write_text("\n".join(["not json, a comment line", *lines]) + "\n")
    env = cli_env(tmp_path, scratch_app.config["DATABASE_URL"])
    env["GOVERN_SECRET_KEY"] = TEST_SECRET_KEY

    good = _run(env, "audit", "verify", "--against", str(export))
    assert good.returncode == 0, good.stderr
    assert "audit chain intact: 20 events verified, keyed from event 1" in good.stdout
    assert "20 exported events found unchanged in the database (1 lines without an event skipped)" in good.stdout

    with scratch_app.app_context():  # the newest five go, and the head is made to agree: the chain alone holds
        session = get_session()
        allow_tampering(session)
        session.execute(delete(AuditEvent).where(AuditEvent.id > 15))
        fifteenth = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == 15))
        session.execute(update(AuditChainHead).values(last_event_id=15, last_hash=fifteenth))
        session.commit()
    alone = _run(env, "audit", "verify")
    assert alone.returncode == 0  # without a checkpoint or an export, a cut at the end cannot be seen
    cut = _run(env, "audit", "verify", "--against", str(export))
    assert cut.returncode == 1
    assert "event 16 is in the export but not in the database (deleted, or the chain cut short)" in cut.stderr


def test_checkpoint_and_key_rotation_from_the_command_line(scratch_app, tmp_path):
    env = cli_env(tmp_path, scratch_app.config["DATABASE_URL"])
    del env["GOVERN_AUDIT_KEYS"]  # a key file, as production has
    assert _run(env, "audit", "keys", "init").returncode == 0
    key_file = Path(env["GOVERN_INSTANCE_PATH"]) / "audit.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _run(env, "audit", "keys", "init").returncode == 1  # never overwritten
    with scratch_app.app_context():
        session = get_session()
        audit.record(session, "test.before_rotation")
        session.commit()
    # The scratch app chained its event with the test key: verify with the new key file names it.
    refused = _run(env, "audit", "verify")
    assert refused.returncode == 1 and "audit key ak-7e570001, which the audit key file lacks" in refused.stderr


def test_sinks_from_the_command_line(scratch_app, tmp_path):
    env = cli_env(tmp_path, scratch_app.config["DATABASE_URL"])
    env["GOVERN_SECRET_KEY"] = TEST_SECRET_KEY
    added = _run(env, "audit", "sinks", "add-https", "siem", "--url", "https://siem.example/collect")
    assert added.returncode == 0 and "signing secret (shown once" in added.stdout and "whsec_" in added.stdout
    bad = _run(env, "audit", "sinks", "add-syslog", "rsyslog", "--host", "127.0.0.1", "--port", "99999")
    assert bad.returncode == 1 and "port: A port is a number from 1 to 65535" in bad.stderr
    listed = _run(env, "audit", "sinks", "list")
    assert "siem" in listed.stdout and "https://siem.example/collect" in listed.stdout and "whsec_" not in listed.stdout
    assert _run(env, "audit", "sinks", "pause", "1").returncode == 0
    assert "paused" in _run(env, "audit", "sinks", "list").stdout
    assert _run(env, "audit", "sinks", "remove", "1").returncode == 0
    assert _run(env, "audit", "sinks", "remove", "1").returncode == 1
