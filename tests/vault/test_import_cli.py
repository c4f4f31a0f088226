"""The import command: dry run, who may import, bad files, previews, --account."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.cli import cli
from govern.vault import import_apply
from govern.vault.models import Secret
from tests.factories import login, make_account, make_user
from tests.vault.helpers import (
    BITWARDEN,
    GENERIC,
    ONEPASSWORD_8,
    SEED,
    count_rows,
    it_user,
    stored_value,
    upload_export,
)


@pytest.fixture(autouse=True)
def _schema_checked_elsewhere(monkeypatch):
    # The CLI checks the schema on a connection of its own, which would wait for the test's open
    # transaction on SQLite; the check itself is tested with the other commands.
    monkeypatch.setattr("govern.schema.ensure_current", lambda engine: None)


def _row_lines(output: str, filename: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{filename}:")]


def test_cli_dry_run_writes_nothing(app, db, kit, accounts, ring, tmp_path):
    export = tmp_path / "bitwarden.csv"
    export.write_bytes(BITWARDEN)
    before = count_rows(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output and "2 matched" in result.output and "would vault 2 note, 2 password, 1 totp" in result.output
    assert "bitwarden.csv:9: not matched" in result.output
    assert "BW-PASS" not in result.output and SEED not in result.output
    assert count_rows(db) == before


def test_cli_imports_as_an_it_user(app, db, kit, accounts, ring, tmp_path):
    it = it_user(db, kit)
    export = tmp_path / "onepassword.csv"
    export.write_bytes(ONEPASSWORD_8)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "1password",
                                                "--as", it.email, "--create-accounts"])
    assert result.exit_code == 0, result.output
    assert "Vaulted 1 note, 2 password, 1 totp; 1 account(s) created" in result.output
    assert "OP-PASS" not in result.output
    db.expire_all()
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).one()
    assert event.actor_user_id == it.id


@pytest.mark.parametrize("roles", [(), ("manager",)])
def test_cli_refuses_users_who_are_not_it_or_admin(app, db, kit, accounts, ring, tmp_path, roles):
    who = make_user(db, kit, roles=roles)
    export = tmp_path / "onepassword.csv"
    export.write_bytes(ONEPASSWORD_8)
    before = count_rows(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "1password", "--as", who.email])
    assert result.exit_code != 0 and "not an active IT or admin user" in result.output
    assert count_rows(db) == before


def test_cli_needs_an_actor_and_reports_bad_files(app, db, kit, ring, tmp_path):
    export = tmp_path / "broken.csv"
    export.write_bytes(b"no,columns,here\n1,2,3\n")
    runner = app.test_cli_runner()
    missing_actor = runner.invoke(cli, args=["vault", "import", str(export), "--format", "keepass"])
    assert missing_actor.exit_code != 0 and "--as EMAIL" in missing_actor.output
    bad = runner.invoke(cli, args=["vault", "import", str(export), "--format", "keepass", "--dry-run"])
    assert bad.exit_code != 0 and "not a KeePassXC (CSV) export" in bad.output


def test_long_previews_say_what_they_leave_out(app, db, kit, accounts, monkeypatch):
    monkeypatch.setattr(import_apply, "MAX_LISTED", 1)
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    assert "Showing the first 1 of 2." in html and "Showing the first 1 of 3." in html


@pytest.mark.parametrize(("fmt", "content", "extra"), [
    ("1password", ONEPASSWORD_8, ["--create-accounts"]),
    ("bitwarden", BITWARDEN, ["--create-accounts"]),
    ("bitwarden", BITWARDEN, []),
    ("generic", GENERIC, ["--create-accounts", "--account", "x:acme_news"]),
])
def test_cli_dry_run_shows_what_the_real_run_does(app, db, kit, accounts, ring, tmp_path, fmt, content, extra):
    it = it_user(db, kit)
    export = tmp_path / "export.csv"
    export.write_bytes(content)
    runner = app.test_cli_runner()
    before = count_rows(db)
    dry = runner.invoke(cli, args=["vault", "import", str(export), "--format", fmt, "--dry-run", *extra])
    assert dry.exit_code == 0, dry.output
    assert count_rows(db) == before
    real = runner.invoke(cli, args=["vault", "import", str(export), "--format", fmt, "--as", it.email, *extra])
    assert real.exit_code == 0, real.output
    # Every entry's line is the same: where it goes, or why it is left out.
    assert _row_lines(dry.output, "export.csv") == _row_lines(real.output, "export.csv")
    would = re.search(r"would vault (.*); would create (\d+) account\(s\)", dry.output)
    did = re.search(r"Vaulted (.*); (\d+) account\(s\) created", real.output)
    assert would and did and would.groups() == did.groups(), (dry.output, real.output)
    db.expire_all()
    created_accounts = count_rows(db)[2] - before[2]
    assert created_accounts == int(did.group(2))
    if "--create-accounts" in extra and fmt != "generic":
        assert created_accounts >= 1 and "(a new account, created by this import)" in dry.output
    assert "PASS" not in dry.output + real.output and SEED not in dry.output + real.output


def test_cli_account_puts_unmatched_entries_into_an_account(app, db, kit, accounts, ring, tmp_path):
    it = it_user(db, kit)
    export = tmp_path / "bitwarden.csv"
    # A Bitwarden secure note without an address: it matches no account by itself.
    export.write_bytes(b"folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\r\n"
                       b"Social,,note,Instagram recovery,Recovery email: social@acme.example,,0,,,,\r\n")
    runner = app.test_cli_runner()
    alone = runner.invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden", "--dry-run"])
    assert "bitwarden.csv:2: not matched" in alone.output and "--account ACCOUNT" in alone.output
    instagram = accounts["instagram"]
    for reference in (str(instagram.id), "instagram:acme", "INSTAGRAM:@acme", "https://www.instagram.com/acme"):
        dry = runner.invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden", "--dry-run",
                                       "--account", reference])
        assert dry.exit_code == 0, dry.output
        assert "bitwarden.csv:2: into @acme on Instagram (chosen with --account" in dry.output
        assert "would vault 1 note" in dry.output
    real = runner.invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden", "--as", it.email,
                                    "--account", "instagram:acme"])
    assert real.exit_code == 0, real.output and "Vaulted 1 note" in real.output
    db.expire_all()
    secret = db.scalars(select(Secret).where(Secret.account_id == instagram.id, Secret.kind == "note")).one()
    assert secret.label == "Instagram recovery (notes)"
    assert stored_value(db, ring, it, secret) == "Recovery email: social@acme.example"
    assert "Recovery email" not in real.output
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).one()
    details = json.loads(event.details_json)
    assert details["rows_assigned"] == 1 and details["rows_unmatched"] == 0
    assert "Recovery email" not in event.details_json


@pytest.mark.parametrize(("reference", "message"), [
    ("instagram:nobody", "no account 'instagram:nobody'"),
    ("999999", "no account '999999'"),
    ("acme", "names 2 accounts"),
    ("archived:x", "no account"),
])
def test_cli_account_that_names_no_single_usable_account_is_refused(app, db, kit, accounts, ring, tmp_path, reference, message):
    make_account(db, platform="tiktok", handle="acme")
    db.commit()
    export = tmp_path / "bitwarden.csv"
    export.write_bytes(BITWARDEN)
    before = count_rows(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden",
                                                     "--dry-run", "--account", reference])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert count_rows(db) == before


def test_cli_account_refuses_an_archived_account(app, db, kit, ring, tmp_path):
    make_account(db, platform="instagram", handle="oldbrand", status="archived")
    db.commit()
    export = tmp_path / "bitwarden.csv"
    export.write_bytes(BITWARDEN)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden",
                                                     "--dry-run", "--account", "instagram:oldbrand"])
    assert result.exit_code != 0 and "is archived" in result.output
