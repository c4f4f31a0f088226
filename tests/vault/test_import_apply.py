"""The import's preview and apply: matches, new accounts, vaulting through create_secret, one audit event, roll back."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.errors import InvalidError
from govern.vault import import_apply, import_parse
from govern.vault.models import Secret
from govern.vault.versions import create_secret
from tests.factories import make_account
from tests.vault.helpers import BITWARDEN, GENERIC, KEEPASS, ONEPASSWORD_8, SEED, count_rows, it_user, stored_value


def test_preview_reports_matches_new_accounts_and_unmatched_rows_and_writes_nothing(db, kit, accounts):
    before = count_rows(db)
    report = import_apply.preview_import(db, import_parse.parse_file(BITWARDEN, "bitwarden"))
    db.rollback()
    assert count_rows(db) == before
    assert [(r.line, r.account_label) for r in report.matched] == [(2, "@acme on Instagram"), (4, "@acme_news on X")]
    assert [[s.kind for s in r.secrets] for r in report.matched] == [["password", "totp", "note"], ["password", "note"]]
    assert list(report.new_accounts) == ["linkedin:acme-corp"] and report.new_accounts["linkedin:acme-corp"].lines == [10]
    unmatched = {r.line: r.reason for r in report.unmatched}
    assert set(unmatched) == {5, 8, 9}
    assert "not a social media platform" in unmatched[5] and "without a handle" in unmatched[9]
    assert [p.line for p in report.skipped] == [6]
    assert report.secrets_by_kind == {"note": 2, "password": 2, "totp": 1}


def test_apply_vaults_every_value_through_create_secret_with_one_import_event(db, kit, accounts, ring):
    it = it_user(db, kit)
    report = import_apply.apply_import(db, import_parse.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring,
                                   create_accounts={"linkedin:acme-corp"})
    db.commit()
    assert report.created_by_kind == {"note": 2, "password": 3, "totp": 1} and report.accounts_created == 1
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert stored_value(db, ring, it, secrets["Instagram @acme"]) == "BW-PASS-1"
    assert secrets["Instagram @acme"].login == "acme" and secrets["Instagram @acme"].kind == "password"
    assert secrets["Instagram @acme"].url == "https://www.instagram.com/accounts/login/"
    assert stored_value(db, ring, it, secrets["Instagram @acme (2FA)"]) == SEED
    assert stored_value(db, ring, it, secrets["Instagram @acme (notes)"]).startswith("Recovery email is social@acme.example")
    assert "Backup PIN: 4455" in stored_value(db, ring, it, secrets["X corporate (notes)"])
    linkedin = db.scalars(select(Account).where(Account.platform == "linkedin")).one()
    assert linkedin.handle == "acme-corp" and secrets["LinkedIn page"].account_id == linkedin.id
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).all()
    assert len(events) == 1
    details = json.loads(events[0].details_json)
    assert details["accounts_created"] == 1 and details["rows_unmatched"] == 3 and details["rows_skipped"] == 1
    assert {"kind": "password", "count": 3} in details["secrets_created"]


def test_accounts_not_chosen_are_left_out(db, kit, accounts, ring):
    it = it_user(db, kit)
    before_accounts = count_rows(db)[2]
    report = import_apply.apply_import(db, import_parse.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring)
    assert report.accounts_created == 0 and report.created_by_kind == {"note": 2, "password": 2, "totp": 1}
    assert count_rows(db)[2] == before_accounts


def test_importing_the_same_file_twice_adds_nothing_the_second_time(db, kit, accounts, ring):
    it = it_user(db, kit)
    parsed = import_parse.parse_file(ONEPASSWORD_8, "1password")
    first = import_apply.apply_import(db, parsed, actor=it.user, keyring=ring)
    assert first.created_by_kind == {"password": 1, "totp": 1}
    second_preview = import_apply.preview_import(db, parsed)
    assert second_preview.already_vaulted == 2 and second_preview.secrets_by_kind == {}
    second = import_apply.apply_import(db, parsed, actor=it.user, keyring=ring)
    assert second.created_by_kind == {}


def test_same_title_twice_in_a_file_gets_distinct_labels(db, kit, accounts, ring):
    it = it_user(db, kit)
    content = (b"Title,Url,Username,Password\nInstagram,https://instagram.com/acme,acme,one-pass\n"
               b"Instagram,https://instagram.com/acme,acme,two-pass\n")
    import_apply.apply_import(db, import_parse.parse_file(content, "1password"), actor=it.user, keyring=ring)
    labels = sorted(db.scalars(select(Secret.label).where(Secret.account_id == accounts["instagram"].id)))
    assert labels == ["Instagram", "Instagram (line 3)"]


def test_generic_csv_makes_each_kind(db, kit, accounts, ring):
    it = it_user(db, kit)
    parsed = import_parse.parse_file(GENERIC, "generic")
    assert [p.line for p in parsed.problems] == [8]  # the unknown kind "sms"
    report = import_apply.apply_import(db, parsed, actor=it.user, keyring=ring, create_accounts={"pinterest:newbrand"})
    assert report.created_by_kind == {"api_token": 1, "password": 1, "recovery_codes": 1}
    assert {p.line: p.reason for p in report.skipped}[7].startswith("The 2FA seed")
    assert [r.line for r in report.unmatched] == [6]
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert stored_value(db, ring, it, secrets["Instagram recovery codes"]) == ["1111-2222", "3333-4444", "5555-6666"]
    token = secrets["X API token"]
    assert stored_value(db, ring, it, token) == "GEN-TOKEN-1" and str(token.token_expires_at) == "2027-01-31"
    assert secrets["Pinterest login"].login == "hello@acme.example"


def test_keepass_and_onepassword_totp_uris_keep_their_parameters(db, kit, accounts, ring):
    it = it_user(db, kit)
    import_apply.apply_import(db, import_parse.parse_file(KEEPASS, "keepass"), actor=it.user, keyring=ring)
    secret = db.scalars(select(Secret).where(Secret.label == "Mastodon (2FA)")).one()
    assert secret.account_id == accounts["mastodon"].id and secret.kind == "totp"
    assert stored_value(db, ring, it, secret) == SEED


def test_a_value_in_the_title_is_skipped_not_leaked(db, kit, accounts, ring):
    content = b"Title,Url,Username,Password\nacme-pass-123 Instagram,https://instagram.com/acme,acme,acme-pass-123\n"
    report = import_apply.preview_import(db, import_parse.parse_file(content, "1password"))
    assert report.matched == [] and "contains its password" in report.skipped[0].reason


def test_archived_accounts_take_nothing(db, kit, ring):
    make_account(db, platform="instagram", handle="oldbrand", url="https://www.instagram.com/oldbrand", status="archived")
    db.commit()
    report = import_apply.preview_import(db, import_parse.parse_file(b"Title,Url,Password\nOld,https://instagram.com/oldbrand,p4ssword\n", "1password"))
    assert report.matched == [] and "archived" in report.skipped[0].reason


def test_a_failure_while_vaulting_rolls_everything_back(db, kit, accounts, ring, monkeypatch):
    it = it_user(db, kit)
    calls = []

    def failing(session, **kwargs):
        calls.append(kwargs["kind"])
        if len(calls) == 2:
            raise InvalidError("broken on purpose")
        return create_secret(session, **kwargs)

    before = count_rows(db)
    with pytest.raises(import_apply.ImportFailedError, match="Line 2 could not be vaulted"):
        import_apply.apply_import(db, import_parse.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring, create_secret=failing)
    db.rollback()
    assert count_rows(db) == before


def test_an_audit_failure_is_not_turned_into_a_row_error(db, kit, accounts, ring, monkeypatch):
    from govern.errors import AuditWriteError

    it = it_user(db, kit)

    def audit_down(session, **kwargs):
        raise AuditWriteError("audit store unavailable")

    with pytest.raises(AuditWriteError):
        import_apply.apply_import(db, import_parse.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring, create_secret=audit_down)
    db.rollback()
