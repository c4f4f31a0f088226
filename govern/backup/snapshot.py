"""A consistent snapshot of the live database, and the facts of the manifest read from that same snapshot.

SQLite: the online backup API copies the database page by page while govern keeps serving (WAL
readers never block writers); the facts are read from the copy. PostgreSQL: a REPEATABLE READ
transaction exports its snapshot, the facts are read in it and `pg_dump --snapshot` dumps exactly
that snapshot, so the row counts and the audit head of the manifest are those of the dump.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from govern.audit.models import AuditChainHead
from govern.backup.archive import BackupError
from govern.vault.models import KeyCheck, SecretVersion

#: pg_dump and pg_restore answer within this many seconds or the backup fails (a stuck server).
PG_TOOL_TIMEOUT = 6 * 3600


@dataclass
class Snapshot:
    """The copied database and what the manifest says about it."""

    database: str
    data_path: Path
    facts: dict[str, Any]


def dialect_of(url: str) -> str:
    """"sqlite" or "postgresql"; anything else is refused."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError(f"govern backs up SQLite and PostgreSQL databases, not {name}")
    return name


def sqlite_path(url: str) -> Path:
    """The database file of a SQLite URL (an in-memory database cannot be backed up)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def read_facts(connection: Connection) -> dict[str, Any]:
    """Migration, row counts of every table, the audit chain's head and the KEKs the data needs."""
    names = sorted(inspect(connection).get_table_names())
    counts = {name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0) for name in names}
    migration = connection.scalar(text("SELECT version_num FROM alembic_version")) if "alembic_version" in names else None
    head = connection.execute(select(AuditChainHead.last_event_id, AuditChainHead.last_hash)).one_or_none()
    data_keys = dict(connection.execute(
        select(SecretVersion.kek_id, func.count()).where(SecretVersion.status != "destroyed").group_by(SecretVersion.kek_id)
    ).all())
    checks = dict(connection.execute(select(KeyCheck.kek_id, KeyCheck.check_value)).all())
    keks = [{"kek_id": kek_id, "check_value": checks.get(kek_id), "data_keys": int(data_keys.get(kek_id, 0))}
            for kek_id in sorted(set(data_keys) | set(checks))]
    return {
        "migration": migration,
        "row_counts": counts,
        "audit_head": {"event_id": int(head.last_event_id), "hash": head.last_hash} if head else None,
        "keks": keks,
    }


def take_snapshot(url: str, workdir: Path) -> Snapshot:
    """Copy the database at ``url`` into ``workdir`` consistently, with the facts of that copy."""
    database = dialect_of(url)
    if database == "sqlite":
        return _sqlite_snapshot(url, workdir)
    return _postgresql_snapshot(url, workdir)


def _sqlite_snapshot(url: str, workdir: Path) -> Snapshot:
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    target = workdir / "database.sqlite3"
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite online backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    os.chmod(target, 0o600)
    return Snapshot("sqlite", target, sqlite_facts(target))


def sqlite_facts(path: Path) -> dict[str, Any]:
    """The facts of a SQLite file (the copy, or an archive's member)."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return read_facts(connection)
    finally:
        engine.dispose()


def libpq_env(url: str) -> dict[str, str]:
    """The environment that points pg_dump and pg_restore at ``url``: the password never goes on a command line."""
    parsed = make_url(url)
    env = {**os.environ}
    for variable, value in (("PGHOST", parsed.host), ("PGPORT", parsed.port), ("PGUSER", parsed.username),
                            ("PGDATABASE", parsed.database), ("PGPASSWORD", parsed.password)):
        if value is not None:
            env[variable] = str(value)
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT")):
        if option in parsed.query:
            env[variable] = str(parsed.query[option])
    return env


def pg_tool(name: str) -> str:
    """The path of pg_dump or pg_restore (GOVERN_PG_BIN chooses the folder), or a clear error."""
    folder = os.environ.get("GOVERN_PG_BIN")
    found = str(Path(folder) / name) if folder else shutil.which(name)
    if not found or not Path(found).is_file():
        raise BackupError(f"{name} was not found: install the PostgreSQL client tools of the server's version "
                          "(Debian: postgresql-client) or set GOVERN_PG_BIN to their folder")
    return found


def run_pg_tool(args: list[str], url: str) -> None:
    """Run pg_dump or pg_restore against ``url``; its own error text (never a password) on failure."""
    try:
        # args: the tool's path and options govern builds; the only outside values are file paths.
        done = subprocess.run(args, env=libpq_env(url), capture_output=True, text=True,  # noqa: S603
                              timeout=PG_TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(args[0]).name} did not finish within {PG_TOOL_TIMEOUT} s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {' '.join(message[-3:])[:600]}")


def _postgresql_snapshot(url: str, workdir: Path) -> Snapshot:
    target = workdir / "database.pgdump"
    engine = create_engine(url, poolclass=NullPool, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as connection:
            snapshot_id = connection.scalar(text("SELECT pg_export_snapshot()"))
            facts = read_facts(connection)
            # The transaction stays open while pg_dump reads the snapshot it exported.
            run_pg_tool([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                         f"--snapshot={snapshot_id}", f"--file={target}"], url)
            connection.rollback()
    finally:
        engine.dispose()
    os.chmod(target, 0o600)
    return Snapshot("postgresql", target, facts)


# --- scratch databases (verify restores a PostgreSQL dump into one) --------------------------------


def _admin_url(url: str) -> URL:
    return make_url(url).set(database="postgres")


@contextmanager
def scratch_postgresql(url: str, name: str) -> Iterator[str]:
    """An empty database ``name`` on the server of ``url``, dropped afterwards whatever happens."""
    admin = create_engine(_admin_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    quoted = admin.dialect.identifier_preparer.quote(name)
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {quoted}"))
    except Exception as exc:
        admin.dispose()
        raise BackupError(f"cannot create the scratch database {name} to check the dump in: {exc.__class__.__name__}; "
                          "the database user needs CREATEDB (or give --scratch-url)") from None
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        admin.dispose()


def restore_pgdump(dump: Path, url: str) -> None:
    """Load a custom-format dump into the (empty) database at ``url`` in one transaction."""
    run_pg_tool([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                 f"--dbname={make_url(url).database}", str(dump)], url)


def table_names(url: str) -> list[str]:
    """The tables of the database at ``url`` (empty for a SQLite file that does not exist yet)."""
    if dialect_of(url) == "sqlite" and not sqlite_path(url).exists():
        return []
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return sorted(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def facts_of(url: str) -> Mapping[str, Any]:
    """The facts of a live database (what a restore is compared with)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return read_facts(connection)
    finally:
        engine.dispose()
