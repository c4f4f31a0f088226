"""The canary test: a full vault workflow with distinctive values; afterwards no canary appears in the
database (except encrypted), in any log record, audit event, error page, or page other than the
reveal response that showed it."""

from __future__ import annotations

import logging
from urllib.parse import quote

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.vault import services
from govern.vault.models import Secret
from tests.factories import login, post
from tests.vault.test_barrier import all_stored_values, encodings

CANARY = {
    "password": "Cnry-Password-e41f6a2b",
    "password2": "Cnry-Changed-77d03c91",
    "api_token": "cnry_api_token_0b9a8c7d",
    "note": "Cnry note: safe code 3141-5926",
    "totp": "MNXGC4TZEBZWKZLEEBTG64RAORSXG5DT",  # base32 of "canary seed for tests"
    "code1": "cnry-rc-aaaa-1111",
    "code2": "cnry-rc-bbbb-2222",
}


def _forms(text: str) -> list[str]:
    return [text, quote(text), quote(text, safe=""), *(f.decode() for f in encodings(text))]


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

    # Rotate the keys and rewrap everything.
    new_ring = services.rotate_keyring(ring)
    with app.test_request_context():
        services.record_rotation(db, old_primary=ring.primary_id, keyring=new_ring)
        services.rewrap_batch(db, new_ring, batch_size=100)
    db.commit()

    admin = app.test_client()
    login(admin, db, world.admin)
    for label, client, path in [
        ("vault index", publisher, "/vault/"), ("account page", admin, f"/accounts/{account}"),
        ("person page", admin, f"/people/{world.publisher.user.person_id}"), ("audit page", admin, "/audit/"),
        ("404", publisher, "/vault/secrets/999999"), ("denied", admin, f"/vault/secrets/{ids['password']}/reveal"),
        *((f"secret page {k}", it, f"/vault/secrets/{i}") for k, i in ids.items()),
    ]:
        keep(label, client.get(path))

    revealed_somewhere = set()
    for name, text in CANARY.items():
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
    assert {"password", "password2", "api_token", "note", "totp", "code1", "code2"} <= revealed_somewhere
