"""The jobs step that makes a backup when the last is old enough and prunes beyond GOVERN_BACKUP_KEEP,
and what the admin home page says about backups."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import time_machine
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.backup.models import BackupRecord
from govern.backup.schedule import run_scheduled, staleness
from govern.db import get_session, utcnow


def _config(source, folder: Path, **extra):
    return {**source.config, "BACKUP_DIR": str(folder), "BACKUP_KEEP": 2, "BACKUP_EVERY_HOURS": 24, **extra}


def test_the_step_backs_up_once_a_day_keeps_the_newest_and_prunes_the_rest(source, tmp_path):
    folder = tmp_path / "backups"
    ring = source.extensions["govern.keyring"]
    start = utcnow()
    with source.app_context():
        session = get_session()
        assert run_scheduled(session, url=source.config["DATABASE_URL"], keyring=ring, config={}, now=start) == {
            "not_configured": 1}
        made = []
        for day in range(3):
            with time_machine.travel(start + timedelta(days=day), tick=True):  # each archive gets its own name
                counts = run_scheduled(session, url=source.config["DATABASE_URL"], keyring=ring,
                                       config=_config(source, folder), now=utcnow())
                assert counts["made"] == 1, counts
                made.append(counts)
                again = run_scheduled(session, url=source.config["DATABASE_URL"], keyring=ring,
                                      config=_config(source, folder), now=utcnow() + timedelta(hours=1))
                assert again == {"made": 0, "recent": 1}
        assert made[-1]["pruned"] == 1
        files = sorted(p.name for p in folder.iterdir())
        rows = session.scalars(select(BackupRecord).order_by(BackupRecord.id)).all()
        assert [row.outcome for row in rows] == ["ok", "ok", "ok"] and all(row.made_by == "jobs" for row in rows)
        assert rows[0].pruned_at is not None and not Path(rows[0].path).exists()
        assert files == sorted(Path(row.path).name for row in rows[1:])
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("backup.%"))).all()
        assert actions == ["backup.created", "backup.created", "backup.created", "backup.pruned"]


def test_a_failed_backup_is_recorded_and_a_killed_ones_partial_file_is_removed(source, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    stale = folder / ".govern-backup-20260101T000000Z.tar.1234abcd.partial"
    stale.write_bytes(b"half an archive")
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    fresh = folder / ".govern-backup-20260101T010000Z.tar.5678abcd.partial"  # perhaps another run's, still writing
    fresh.write_bytes(b"being written")
    with source.app_context():
        session = get_session()
        counts = run_scheduled(session, url=source.config["DATABASE_URL"], keyring=source.extensions["govern.keyring"],
                               config=_config(source, folder, BACKUP_PASSPHRASE_FILE=str(tmp_path / "missing")),
                               now=utcnow())
        assert counts == {"made": 0, "failed": 1, "partials_removed": 1}
        assert not stale.exists() and fresh.exists()
        row = session.scalars(select(BackupRecord)).one()
        assert row.outcome == "failed" and "GOVERN_BACKUP_PASSPHRASE_FILE" in row.error
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "backup.failed")).one()
        assert event.outcome == "failure"


def test_admins_see_the_last_good_backup_and_a_warning_when_it_is_old(app, db, company):
    company.add_staff("admin", "it")
    assert "No backup of govern has been made yet" in staleness(db)
    html = company.client_for(company.admin).get("/").get_data(as_text=True)
    assert 'id="backup-notice"' in html and "No backup of govern has been made yet" in html
    assert "backup" not in company.client_for(company.it).get("/").get_data(as_text=True).lower()

    now = utcnow()
    db.add(BackupRecord(started_at=now, finished_at=now - timedelta(minutes=5), made_by="jobs", outcome="ok",
                        path="/srv/backups/govern-backup-x.tar.age", size_bytes=3_500_000, sha256="0" * 64,
                        encryption="recipient", migration="x"))
    db.add(BackupRecord(started_at=now, finished_at=now, made_by="jobs", outcome="failed", path="/srv/backups",
                        encryption="none", error="disk full"))
    company.commit()
    assert staleness(db) is None
    html = company.client_for(company.admin).get("/").get_data(as_text=True)
    assert 'id="last-backup"' in html and "3.5 MB, encrypted" in html and 'id="backup-notice"' not in html

    assert "The last good backup is 29 hours old" in staleness(db, now=now + timedelta(hours=29))
