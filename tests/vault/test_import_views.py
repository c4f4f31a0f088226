"""The import pages: preview then confirm, bad uploads, permissions, a sealed vault, the canary hunt, choosing accounts."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from govern.audit.models import AuditEvent
from govern.db import Base
from govern.vault.models import Secret
from tests.factories import csrf_from, csrf_token, login, make_user
from tests.vault.helpers import (
    BITWARDEN,
    KEEPASS,
    SEED,
    confirm_import,
    count_rows,
    it_user,
    stored_value,
    upload_export,
)

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

NOTE_ONLY = (b"folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,login_totp\r\n"
             b"Social,,note,Instagram recovery,Recovery email: social@acme.example,,0,,,,\r\n"
             b"Social,,note,X backup codes,Codes are in the safe,,0,,,,\r\n"
             b",,login,Intranet,,,0,https://intranet.example.com/login,jdoe,BW-PASS-3,\r\n")


def _forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex(), quote(value)]


def _leaks(haystack: str) -> list[str]:
    return [f"{name}:{form[:12]}" for name, value in CANARIES.items() for form in _forms(value) if form in haystack]


def _confirm_with(client: Any, html: str, content: bytes, fmt: str, **fields: Any) -> Any:
    sha = re.search(r'name="sha256" type="hidden" value="([0-9a-f]{64})"', html).group(1)
    data = {"csrf_token": csrf_from(html), "format": fmt, "sha256": sha, "file": (io.BytesIO(content), "export.csv"), **fields}
    return client.post("/vault/import/confirm", data=data, content_type="multipart/form-data")


def test_it_previews_then_confirms_an_import(app, db, kit, accounts, ring):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    before = count_rows(db)
    preview = upload_export(client, "/vault/import", BITWARDEN, format="bitwarden")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert count_rows(db) == before
    for expected in ("Instagram @acme", "@acme_news on X", "@acme-corp on LinkedIn", "intranet.example.com",
                     "without a handle", "Bitwarden card item"):
        assert expected in html
    for value in ("BW-PASS-1", SEED, "Second line of notes", "Backup PIN"):
        assert value not in html
    done = confirm_import(client, html, BITWARDEN, "bitwarden", create=["linkedin:acme-corp"])
    assert done.status_code == 302
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "vaulted 2 note, 3 password, 1 totp" in result and "1 account(s) created" in result
    assert count_rows(db)[0] == before[0] + 6


def test_confirm_with_another_file_imports_nothing_and_previews_it(app, db, kit, accounts, ring):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    before = count_rows(db)
    response = confirm_import(client, html, BITWARDEN.replace(b"BW-PASS-1", b"BW-PASS-9"), "bitwarden")
    assert response.status_code == 200 and "not the file you previewed" in response.get_data(as_text=True)
    assert count_rows(db) == before


def test_confirm_without_the_file_imports_nothing(app, db, kit, accounts, ring):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    before = count_rows(db)
    response = client.post("/vault/import/confirm", data={"csrf_token": csrf_from(html), "format": "bitwarden", "sha256": "0" * 64})
    assert response.status_code == 302 and count_rows(db) == before


@pytest.mark.parametrize(("content", "fmt", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "bitwarden", "not UTF-8"),
    (b"Title,Password\n\"never closed,x\n", "1password", "quote is not closed"),
    (KEEPASS, "bitwarden", "not a Bitwarden (CSV) export"),
    (b"", "keepass", "Choose the exported CSV file"),
])
def test_bad_uploads_get_a_message_never_a_500(app, db, kit, content, fmt, message):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    if content:
        response = upload_export(client, "/vault/import", content, format=fmt)
    else:
        response = client.post("/vault/import", data={"csrf_token": csrf_token(client, "/vault/import"), "format": fmt})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_a_large_upload_stays_in_memory_and_is_refused_cleanly(app, db, kit):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    big = b"Title,Password\n" + b"entry,value\n" * 600_000  # ~7 MB: over the import limit, under the request limit
    response = upload_export(client, "/vault/import", big, format="1password")
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
    before = count_rows(db)[:3]
    for path in ("/vault/import", "/vault/import/confirm"):
        response = client.post(path, data={"csrf_token": token, "format": "bitwarden", "file": (io.BytesIO(BITWARDEN), "e.csv")},
                               content_type="multipart/form-data")
        assert response.status_code == 403
    assert count_rows(db)[:3] == before


def test_admin_may_import(app, db, kit, accounts, ring):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    assert client.get("/vault/import").status_code == 200


@pytest.mark.parametrize("app_overrides", [{"VAULT_KEYRING_JSON": ""}])
def test_a_sealed_vault_previews_but_refuses_to_import(app, db, kit, accounts, tmp_path, app_overrides):
    assert app.extensions["govern.keyring"] is None
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", BITWARDEN, format="bitwarden").get_data(as_text=True)
    assert "vault is sealed" in html
    before = count_rows(db)
    response = confirm_import(client, html, BITWARDEN, "bitwarden")
    assert response.status_code == 503 and count_rows(db) == before


def test_canary_values_end_up_only_as_ciphertext(app, db, kit, accounts, ring, caplog):
    caplog.set_level(logging.DEBUG)
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    pages = []
    preview = upload_export(client, "/vault/import", CANARY_EXPORT, format="bitwarden")
    pages.append(preview.get_data(as_text=True))
    done = confirm_import(client, pages[0], CANARY_EXPORT, "bitwarden", create=["pinterest:newbrand"])
    assert done.status_code == 302
    pages.append(client.get(done.headers["Location"]).get_data(as_text=True))
    assert "vaulted" in pages[1]
    # The values are in the vault...
    db.expire_all()
    secrets = {s.label: s for s in db.scalars(select(Secret))}
    assert stored_value(db, ring, it, secrets["Instagram @acme"]) == CANARIES["password"]
    assert stored_value(db, ring, it, secrets["Pinterest"]) == CANARIES["password2"]
    assert CANARIES["field"] in stored_value(db, ring, it, secrets["Instagram @acme (notes)"])
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


def test_the_web_import_lets_it_choose_the_account_of_unmatched_entries(app, db, kit, accounts, ring):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", NOTE_ONLY, format="bitwarden").get_data(as_text=True)
    # Nothing matches by itself, and still the preview offers the import, with a choice per entry.
    assert 'id="import-confirm"' in html and 'name="account-2"' in html and 'name="account-3"' in html
    assert 'name="account_all"' in html and '<option value="instagram:acme">@acme on Instagram</option>' in html
    assert "Recovery email" not in html
    before = count_rows(db)
    done = _confirm_with(client, html, NOTE_ONLY, "bitwarden", **{"account-2": "instagram:acme", "account_all": "x:acme_news"})
    assert done.status_code == 302, done.get_data(as_text=True)
    flashed = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "vaulted 2 note, 1 password" in flashed and "3 row(s) went to the account chosen for them" in flashed
    db.expire_all()
    assert count_rows(db)[0] == before[0] + 3
    labels = {(s.account_id, s.label) for s in db.scalars(select(Secret))}
    assert (accounts["instagram"].id, "Instagram recovery (notes)") in labels
    assert {(accounts["x"].id, "X backup codes (notes)"), (accounts["x"].id, "Intranet")} <= labels
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.imported")).one()
    assert json.loads(event.details_json)["rows_assigned"] == 3 and "Recovery email" not in event.details_json


@pytest.mark.parametrize("fields", [{"account-2": "instagram:nobody"}, {"account_all": "tiktok:ghost"}])
def test_an_unknown_chosen_account_imports_nothing(app, db, kit, accounts, ring, fields):
    it = it_user(db, kit)
    client = app.test_client()
    login(client, db, it)
    html = upload_export(client, "/vault/import", NOTE_ONLY, format="bitwarden").get_data(as_text=True)
    before = count_rows(db)
    response = _confirm_with(client, html, NOTE_ONLY, "bitwarden", **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "no account" in page and "Nothing was imported" in page
    assert count_rows(db) == before
