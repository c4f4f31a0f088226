"""Import from Bitwarden, 1Password, KeePassXC and generic CSV exports: parsing, matching, dry run,
vaulting through create_secret, the pages, the CLI, permissions, and a canary hunt."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select, text

from govern.accounts.models import Account
from govern.audit.models import AuditEvent
from govern.cli import cli
from govern.db import Base
from govern.errors import InvalidError
from govern.vault import importer
from govern.vault.access import decrypt_version
from govern.vault.models import Secret, SecretVersion
from govern.vault.versions import create_secret
from tests.factories import csrf_from, csrf_token, login, make_account, make_user

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

BITWARDEN = (
    "\ufefffolder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\r\n"
    'Social,1,login,Instagram @acme,"Recovery email is social@acme.example\r\nSecond line of notes",,0,'
    f"https://www.instagram.com/accounts/login/,acme,BW-PASS-1,{SEED}\r\n"
    'Social,,login,X corporate,,"Backup PIN: 4455",0,"https://x.com/acme_news,https://twitter.com/acme_news",'
    "social@acme.example,BW-PASS-2,\r\n"
    ",,login,Intranet,,,0,https://intranet.example.com/login,jdoe,BW-PASS-3,\r\n"
    ",,card,Company Visa,,,0,,,,\r\n"
    "\r\n"
    "Social,,note,Brand guidelines,Use the blue logo.,,0,,,,\r\n"
    ",,login,TikTok,,,0,https://www.tiktok.com/login,social@acme.example,BW-PASS-4,\r\n"
    ",,login,LinkedIn page,,,0,https://www.linkedin.com/company/acme-corp/,admin@acme.example,BW-PASS-5,\r\n"
).encode()

ONEPASSWORD_8 = (
    "Title,Url,Username,Password,OTPAuth,Favorite,Archived,Tags,Notes\n"
    "Facebook Page,https://www.facebook.com/acme.official,social@acme.example,OP-PASS-1,"
    f"otpauth://totp/Facebook:acme?secret={SEED}&issuer=Facebook&digits=6&period=30,false,false,social,\n"
    'YouTube,https://www.youtube.com/@AcmeTV,acme.brand@gmail.com,OP-PASS-2,,false,false,,"Brand account\nowner: Jane"\n'
    "Old X,https://x.com/acme_news,old@acme.example,OP-OLD,,false,true,,\n"
).encode()

ONEPASSWORD_7 = (
    b'"title","website","username","password","notes","type"\n'
    b'"Facebook Page","https://facebook.com/acme.official/","social@acme.example","OP7-PASS","","Login"\n'
    b'"Office wifi","","","OP7-WIFI","","Wireless Router"\n'
)

KEEPASS = (
    '"Group","Title","Username","Password","URL","Notes","TOTP","Icon","Last Modified","Created"\n'
    '"Root/Social","Bluesky","acme.bsky.social","KP-PASS-1","https://bsky.app/profile/acme.bsky.social","","","0",'
    '"2026-11-01T10:00:00Z","2026-01-01T10:00:00Z"\n'
    '"Root/Social","Mastodon","acme","KP-PASS-2","https://mastodon.social/auth/sign_in","Müller’s account ✓",'
    f'"otpauth://totp/mastodon.social:acme?secret={SEED}&period=30&digits=6&issuer=mastodon.social","0","",""\n'
    '"Root/Recycle Bin","Old Instagram","acme","KP-OLD","https://instagram.com","","","0","",""\n'
).encode()

GENERIC = (
    b"account,platform,kind,label,login,value,expires_at\n"
    b'@acme,instagram,recovery_codes,Instagram recovery codes,,"1111-2222 3333-4444\n5555-6666",\n'
    b"https://x.com/acme_news,,api_token,X API token,,GEN-TOKEN-1,2027-01-31\n"
    b"newbrand,pinterest,password,Pinterest login,hello@acme.example,GEN-PASS-1,\n"
    b"nobody,,password,Mystery,,GEN-PASS-2,\n"
    b"@acme,instagram,totp,Instagram 2FA,,not a seed,\n"
    b"@acme,instagram,sms,Instagram text,,123,\n"
)


@pytest.fixture
def accounts(db: Any) -> dict[str, Account]:
    made = {
        "instagram": make_account(db, platform="instagram", handle="acme", url="https://www.instagram.com/acme"),
        "x": make_account(db, platform="x", handle="acme_news", url="https://x.com/acme_news"),
        "facebook": make_account(db, platform="facebook", handle="acme.official", url="https://www.facebook.com/acme.official"),
        "bluesky": make_account(db, platform="bluesky", handle="acme.bsky.social", url="https://bsky.app/profile/acme.bsky.social"),
        "mastodon": make_account(db, platform="mastodon", handle="acme@mastodon.social", url="https://mastodon.social/@acme"),
    }
    db.commit()
    return made


def _it(db: Any, kit: Any) -> Any:
    return make_user(db, kit, roles=("it",))


def _counts(db: Any) -> tuple[int, int, int, int]:
    db.expire_all()
    return (db.scalar(select(func.count()).select_from(Secret)) or 0,
            db.scalar(select(func.count()).select_from(SecretVersion)) or 0,
            db.scalar(select(func.count()).select_from(Account)) or 0,
            db.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def _value(db: Any, ring: Any, who: Any, secret: Secret) -> Any:
    version = db.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id)).one()
    payload = decrypt_version(db, actor=who.user, keyring=ring, version=version)
    if "codes" in payload:
        return [c["code"] for c in payload["codes"]]
    return payload.get("seed") or payload.get("value")


# --- parsing ------------------------------------------------------------------------------------------


def test_bitwarden_export_with_bom_multiline_notes_fields_and_several_uris():
    parsed = importer.parse_file(BITWARDEN, "bitwarden", filename="bitwarden_export.csv")
    assert parsed.rows == 7  # the empty line is not an entry
    by_title = {e.title: e for e in parsed.entries}
    instagram = by_title["Instagram @acme"]
    assert instagram.line == 2 and instagram.password == "BW-PASS-1" and instagram.totp == SEED
    assert instagram.notes == "Recovery email is social@acme.example\r\nSecond line of notes"
    x = by_title["X corporate"]
    assert x.line == 4 and x.url == "https://x.com/acme_news" and x.notes == "Backup PIN: 4455"
    assert by_title["LinkedIn page"].line == 10
    assert [(p.line, "card" in p.reason) for p in parsed.problems] == [(6, True)]
    assert "BW-PASS-1" not in repr(instagram) and "Second line" not in repr(instagram)


def test_onepassword_header_variants():
    new = importer.parse_file(ONEPASSWORD_8, "1password")
    assert [(e.title, e.password, bool(e.totp)) for e in new.entries] == [("Facebook Page", "OP-PASS-1", True), ("YouTube", "OP-PASS-2", False)]
    assert new.entries[1].notes == "Brand account\nowner: Jane"
    assert "Favorite" in new.ignored_columns
    assert new.problems[0].line == 5 and "archived in 1Password" in new.problems[0].reason
    old = importer.parse_file(ONEPASSWORD_7, "1password")
    assert [e.password for e in old.entries] == ["OP7-PASS"]
    assert "Wireless Router" in old.problems[0].reason.title() or "wireless router" in old.problems[0].reason


def test_keepassxc_export_skips_the_recycle_bin_and_keeps_unicode():
    parsed = importer.parse_file(KEEPASS, "keepass")
    assert [e.title for e in parsed.entries] == ["Bluesky", "Mastodon"]
    assert parsed.entries[1].notes == "Müller’s account ✓"
    assert parsed.problems[0].line == 4 and "recycle bin" in parsed.problems[0].reason


def test_utf16_export_is_read():
    parsed = importer.parse_file(KEEPASS.decode().encode("utf-16"), "keepass")
    assert [e.password for e in parsed.entries] == ["KP-PASS-1", "KP-PASS-2"]


@pytest.mark.parametrize(("content", "fmt", "message"), [
    (b"", "bitwarden", "empty"),
    (b"   \n\n", "bitwarden", "empty"),
    ("name,login_password,type\nCaf\u00e9,x,login\n".encode("latin-1"), "bitwarden", "Line 2 is not UTF-8"),
    (b"\xff\xfeA\x00B", "keepass", "UTF-16"),
    (b"Title,Password\nA,\x00\n", "1password", "NUL"),
    (b"Title,Url,Username,Password\n\"Broken,https://x.com,a,b\n", "1password", "quote is not closed"),
    (BITWARDEN, "keepass", "not a KeePassXC (CSV) export"),
    (BITWARDEN, "generic", "not a Generic CSV"),
    (b"just some text without columns\n", "bitwarden", "not a Bitwarden (CSV) export"),
    (b"x", "lastpass", "Choose the format"),
])
def test_unreadable_files_get_a_clear_error(content, fmt, message):
    with pytest.raises(importer.ImportFileError) as caught:
        importer.parse_file(content, fmt)
    assert message in caught.value.message


def test_huge_files_and_cells_are_refused(monkeypatch):
    with pytest.raises(importer.ImportFileError, match="larger than 5 MB"):
        importer.parse_file(b"Title,Password\n" + b"a,b\n" * (importer.MAX_FILE_BYTES // 4 + 1), "1password")
    with pytest.raises(importer.ImportFileError, match="a cell is too large"):
        importer.parse_file(b'Title,Password\nx,"' + b"a" * 200_000 + b'"\n', "1password")
    monkeypatch.setattr(importer, "MAX_ROWS", 3)
    with pytest.raises(importer.ImportFileError, match="more than 3 entries"):
        importer.parse_file(b"Title,Password\n" + b"a,b\n" * 4, "1password")


def test_long_values_are_skipped_with_a_reason_that_does_not_quote_them():
    parsed = importer.parse_file(b"Title,Password\nA," + b"p" * 10_001 + b"\nB,ok-pass\n", "1password")
    assert [e.title for e in parsed.entries] == ["B"]
    assert parsed.problems[0].line == 2 and "longer than" in parsed.problems[0].reason
    assert "ppp" not in parsed.problems[0].reason


def test_values_over_the_vaults_limits_are_skipped_up_front(db, accounts):
    content = (b"Title,Url,Password\nLong,https://instagram.com/acme," + b"p" * 1025 + b"\n"
               b"Blank,https://instagram.com/acme,   \nFine,https://instagram.com/acme,fine-pass\n")
    report = importer.preview_import(db, importer.parse_file(content, "1password"))
    assert [r.line for r in report.matched] == [4]
    assert [(p.line, p.reason) for p in report.skipped] == [
        (2, "its password is longer than 1024 characters"),
        (3, "has no password, one-time password seed or notes to import")]


def test_passwords_are_kept_exactly():
    parsed = importer.parse_file(b'Title,Password\nA," spaced, ""quoted"" "\n', "1password")
    assert parsed.entries[0].password == ' spaced, "quoted" '


# --- matching -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "title", "login", "expected"), [
    ("https://www.instagram.com/acme/", "", "", ("instagram", "acme")),
    ("https://www.instagram.com/accounts/login/", "Instagram @acme", "someone@example.com", ("instagram", "acme")),
    ("https://instagram.com/accounts/login", "Instagram", "acme", ("instagram", "acme")),
    ("https://mobile.twitter.com/Acme_News", "", "", ("x", "acme_news")),
    ("twitter.com/login", "", "@acme_news", ("x", "acme_news")),
    ("https://www.linkedin.com/company/acme-corp/admin/", "", "", ("linkedin", "acme-corp")),
    ("https://www.tiktok.com/@acme.tok", "", "", ("tiktok", "acme.tok")),
    ("https://www.youtube.com/@AcmeTV/videos", "", "", ("youtube", "acmetv")),
    ("https://accounts.google.com/signin", "YouTube @AcmeTV", "brand@gmail.com", ("youtube", "acmetv")),
    ("https://www.threads.net/@acme", "", "", ("threads", "acme")),
    ("https://www.pinterest.co.uk/acmehome/", "", "", ("pinterest", "acmehome")),
    ("https://www.snapchat.com/add/acme", "", "", ("snapchat", "acme")),
    ("https://bsky.app/profile/acme.bsky.social", "", "", ("bluesky", "acme.bsky.social")),
    ("https://mastodon.social/@acme", "", "", ("mastodon", "acme@mastodon.social")),
    ("https://mastodon.social/auth/sign_in", "", "acme", ("mastodon", "acme@mastodon.social")),
    ("https://www.facebook.com/profile.php?id=100012345678", "", "", ("facebook", "100012345678")),
])
def test_entries_point_to_platform_and_handle(url, title, login, expected):
    entry = importer.Entry(line=2, title=title, url=url, login=login, password="x")
    match = importer.match_entry(importer.AccountIndex(), entry)
    assert (match.platform, match.handle) == expected, match.reason


@pytest.mark.parametrize(("url", "title", "login", "reason"), [
    ("https://www.tiktok.com/login", "TikTok", "social@acme.example", "without a handle"),
    ("https://www.instagram.com/accounts/login/", "", "+44 20 7946 0000", "without a handle"),
    ("https://intranet.example.com/login", "Intranet", "jdoe", "not a social media platform"),
    ("", "Wifi", "", "no address"),
    ("https://x.com/login", "", "not a valid handle!", "not a valid X handle"),
])
def test_entries_that_cannot_be_matched_say_why(url, title, login, reason):
    entry = importer.Entry(line=7, title=title, url=url, login=login, password="x")
    match = importer.match_entry(importer.AccountIndex(), entry)
    assert match.account is None and match.new_key is None and reason in match.reason


def test_existing_accounts_are_matched_by_handle_url_and_generic_reference(db, accounts):
    index = importer.build_index(db)
    for entry, expected in [
        (importer.Entry(line=2, url="https://www.instagram.com/accounts/login/", title="@ACME"), "instagram"),
        (importer.Entry(line=2, url="https://twitter.com/acme_news/status/1"), "x"),
        (importer.Entry(line=2, url="https://mastodon.social/@acme"), "mastodon"),
        (importer.Entry(line=2, is_generic=True, account_ref="@acme", platform="instagram"), "instagram"),
        (importer.Entry(line=2, is_generic=True, account_ref="acme.official"), "facebook"),
        (importer.Entry(line=2, is_generic=True, account_ref="https://x.com/acme_news"), "x"),
    ]:
        match = importer.match_entry(index, entry)
        assert match.account is not None and match.account.id == accounts[expected].id, (entry, match.reason)


def test_other_platform_accounts_match_on_their_address(db):
    forum = make_account(db, platform="other", handle="acme-forum", url="https://forum.example.org/u/acme")
    db.commit()
    match = importer.match_entry(importer.build_index(db), importer.Entry(line=2, url="https://forum.example.org/login"))
    assert match.account is not None and match.account.id == forum.id


# --- preview and apply (services) -------------------------------------------------------------------------


def test_preview_reports_matches_new_accounts_and_unmatched_rows_and_writes_nothing(db, kit, accounts):
    before = _counts(db)
    report = importer.preview_import(db, importer.parse_file(BITWARDEN, "bitwarden"))
    db.rollback()
    assert _counts(db) == before
    assert [(r.line, r.account_label) for r in report.matched] == [(2, "@acme on Instagram"), (4, "@acme_news on X")]
    assert [[s.kind for s in r.secrets] for r in report.matched] == [["password", "totp", "note"], ["password", "note"]]
    assert list(report.new_accounts) == ["linkedin:acme-corp"] and report.new_accounts["linkedin:acme-corp"].lines == [10]
    unmatched = {r.line: r.reason for r in report.unmatched}
    assert set(unmatched) == {5, 8, 9}
    assert "not a social media platform" in unmatched[5] and "without a handle" in unmatched[9]
    assert [p.line for p in report.skipped] == [6]
    assert report.secrets_by_kind == {"note": 2, "password": 2, "totp": 1}


def test_apply_vaults_every_value_through_create_secret_with_one_import_event(db, kit, accounts, ring):
    it = _it(db, kit)
    report = importer.apply_import(db, importer.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring,
                                   create_accounts={"linkedin:acme-corp"})
    db.commit()
    assert report.created_by_kind == {"note": 2, "password": 3, "totp": 1} and report.accounts_created == 1
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert _value(db, ring, it, secrets["Instagram @acme"]) == "BW-PASS-1"
    assert secrets["Instagram @acme"].login == "acme" and secrets["Instagram @acme"].kind == "password"
    assert secrets["Instagram @acme"].url == "https://www.instagram.com/accounts/login/"
    assert _value(db, ring, it, secrets["Instagram @acme (2FA)"]) == SEED
    assert _value(db, ring, it, secrets["Instagram @acme (notes)"]).startswith("Recovery email is social@acme.example")
    assert "Backup PIN: 4455" in _value(db, ring, it, secrets["X corporate (notes)"])
    linkedin = db.scalars(select(Account).where(Account.platform == "linkedin")).one()
    assert linkedin.handle == "acme-corp" and secrets["LinkedIn page"].account_id == linkedin.id
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).all()
    assert len(events) == 1
    details = json.loads(events[0].details_json)
    assert details["accounts_created"] == 1 and details["rows_unmatched"] == 3 and details["rows_skipped"] == 1
    assert {"kind": "password", "count": 3} in details["secrets_created"]


def test_accounts_not_chosen_are_left_out(db, kit, accounts, ring):
    it = _it(db, kit)
    before_accounts = _counts(db)[2]
    report = importer.apply_import(db, importer.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring)
    assert report.accounts_created == 0 and report.created_by_kind == {"note": 2, "password": 2, "totp": 1}
    assert _counts(db)[2] == before_accounts


def test_importing_the_same_file_twice_adds_nothing_the_second_time(db, kit, accounts, ring):
    it = _it(db, kit)
    parsed = importer.parse_file(ONEPASSWORD_8, "1password")
    first = importer.apply_import(db, parsed, actor=it.user, keyring=ring)
    assert first.created_by_kind == {"password": 1, "totp": 1}
    second_preview = importer.preview_import(db, parsed)
    assert second_preview.already_vaulted == 2 and second_preview.secrets_by_kind == {}
    second = importer.apply_import(db, parsed, actor=it.user, keyring=ring)
    assert second.created_by_kind == {}


def test_same_title_twice_in_a_file_gets_distinct_labels(db, kit, accounts, ring):
    it = _it(db, kit)
    content = (b"Title,Url,Username,Password\nInstagram,https://instagram.com/acme,acme,one-pass\n"
               b"Instagram,https://instagram.com/acme,acme,two-pass\n")
    importer.apply_import(db, importer.parse_file(content, "1password"), actor=it.user, keyring=ring)
    labels = sorted(db.scalars(select(Secret.label).where(Secret.account_id == accounts["instagram"].id)))
    assert labels == ["Instagram", "Instagram (line 3)"]


def test_generic_csv_makes_each_kind(db, kit, accounts, ring):
    it = _it(db, kit)
    parsed = importer.parse_file(GENERIC, "generic")
    assert [p.line for p in parsed.problems] == [8]  # the unknown kind "sms"
    report = importer.apply_import(db, parsed, actor=it.user, keyring=ring, create_accounts={"pinterest:newbrand"})
    assert report.created_by_kind == {"api_token": 1, "password": 1, "recovery_codes": 1}
    assert {p.line: p.reason for p in report.skipped}[7].startswith("The 2FA seed")
    assert [r.line for r in report.unmatched] == [6]
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert _value(db, ring, it, secrets["Instagram recovery codes"]) == ["1111-2222", "3333-4444", "5555-6666"]
    token = secrets["X API token"]
    assert _value(db, ring, it, token) == "GEN-TOKEN-1" and str(token.token_expires_at) == "2027-01-31"
    assert secrets["Pinterest login"].login == "hello@acme.example"


def test_keepass_and_onepassword_totp_uris_keep_their_parameters(db, kit, accounts, ring):
    it = _it(db, kit)
    importer.apply_import(db, importer.parse_file(KEEPASS, "keepass"), actor=it.user, keyring=ring)
    secret = db.scalars(select(Secret).where(Secret.label == "Mastodon (2FA)")).one()
    assert secret.account_id == accounts["mastodon"].id and secret.kind == "totp"
    assert _value(db, ring, it, secret) == SEED


def test_a_value_in_the_title_is_skipped_not_leaked(db, kit, accounts, ring):
    content = b"Title,Url,Username,Password\nacme-pass-123 Instagram,https://instagram.com/acme,acme,acme-pass-123\n"
    report = importer.preview_import(db, importer.parse_file(content, "1password"))
    assert report.matched == [] and "contains its password" in report.skipped[0].reason


def test_archived_accounts_take_nothing(db, kit, ring):
    make_account(db, platform="instagram", handle="oldbrand", url="https://www.instagram.com/oldbrand", status="archived")
    db.commit()
    report = importer.preview_import(db, importer.parse_file(b"Title,Url,Password\nOld,https://instagram.com/oldbrand,p4ssword\n", "1password"))
    assert report.matched == [] and "archived" in report.skipped[0].reason


def test_a_failure_while_vaulting_rolls_everything_back(db, kit, accounts, ring, monkeypatch):
    it = _it(db, kit)
    calls = []

    def failing(session, **kwargs):
        calls.append(kwargs["kind"])
        if len(calls) == 2:
            raise InvalidError("broken on purpose")
        return create_secret(session, **kwargs)

    before = _counts(db)
    with pytest.raises(importer.ImportFailedError, match="Line 2 could not be vaulted"):
        importer.apply_import(db, importer.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring, create_secret=failing)
    db.rollback()
    assert _counts(db) == before


def test_an_audit_failure_is_not_turned_into_a_row_error(db, kit, accounts, ring, monkeypatch):
    from govern.errors import AuditWriteError

    it = _it(db, kit)

    def audit_down(session, **kwargs):
        raise AuditWriteError("audit store unavailable")

    with pytest.raises(AuditWriteError):
        importer.apply_import(db, importer.parse_file(BITWARDEN, "bitwarden"), actor=it.user, keyring=ring, create_secret=audit_down)
    db.rollback()


# --- the pages ----------------------------------------------------------------------------------------------


def _upload(client: Any, path: str, content: bytes, token_page: str = "/vault/import", **fields: Any) -> Any:
    token = csrf_token(client, token_page)
    data = {"csrf_token": token, "file": (io.BytesIO(content), "export.csv"), **fields}
    return client.post(path, data=data, content_type="multipart/form-data")


def _confirm(client: Any, preview_html: str, content: bytes, fmt: str, create: list[str] | None = None) -> Any:
    sha = re.search(r'name="sha256" type="hidden" value="([0-9a-f]{64})"', preview_html)
    assert sha, "no digest on the preview"
    data = {"csrf_token": csrf_from(preview_html), "format": fmt, "sha256": sha.group(1),
            "file": (io.BytesIO(content), "export.csv"), "create": create or []}
    return client.post("/vault/import/confirm", data=data, content_type="multipart/form-data")


def test_it_previews_then_confirms_an_import(app, db, kit, accounts, ring):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    before = _counts(db)
    preview = _upload(client, "/vault/import", BITWARDEN, format="bitwarden")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert _counts(db) == before
    for expected in ("Instagram @acme", "@acme_news on X", "@acme-corp on LinkedIn", "intranet.example.com",
                     "without a handle", "Bitwarden card item"):
        assert expected in html
    for value in ("BW-PASS-1", SEED, "Second line of notes", "Backup PIN"):
        assert value not in html
    done = _confirm(client, html, BITWARDEN, "bitwarden", create=["linkedin:acme-corp"])
    assert done.status_code == 302
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "vaulted 2 note, 3 password, 1 totp" in result and "1 account(s) created" in result
    assert _counts(db)[0] == before[0] + 6


def test_confirm_with_another_file_imports_nothing_and_previews_it(app, db, kit, accounts, ring):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    before = _counts(db)
    response = _confirm(client, html, BITWARDEN.replace(b"BW-PASS-1", b"BW-PASS-9"), "bitwarden")
    assert response.status_code == 200 and "not the file you previewed" in response.get_data(as_text=True)
    assert _counts(db) == before


def test_confirm_without_the_file_imports_nothing(app, db, kit, accounts, ring):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    before = _counts(db)
    response = client.post("/vault/import/confirm", data={"csrf_token": csrf_from(html), "format": "bitwarden", "sha256": "0" * 64})
    assert response.status_code == 302 and _counts(db) == before


@pytest.mark.parametrize(("content", "fmt", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "bitwarden", "not UTF-8"),
    (b"Title,Password\n\"never closed,x\n", "1password", "quote is not closed"),
    (KEEPASS, "bitwarden", "not a Bitwarden (CSV) export"),
    (b"", "keepass", "Choose the exported CSV file"),
])
def test_bad_uploads_get_a_message_never_a_500(app, db, kit, content, fmt, message):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    if content:
        response = _upload(client, "/vault/import", content, format=fmt)
    else:
        response = client.post("/vault/import", data={"csrf_token": csrf_token(client, "/vault/import"), "format": fmt})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_a_large_upload_stays_in_memory_and_is_refused_cleanly(app, db, kit):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    big = b"Title,Password\n" + b"entry,value\n" * 600_000  # ~7 MB: over the import limit, under the request limit
    response = _upload(client, "/vault/import", big, format="1password")
    assert response.status_code == 400 and "larger than 5 MB" in response.get_data(as_text=True)


def test_uploads_are_not_spooled_to_disk(app):
    with app.test_request_context("/", method="POST"):
        from flask import request

        stream = request._get_file_stream(10_000_000, "text/csv", "export.csv")
        assert isinstance(stream, io.BytesIO)


@pytest.mark.parametrize("roles", [(), ("manager",), ("hr",), ("auditor",)])
def test_only_it_and_admins_may_import(app, db, kit, accounts, roles):
    who = make_user(db, kit, roles=roles)
    client = app.test_client()
    login(client, db, who)
    assert client.get("/vault/import").status_code == 403
    token = csrf_token(client, "/account")
    before = _counts(db)[:3]
    for path in ("/vault/import", "/vault/import/confirm"):
        response = client.post(path, data={"csrf_token": token, "format": "bitwarden", "file": (io.BytesIO(BITWARDEN), "e.csv")},
                               content_type="multipart/form-data")
        assert response.status_code == 403
    assert _counts(db)[:3] == before


def test_admin_may_import(app, db, kit, accounts, ring):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    assert client.get("/vault/import").status_code == 200


@pytest.mark.parametrize("app_overrides", [{"VAULT_KEYRING_JSON": ""}])
def test_a_sealed_vault_previews_but_refuses_to_import(app, db, kit, accounts, tmp_path, app_overrides):
    assert app.extensions["govern.keyring"] is None
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    assert "vault is sealed" in html
    before = _counts(db)
    response = _confirm(client, html, BITWARDEN, "bitwarden")
    assert response.status_code == 503 and _counts(db) == before


# --- canaries ------------------------------------------------------------------------------------------------

CANARIES = {
    "password": "CANARY-pw-7f3a9c2e51",
    "seed": "CANARYTOTPSEEDQQQQQQQQQQQQQQQQQQ",
    "note": "CANARY-note-51b2e0d4",
    "field": "CANARY-field-88aa01ff",
    "password2": "CANARY-pw-second-b7c9",
}
CANARY_EXPORT = (
    "folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\n"
    f'Social,,login,Instagram @acme,"{CANARIES["note"]}\nmore",'
    f'"Security answer: {CANARIES["field"]}",0,https://www.instagram.com/accounts/login/,acme,{CANARIES["password"]},'
    f'otpauth://totp/Instagram:acme?secret={CANARIES["seed"]}&issuer=Instagram\n'
    f",,login,Pinterest,,,0,https://www.pinterest.com/newbrand/,hello@acme.example,{CANARIES['password2']},\n"
    f",,login,Forum,,,0,https://forum.example.net/,me,{CANARIES['password']}x,\n"
).encode()


def _forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex(), quote(value)]


def _leaks(haystack: str) -> list[str]:
    return [f"{name}:{form[:12]}" for name, value in CANARIES.items() for form in _forms(value) if form in haystack]


def test_canary_values_end_up_only_as_ciphertext(app, db, kit, accounts, ring, caplog):
    caplog.set_level(logging.DEBUG)
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    pages = []
    preview = _upload(client, "/vault/import", CANARY_EXPORT, format="bitwarden")
    pages.append(preview.get_data(as_text=True))
    done = _confirm(client, pages[0], CANARY_EXPORT, "bitwarden", create=["pinterest:newbrand"])
    assert done.status_code == 302
    pages.append(client.get(done.headers["Location"]).get_data(as_text=True))
    assert "vaulted" in pages[1]
    # The values are in the vault...
    db.expire_all()
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert _value(db, ring, it, secrets["Instagram @acme"]) == CANARIES["password"]
    assert _value(db, ring, it, secrets["Pinterest"]) == CANARIES["password2"]
    assert CANARIES["field"] in _value(db, ring, it, secrets["Instagram @acme (notes)"])
    # ...and nowhere else: not in a page, a log line, an audit event, or any database column.
    for html in pages:
        assert _leaks(html) == []
    assert _leaks(caplog.text) == []
    audit_text = " ".join(f"{e.action} {e.details_json} {e.target_id}" for e in db.scalars(select(AuditEvent)))
    assert "vault.imported" in audit_text and _leaks(audit_text) == []
    found = []
    for table in Base.metadata.sorted_tables:
        for row in db.execute(select(table)):
            for cell in row:
                if isinstance(cell, bytes | bytearray):
                    blob = bytes(cell)
                    found += [f"{table.name}:{n}" for n, v in CANARIES.items() if v.encode() in blob]
                elif cell is not None:
                    found += [f"{table.name}:{leak}" for leak in _leaks(str(cell))]
    assert found == []
    assert db.execute(text("SELECT count(*) FROM secret_versions")).scalar() == 4


# --- the CLI ----------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _schema_checked_elsewhere(monkeypatch):
    # The CLI checks the schema on a connection of its own, which would wait for the test's open
    # transaction on SQLite; the check itself is tested with the other commands.
    monkeypatch.setattr("govern.vault.import_cli.ensure_current", lambda engine: None)


def test_cli_dry_run_writes_nothing(app, db, kit, accounts, ring, tmp_path):
    export = tmp_path / "bitwarden.csv"
    export.write_bytes(BITWARDEN)
    before = _counts(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output and "2 matched" in result.output and "would vault 2 note, 2 password, 1 totp" in result.output
    assert "bitwarden.csv:9: not matched" in result.output
    assert "BW-PASS" not in result.output and SEED not in result.output
    assert _counts(db) == before


def test_cli_imports_as_an_it_user(app, db, kit, accounts, ring, tmp_path):
    it = _it(db, kit)
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
    before = _counts(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "1password", "--as", who.email])
    assert result.exit_code != 0 and "not an active IT or admin user" in result.output
    assert _counts(db) == before


def test_cli_needs_an_actor_and_reports_bad_files(app, db, kit, ring, tmp_path):
    export = tmp_path / "broken.csv"
    export.write_bytes(b"no,columns,here\n1,2,3\n")
    runner = app.test_cli_runner()
    missing_actor = runner.invoke(cli, args=["vault", "import", str(export), "--format", "keepass"])
    assert missing_actor.exit_code != 0 and "--as EMAIL" in missing_actor.output
    bad = runner.invoke(cli, args=["vault", "import", str(export), "--format", "keepass", "--dry-run"])
    assert bad.exit_code != 0 and "not a KeePassXC (CSV) export" in bad.output


def test_long_previews_say_what_they_leave_out(app, db, kit, accounts, monkeypatch):
    monkeypatch.setattr(importer, "MAX_LISTED", 1)
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    assert "Showing the first 1 of 2." in html and "Showing the first 1 of 3." in html


def _row_lines(output: str, filename: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{filename}:")]


@pytest.mark.parametrize(("fmt", "content", "extra"), [
    ("1password", ONEPASSWORD_8, ["--create-accounts"]),
    ("bitwarden", BITWARDEN, ["--create-accounts"]),
    ("bitwarden", BITWARDEN, []),
    ("generic", GENERIC, ["--create-accounts", "--account", "x:acme_news"]),
])
def test_cli_dry_run_shows_what_the_real_run_does(app, db, kit, accounts, ring, tmp_path, fmt, content, extra):
    it = _it(db, kit)
    export = tmp_path / "export.csv"
    export.write_bytes(content)
    runner = app.test_cli_runner()
    before = _counts(db)
    dry = runner.invoke(cli, args=["vault", "import", str(export), "--format", fmt, "--dry-run", *extra])
    assert dry.exit_code == 0, dry.output
    assert _counts(db) == before
    real = runner.invoke(cli, args=["vault", "import", str(export), "--format", fmt, "--as", it.email, *extra])
    assert real.exit_code == 0, real.output
    # Every entry's line is the same: where it goes, or why it is left out.
    assert _row_lines(dry.output, "export.csv") == _row_lines(real.output, "export.csv")
    would = re.search(r"would vault (.*); would create (\d+) account\(s\)", dry.output)
    did = re.search(r"Vaulted (.*); (\d+) account\(s\) created", real.output)
    assert would and did and would.groups() == did.groups(), (dry.output, real.output)
    db.expire_all()
    created_accounts = _counts(db)[2] - before[2]
    assert created_accounts == int(did.group(2))
    if "--create-accounts" in extra and fmt != "generic":
        assert created_accounts >= 1 and "(a new account, created by this import)" in dry.output
    assert "PASS" not in dry.output + real.output and SEED not in dry.output + real.output


def test_cli_account_puts_unmatched_entries_into_an_account(app, db, kit, accounts, ring, tmp_path):
    it = _it(db, kit)
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
    assert _value(db, ring, it, secret) == "Recovery email: social@acme.example"
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
    before = _counts(db)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden",
                                                     "--dry-run", "--account", reference])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert _counts(db) == before


def test_cli_account_refuses_an_archived_account(app, db, kit, ring, tmp_path):
    make_account(db, platform="instagram", handle="oldbrand", status="archived")
    db.commit()
    export = tmp_path / "bitwarden.csv"
    export.write_bytes(BITWARDEN)
    result = app.test_cli_runner().invoke(cli, args=["vault", "import", str(export), "--format", "bitwarden",
                                                     "--dry-run", "--account", "instagram:oldbrand"])
    assert result.exit_code != 0 and "is archived" in result.output


NOTE_ONLY = (b"folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\r\n"
             b"Social,,note,Instagram recovery,Recovery email: social@acme.example,,0,,,,\r\n"
             b"Social,,note,X backup codes,Codes are in the safe,,0,,,,\r\n"
             b",,login,Intranet,,,0,https://intranet.example.com/login,jdoe,BW-PASS-3,\r\n")


def _confirm_with(client: Any, html: str, content: bytes, fmt: str, **fields: Any) -> Any:
    sha = re.search(r'name="sha256" type="hidden" value="([0-9a-f]{64})"', html).group(1)
    data = {"csrf_token": csrf_from(html), "format": fmt, "sha256": sha, "file": (io.BytesIO(content), "export.csv"), **fields}
    return client.post("/vault/import/confirm", data=data, content_type="multipart/form-data")


def test_the_web_import_lets_it_choose_the_account_of_unmatched_entries(app, db, kit, accounts, ring):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", NOTE_ONLY, format="bitwarden").get_data(as_text=True)
    # Nothing matches by itself, and still the preview offers the import, with a choice per entry.
    assert 'id="import-confirm"' in html and 'name="account-2"' in html and 'name="account-3"' in html
    assert 'name="account_all"' in html and '<option value="instagram:acme">@acme on Instagram</option>' in html
    assert "Recovery email" not in html
    before = _counts(db)
    done = _confirm_with(client, html, NOTE_ONLY, "bitwarden", **{"account-2": "instagram:acme", "account_all": "x:acme_news"})
    assert done.status_code == 302, done.get_data(as_text=True)
    flashed = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "vaulted 2 note, 1 password" in flashed and "3 row(s) went to the account chosen for them" in flashed
    db.expire_all()
    assert _counts(db)[0] == before[0] + 3
    labels = {(s.account_id, s.label) for s in db.scalars(select(Secret))}
    assert (accounts["instagram"].id, "Instagram recovery (notes)") in labels
    assert {(accounts["x"].id, "X backup codes (notes)"), (accounts["x"].id, "Intranet")} <= labels
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).one()
    assert json.loads(event.details_json)["rows_assigned"] == 3 and "Recovery email" not in event.details_json


@pytest.mark.parametrize("fields", [{"account-2": "instagram:nobody"}, {"account_all": "tiktok:ghost"}])
def test_an_unknown_chosen_account_imports_nothing(app, db, kit, accounts, ring, fields):
    it = _it(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = _upload(client, "/vault/import", NOTE_ONLY, format="bitwarden").get_data(as_text=True)
    before = _counts(db)
    response = _confirm_with(client, html, NOTE_ONLY, "bitwarden", **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "no account" in page and "Nothing was imported" in page
    assert _counts(db) == before
