"""The canary test: a full vault workflow with distinctive values (create each kind, reveal, change,
import from a password manager, rotate a password through a rotation task, rotate and rewrap the
keys); afterwards no canary appears in the database (except encrypted), in any log record, audit
event, error page, or page other than the reveal response that showed it."""

from __future__ import annotations

import logging
import re
from html import escape, unescape
from urllib.parse import quote

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.rotation.models import RotationTask
from govern.vault.keys import record_rotation, rewrap_batch, rotate_keyring
from govern.vault.models import Secret, SecretVersion
from tests.factories import login, post
from tests.vault.helpers import all_stored_values, confirm_import, encodings, upload_export

CANARY = {
    "password": "Cnry-Password-e41f6a2b",
    "password2": "Cnry-Changed-77d03c91",
    "api_token": "cnry_api_token_0b9a8c7d",
    "note": "Cnry note: safe code 3141-5926",
    "totp": "MNXGC4TZEBZWKZLEEBTG64RAORSXG5DT",  # base32 of "canary seed for tests"
    "code1": "cnry-rc-aaaa-1111",
    "code2": "cnry-rc-bbbb-2222",
    "imported": "Cnry-Imported-5c1e08aa",
    "imported_token": "cnry_imported_tok_9f2d",
    "rotated": "Cnry-Rotated-3a6b19e4",
}


def _forms(text: str) -> list[str]:
    # A page carries a value HTML-escaped (a generated password may hold & < > " ').
    return [text, escape(text), escape(text, quote=False), quote(text), quote(text, safe=""),
            *(f.decode() for f in encodings(text))]


def test_canaries_only_ever_appear_on_the_reveal_page_that_asked(app, db, world, ring, caplog):
    caplog.set_level(logging.DEBUG)
    pages: list[tuple[str, str, bool]] = []  # (what, html, is the reveal response that asked for it)

    def keep(label: str, response, reveal: bool = False) -> None:
        pages.append((label, response.get_data(as_text=True), reveal))

    it = app.test_client()
    login(it, db, world.it)
    account = world.account.id
    for kind, value, field in [("password", CANARY["password"], "value"), ("api_token", CANARY["api_token"], "value"),
                               ("note", CANARY["note"], "value_lines"), ("totp", CANARY["totp"], "value"),
                               ("recovery_codes", f"{CANARY['code1']}\n{CANARY['code2']}", "value_lines")]:
        response = post(it, f"/vault/accounts/{account}/new", {"kind": kind, "label": f"Canary {kind}", field: value})
        assert response.status_code == 302, response.get_data(as_text=True)
        keep(f"create {kind}", response)
    # A failed form (duplicate name, bad url) and error pages never echo the value.
    keep("bad form", post(it, f"/vault/accounts/{account}/new", {"kind": "password", "label": "Canary password",
                                                                 "value": CANARY["password"], "url": "nope"}))
    keep("bad totp", post(it, f"/vault/accounts/{account}/new", {"kind": "totp", "label": "x", "value": CANARY["totp"] + "!"}))
    ids = {s.kind: s.id for s in db.scalars(select(Secret).where(Secret.account_id == account))}

    publisher = app.test_client()
    login(publisher, db, world.publisher)
    for kind in ("password", "api_token", "note", "recovery_codes", "totp"):
        keep(f"reveal form {kind}", publisher.get(f"/vault/secrets/{ids[kind]}/reveal"))
        keep(f"reveal {kind}", post(publisher, f"/vault/secrets/{ids[kind]}/reveal", {"reason": "canary run"}), reveal=kind != "totp")
    keep("mark used", post(publisher, f"/vault/secrets/{ids['recovery_codes']}/codes/1/used", {}))
    keep("seed", post(it, f"/vault/secrets/{ids['totp']}/seed", {"reason": "new phone"}), reveal=True)
    keep("change", post(it, f"/vault/secrets/{ids['password']}/change", {"value": CANARY["password2"]}))
    keep("reveal changed", post(publisher, f"/vault/secrets/{ids['password']}/reveal", {"reason": "again"}), reveal=True)

    # Import from a password manager export (generic CSV): preview, then confirm.
    handle = world.account.handle
    export = (f"account,platform,kind,label,login,value,expires_at\n"
              f"@{handle},instagram,password,Imported login,,{CANARY['imported']},\n"
              f"@{handle},instagram,api_token,Imported token,,{CANARY['imported_token']},\n").encode()
    preview = upload_export(it, "/vault/import", export, format="generic")
    assert preview.status_code == 200, preview.get_data(as_text=True)
    keep("import preview", preview)
    done = confirm_import(it, preview.get_data(as_text=True), export, "generic")
    assert done.status_code == 302, done.get_data(as_text=True)
    keep("import result", it.get(done.headers["Location"]))
    imported = {s.label: s.id for s in db.scalars(select(Secret).where(Secret.label.in_(("Imported login", "Imported token"))))}
    assert len(imported) == 2

    # Rotate the password through a rotation task opened from its vault page: typed value, staged,
    # shown again to IT (a reveal response), confirmed.
    keep("secret page with rotation", it.get(f"/vault/secrets/{ids['password']}"))
    opened = post(it, f"/rotation/secrets/{ids['password']}/rotate", {"note": "canary run", "from": "vault"})
    task_path = opened.headers["Location"]
    task = db.scalars(select(RotationTask).where(RotationTask.secret_id == ids["password"])).one()
    staged = post(it, f"/rotation/tasks/{task.id}/stage", {"mode": "typed", "value": CANARY["rotated"]})
    assert staged.status_code == 302, staged.get_data(as_text=True)
    keep("task staged", it.get(task_path))
    keep("show staged", post(it, f"/rotation/tasks/{task.id}/staged", {}), reveal=True)
    keep("confirm", post(it, f"/rotation/tasks/{task.id}/confirm", {"checklist": ["changed", "sessions"]}))
    keep("task done", it.get(task_path))
    # The imported password rotates with a generated value, shown once on the stage response.
    opened = post(it, f"/rotation/secrets/{imported['Imported login']}/rotate", {"note": "imported, rotate"})
    generated_post = post(it, opened.headers["Location"].removesuffix("/") + "/stage", {"mode": "generate"})
    assert generated_post.status_code == 303
    generated_page = it.get(generated_post.headers["Location"])
    keep("stage generated", generated_page, reveal=True)
    found = re.search(r'id="generated-value">([^<]+)<', generated_page.get_data(as_text=True))
    assert found, "the stage response shows the generated password once"
    canaries = {**CANARY, "generated": unescape(found.group(1))}
    second = db.scalars(select(RotationTask).where(RotationTask.secret_id == imported["Imported login"])).one()
    keep("confirm generated", post(it, f"/rotation/tasks/{second.id}/confirm", {"checklist": ["changed", "sessions"]}))
    db.expire_all()
    assert db.get(RotationTask, task.id).status == "done" and db.get(RotationTask, second.id).status == "done"
    assert db.scalar(select(SecretVersion.status).where(SecretVersion.secret_id == ids["password"],
                                                        SecretVersion.version == 3)) == "current"
    keep("reveal rotated", post(publisher, f"/vault/secrets/{ids['password']}/reveal", {"reason": "after rotation"}), reveal=True)

    # Rotate the keys and rewrap everything.
    new_ring = rotate_keyring(ring)
    with app.test_request_context():
        record_rotation(db, old_primary=ring.primary_id, keyring=new_ring)
        rewrap_batch(db, new_ring, batch_size=100)
    db.commit()

    admin = app.test_client()
    login(admin, db, world.admin)
    for label, client, path in [
        ("vault index", publisher, "/vault/"), ("account page", admin, f"/accounts/{account}"),
        ("person page", admin, f"/people/{world.publisher.user.person_id}"), ("audit page", admin, "/audit/"),
        ("404", publisher, "/vault/secrets/999999"), ("denied", admin, f"/vault/secrets/{ids['password']}/reveal"),
        *((f"secret page {k}", it, f"/vault/secrets/{i}") for k, i in ids.items()),
        *((f"imported page {k}", it, f"/vault/secrets/{i}") for k, i in imported.items()),
        ("rotation dashboard", it, "/rotation/"), ("rotation list", it, "/rotation/secrets"),
        ("task page", it, task_path), ("import page", it, "/vault/import"), ("notifications", it, "/notifications/"),
        ("jobs page", admin, "/jobs/"),
    ]:
        keep(label, client.get(path))

    revealed_somewhere = set()
    for name, text in canaries.items():
        for form in _forms(text):
            for label, html, is_reveal in pages:
                if form in html:
                    assert is_reveal, f"canary {name} appears on {label!r}"
                    revealed_somewhere.add(name)
            for record in caplog.records:
                assert form not in record.getMessage() and form not in str(record.args), f"canary {name} in a log record"
            for event in db.scalars(select(AuditEvent)):
                assert form not in event.details_json and form not in (event.target_id or ""), f"canary {name} in audit"
        for form in encodings(text):
            hits = [column for column, value in all_stored_values(db) if form in value]
            assert hits == [], f"canary {name} stored in {hits}"
    # The reveal pages did show what they were asked for (the test can fail).
    assert {"password", "password2", "api_token", "note", "totp", "code1", "code2", "rotated", "generated"} <= revealed_somewhere
