"""`govern directory import` in a real subprocess, against a scratch database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.db import make_engine
from govern.directory.models import Person
from govern.offboarding.models import Offboarding
from govern.schema import upgrade
from tests.directory.helpers import csv_bytes
from tests.support import run_with_terminal_stderr

GOVERN = str(Path(sys.executable).parent / "govern")


@pytest.fixture
def env(tmp_path, scratch_database_url):
    upgrade(scratch_database_url)
    values = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    values.update({"GOVERN_INSTANCE_PATH": str(tmp_path / "instance"), "GOVERN_DATABASE_URL": scratch_database_url,
                   "GOVERN_SECRET_KEY": "directory-cli-test-secret-key-0123456789"})
    return values


@pytest.fixture
def engine(env):
    engine = make_engine(env["GOVERN_DATABASE_URL"])
    yield engine
    engine.dispose()


def _govern(env, *args):
    return subprocess.run([GOVERN, "directory", "import", *args], capture_output=True, text=True, env=env, timeout=120)


def _count(engine, model=Person, **where):
    with engine.connect() as conn:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return conn.scalar(query)


GOOD = csv_bytes([["E1", "ann@acme.example", "Ann", "Comms", "Lead", "", "2024-01-01", "", "Active"],
                  ["E2", "ben@acme.example", "Ben", "Comms", "Editor", "ann@acme.example", "2024-01-01", "2026-12-31", "Terminated"]],
                 header=["Employee ID", "Work Email", "Name", "Dept", "Title", "Manager Email", "Hire Date", "Last Day", "Status"])


def test_dry_run_reports_and_writes_nothing(tmp_path, env, engine):
    path = tmp_path / "hr.csv"
    path.write_bytes(GOOD)
    result = _govern(env, str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "2 row(s): 2 new, 0 updated, 0 unchanged, 0 error(s). Dry run: nothing was written." in result.stdout
    assert "leavers: 1 row(s) say the person left" in result.stdout
    assert _count(engine) == 0 and _count(engine, AuditEvent) == 0


def test_apply_then_reapply_changes_nothing(tmp_path, env, engine):
    path = tmp_path / "hr.csv"
    path.write_bytes(GOOD)
    first = _govern(env, str(path))
    assert first.returncode == 0, first.stderr
    assert "2 new, 0 updated" in first.stdout and "Imported." in first.stdout
    # Ben is terminated: departed through an offboarding (with nothing to take away: he is new).
    assert "leavers: 1 offboarding(s) started" in first.stdout
    assert _count(engine) == 2 and _count(engine, Person, status="departed") == 1
    assert _count(engine, Offboarding, status="completed", origin="import") == 1
    check = subprocess.run([GOVERN, "check"], capture_output=True, text=True, env=env, timeout=120)
    assert check.returncode == 0 and "leaver invariants hold" in check.stdout, check.stdout + check.stderr
    second = _govern(env, str(path))
    assert second.returncode == 0 and "0 new, 0 updated, 2 unchanged" in second.stdout
    assert _count(engine, AuditEvent, action="directory.imported") == 2
    verify = subprocess.run([GOVERN, "audit", "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_errors_are_printed_per_line_and_exit_1(tmp_path, env, engine):
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_bytes([["E1", "ann@acme.example", "Ann", "", "", "", "2024-02-30", "", ""],
                                ["E2", "ben@acme.example", "Ben", "", "", "ghost@acme.example", "", "", ""]]))
    for args in ((str(path), "--dry-run"), (str(path),)):
        result = _govern(env, *args)
        assert result.returncode == 1
        assert "bad.csv:2: line 2, column start_date: '2024-02-30' is not a real date" in result.stderr
        assert "bad.csv:3: line 3, column manager_email: no one has the email ghost@acme.example" in result.stderr
        assert "Nothing was imported" in result.stderr
    assert _count(engine) == 0 and _count(engine, AuditEvent) == 0


def test_missing_file_is_a_usage_error(tmp_path, env):
    result = _govern(env, str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_progress_bar_on_a_terminal(tmp_path, env, engine):
    path = tmp_path / "hr.csv"
    path.write_bytes(GOOD)
    result, terminal = run_with_terminal_stderr([GOVERN, "directory", "import", str(path)], env)
    assert result.returncode == 0 and "Imported." in result.stdout
    assert "importing hr.csv" in terminal
    assert _count(engine) == 2


FILES = Path(__file__).parent / "files"


def test_the_workday_export_imports_as_it_is(env, engine):
    result = _govern(env, str(FILES / "workday.csv"))
    assert result.returncode == 0, result.stderr
    assert "4 new" in result.stdout and "'Business Title' -> title" in result.stderr
    with engine.connect() as conn:
        assert conn.execute(select(Person.department, Person.title).where(Person.employee_id == "21001")).one() == (
            "Communications (Camille Durand)", "Head of Communications")


def test_map_reads_other_columns_and_ignored_columns_are_listed(tmp_path, env, engine):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Badge,Person,Mail,Team,Notes\r\nB-7,Ada Lovelace,ada@acme.example,Comms,likes tea\r\n")
    refused = _govern(env, str(path), "--dry-run")
    assert refused.returncode == 1 and "no email column" in refused.stderr and "ignored column 'Mail'" in refused.stderr
    result = _govern(env, str(path), "--map", "Badge=employee_id", "--map", "person=full_name", "--map", "Mail=email",
                     "--map", "Team=department")
    assert result.returncode == 0, result.stderr
    assert "ignored column 'Notes': not a column govern knows" in result.stderr
    assert "'Team' -> department" in result.stderr and "1 new" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(select(Person.employee_id, Person.full_name, Person.department)).one() == ("B-7", "Ada Lovelace", "Comms")


@pytest.mark.parametrize(("maps", "expected", "code"), [
    (["Team"], "'Team' is not COLUMN=FIELD", 2),
    (["Team=nickname"], "'nickname' is not a field", 2),
    (["Mail=email", "Person=email"], "both mapped to email", 1),
    (["Nope=email"], "the file has no column 'Nope'", 1),
])
def test_a_bad_map_is_a_clear_error(tmp_path, env, engine, maps, expected, code):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Person,Mail,Team\r\nAda,ada@acme.example,Comms\r\n")
    result = _govern(env, str(path), *(arg for item in maps for arg in ("--map", item)))
    assert result.returncode == code and expected in result.stderr and "Traceback" not in result.stderr
    assert _count(engine) == 0


def test_a_broken_csv_names_its_line(tmp_path, env, engine):
    path = tmp_path / "broken.csv"
    path.write_bytes(b"Email,Name\r\na@acme.example,Ann\r\nb@acme.example,\"Ben\r\nc@acme.example,Cee\r\n")
    result = _govern(env, str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "broken.csv:3: line 3, column file: this line cannot be read: a quote" in result.stderr
    assert "name column" not in result.stderr and _count(engine) == 0
