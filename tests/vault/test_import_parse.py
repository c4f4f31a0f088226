"""Reading password-manager exports: Bitwarden, 1Password, KeePassXC, generic CSV; encodings, limits, refusals."""

from __future__ import annotations

import pytest

from govern.vault import import_apply, import_parse
from tests.vault.helpers import BITWARDEN, KEEPASS, ONEPASSWORD_7, ONEPASSWORD_8, SEED


def test_bitwarden_export_with_bom_multiline_notes_fields_and_several_uris():
    parsed = import_parse.parse_file(BITWARDEN, "bitwarden", filename="bitwarden_export.csv")
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
    new = import_parse.parse_file(ONEPASSWORD_8, "1password")
    assert [(e.title, e.password, bool(e.totp)) for e in new.entries] == [("Facebook Page", "OP-PASS-1", True), ("YouTube", "OP-PASS-2", False)]
    assert new.entries[1].notes == "Brand account\nowner: Jane"
    assert "Favorite" in new.ignored_columns
    assert new.problems[0].line == 5 and "archived in 1Password" in new.problems[0].reason
    old = import_parse.parse_file(ONEPASSWORD_7, "1password")
    assert [e.password for e in old.entries] == ["OP7-PASS"]
    assert "Wireless Router" in old.problems[0].reason.title() or "wireless router" in old.problems[0].reason


def test_keepassxc_export_skips_the_recycle_bin_and_keeps_unicode():
    parsed = import_parse.parse_file(KEEPASS, "keepass")
    assert [e.title for e in parsed.entries] == ["Bluesky", "Mastodon"]
    assert parsed.entries[1].notes == "Müller’s account ✓"
    assert parsed.problems[0].line == 4 and "recycle bin" in parsed.problems[0].reason


def test_utf16_export_is_read():
    parsed = import_parse.parse_file(KEEPASS.decode().encode("utf-16"), "keepass")
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
    with pytest.raises(import_parse.ImportFileError) as caught:
        import_parse.parse_file(content, fmt)
    assert message in caught.value.message


def test_huge_files_and_cells_are_refused(monkeypatch):
    with pytest.raises(import_parse.ImportFileError, match="larger than 5 MB"):
        import_parse.parse_file(b"Title,Password\n" + b"a,b\n" * (import_parse.MAX_FILE_BYTES // 4 + 1), "1password")
    with pytest.raises(import_parse.ImportFileError, match="a cell is too large"):
        import_parse.parse_file(b'Title,Password\nx,"' + b"a" * 200_000 + b'"\n', "1password")
    monkeypatch.setattr(import_parse, "MAX_ROWS", 3)
    with pytest.raises(import_parse.ImportFileError, match="more than 3 entries"):
        import_parse.parse_file(b"Title,Password\n" + b"a,b\n" * 4, "1password")


def test_long_values_are_skipped_with_a_reason_that_does_not_quote_them():
    parsed = import_parse.parse_file(b"Title,Password\nA," + b"p" * 10_001 + b"\nB,ok-pass\n", "1password")
    assert [e.title for e in parsed.entries] == ["B"]
    assert parsed.problems[0].line == 2 and "longer than" in parsed.problems[0].reason
    assert "ppp" not in parsed.problems[0].reason


def test_values_over_the_vaults_limits_are_skipped_up_front(db, accounts):
    content = (b"Title,Url,Password\nLong,https://instagram.com/acme," + b"p" * 1025 + b"\n"
               b"Blank,https://instagram.com/acme,   \nFine,https://instagram.com/acme,fine-pass\n")
    report = import_apply.preview_import(db, import_parse.parse_file(content, "1password"))
    assert [r.line for r in report.matched] == [4]
    assert [(p.line, p.reason) for p in report.skipped] == [
        (2, "its password is longer than 1024 characters"),
        (3, "has no password, one-time password seed or notes to import")]


def test_passwords_are_kept_exactly():
    parsed = import_parse.parse_file(b'Title,Password\nA," spaced, ""quoted"" "\n', "1password")
    assert parsed.entries[0].password == ' spaced, "quoted" '
