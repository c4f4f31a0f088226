"""Passkeys (WebAuthn) through the real pages, answered by a software authenticator (tests/auth/softkey.py):
registering, signing in, stepping up, removing; every refusal the specification asks for; the policy that
makes a role use a passkey. The browser test (tests/browser/test_passkeys.py) does the same in Chromium."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth import passkeys
from govern.auth import users as auth_users
from govern.auth.models import Passkey, WebSession
from govern.db import utcnow
from govern.notifications.models import Notification
from tests.auth.softkey import SoftKey
from tests.factories import csrf_from, fresh_code, login, make_user, post, signed_in

OPTIONS_RE = re.compile(r'data-options="([^"]*)"')


def _options(page_html: str) -> str:
    match = OPTIONS_RE.search(page_html)
    assert match, "no passkey options on the page"
    return html.unescape(match.group(1))


def _register(client: Any, key: SoftKey, name: str = "Laptop", **bend: Any) -> Any:
    page = client.get("/account/passkeys/new")
    assert page.status_code == 200, page.status_code
    text = page.get_data(as_text=True)
    return client.post("/account/passkeys/new", data={"csrf_token": csrf_from(text), "name": name,
                                                       "credential": key.register(_options(text), **bend)})


def _password(client: Any, who: Any) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "email": who.email,
                                           "password": who.password})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/code")


def _passkey_sign_in(client: Any, key: SoftKey, **bend: Any) -> Any:
    text = client.get("/login/code").get_data(as_text=True)
    return client.post("/login/passkey", data={"csrf_token": csrf_from(text), "credential": key.answer(_options(text), **bend)})


def _actions(db: Any) -> list[str]:
    return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def _stale_mfa(db: Any, who: Any) -> None:
    for row in db.scalars(select(WebSession).where(WebSession.user_id == who.id)):
        row.mfa_verified_at = utcnow().replace(year=2020)
    db.commit()


def test_register_then_sign_in_with_password_and_passkey(app, db, kit):
    who, client = signed_in(app, db, kit)
    key = SoftKey()
    response = _register(client, key, name="  Work   laptop ")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/passkeys/")
    stored = db.scalars(select(Passkey).where(Passkey.user_id == who.id)).one()
    assert stored.name == "Work laptop" and stored.credential_id == key.credential_id and not stored.backup_eligible
    listing = client.get("/account/passkeys/").get_data(as_text=True)
    assert "Work laptop" in listing and "on one device" in listing
    registered = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.passkey.registered")).one()
    assert registered.actor_user_id == who.id and "public" not in registered.details_json

    other = app.test_client()
    _password(other, who)
    page = other.get("/login/code").get_data(as_text=True)
    assert "Sign in with a passkey" in page and "authenticator app" in page  # TOTP stays possible
    response = _passkey_sign_in(other, key)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Welcome" in other.get("/").get_data(as_text=True)
    used = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.passkey.used")).one()
    assert json.loads(used.details_json)["purpose"] == "login"
    db.refresh(stored)
    assert stored.sign_count == key.sign_count and stored.last_used_at is not None


def test_a_replayed_answer_and_an_answer_to_another_request_are_refused(app, db, kit):
    who, client = signed_in(app, db, kit)
    key = SoftKey()
    _register(client, key)
    other = app.test_client()
    _password(other, who)
    text = other.get("/login/code").get_data(as_text=True)
    answer = key.answer(_options(text))
    assert other.post("/login/passkey", data={"csrf_token": csrf_from(text), "credential": answer}).headers["Location"] == "/"
    # The same answer again, on a new sign-in: its challenge was used once and is gone.
    third = app.test_client()
    _password(third, who)
    text = third.get("/login/code").get_data(as_text=True)
    response = third.post("/login/passkey", data={"csrf_token": csrf_from(text), "credential": answer})
    assert response.headers["Location"].endswith("/login/code")
    assert third.get("/").status_code == 302  # not signed in
    refused = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.passkey.refused")).all()
    assert refused and json.loads(refused[-1].details_json)["reason"] == "it answered another request"


def test_answers_made_for_another_site_are_refused(app, db, kit):
    who, client = signed_in(app, db, kit)
    key = SoftKey()
    # Registration on a look-alike origin, or for another RP id: refused, nothing stored.
    assert _register(client, SoftKey(), origin="http://localhost.evil.example").status_code == 200
    assert _register(client, SoftKey(), rp_id="evil.example").status_code == 200
    assert db.scalars(select(Passkey)).all() == []
    assert _register(client, key).status_code == 302
    for bend in ({"origin": "https://govern.evil.example"}, {"rp_id": "evil.example"}):
        other = app.test_client()
        _password(other, who)
        response = _passkey_sign_in(other, key, **bend)
        assert response.headers["Location"].endswith("/login/code"), bend
        assert other.get("/").status_code == 302
    reasons = [json.loads(e.details_json)["reason"] for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.passkey.refused"))]
    assert reasons == ["it was made for another site", "it belongs to another site",
                       "it was made for another site", "it belongs to another site"]


def test_user_verification_is_required(app, db, kit):
    who, client = signed_in(app, db, kit)
    assert _register(client, SoftKey(), uv=False).status_code == 200  # no PIN or biometric: not registered
    key = SoftKey()
    assert _register(client, key).status_code == 302
    other = app.test_client()
    _password(other, who)
    assert _passkey_sign_in(other, key, uv=False).headers["Location"].endswith("/login/code")
    # Step-up too.
    _stale_mfa(db, who)
    text = client.get("/reauth?next=/account/passkeys/new").get_data(as_text=True)
    response = client.post("/reauth/passkey", data={"csrf_token": csrf_from(text), "next": "/account/passkeys/new",
                                                    "credential": key.answer(_options(text), uv=False)})
    assert "/reauth" in response.headers["Location"]
    assert client.get("/account/passkeys/new").status_code == 302  # still not fresh


def test_a_counter_that_goes_back_is_refused_and_told(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    who, client = signed_in(app, db, kit)
    key = SoftKey()
    _register(client, key)
    other = app.test_client()
    _password(other, who)
    assert _passkey_sign_in(other, key, count=7).headers["Location"] == "/"
    again = app.test_client()
    _password(again, who)
    assert _passkey_sign_in(again, key, count=7).headers["Location"].endswith("/login/code")  # not above 7
    assert again.get("/").status_code == 302
    told = {n.user_id for n in db.scalars(select(Notification).where(Notification.kind == "security"))}
    assert {admin.id, who.id} <= told
    # An authenticator that never counts (always 0) is fine.
    lazy = SoftKey(counts=False)
    _register(client, lazy, name="No counter")
    for _ in range(2):
        c = app.test_client()
        _password(c, who)
        assert _passkey_sign_in(c, lazy).headers["Location"] == "/"


def test_the_backup_eligible_flag_cannot_change_and_backup_state_is_kept(app, db, kit):
    who, client = signed_in(app, db, kit)
    key = SoftKey(synced=True)
    _register(client, key)
    stored = db.scalars(select(Passkey)).one()
    assert stored.backup_eligible and stored.backup_state
    assert "synced passkey" in client.get("/account/passkeys/").get_data(as_text=True)
    other = app.test_client()
    _password(other, who)
    assert _passkey_sign_in(other, key, synced=False).headers["Location"].endswith("/login/code")
    reasons = [json.loads(e.details_json)["reason"] for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.passkey.refused"))]
    assert reasons == ["its backup eligibility changed"]


def test_another_users_passkey_does_not_sign_you_in(app, db, kit):
    mallory, mallory_client = signed_in(app, db, kit)
    key = SoftKey()
    _register(mallory_client, key)
    victim = make_user(db, kit)
    db.commit()
    client = app.test_client()
    _password(client, victim)
    # The victim has no passkey: no options are offered, and a forged answer with Mallory's key is refused.
    text = client.get("/login/code").get_data(as_text=True)
    assert "data-options" not in text
    response = client.post("/login/passkey", data={"csrf_token": csrf_from(text),
                                                   "credential": key.answer({"challenge": "AAAA"})})
    assert response.headers["Location"].endswith("/login/code") and client.get("/").status_code == 302


def test_step_up_with_a_passkey_then_remove_it(app, db, kit):
    who, client = signed_in(app, db, kit)
    key = SoftKey()
    _register(client, key)
    _stale_mfa(db, who)
    passkey_id = db.scalars(select(Passkey.id)).one()
    assert post(client, f"/account/passkeys/{passkey_id}/remove").status_code == 401  # needs a fresh factor
    assert "Remove" not in client.get("/account/passkeys/").get_data(as_text=True).split("<h1>")[1].split("Add a passkey")[0].replace("remove a passkey", "")
    text = client.get("/reauth?next=/account/passkeys/").get_data(as_text=True)
    assert "Confirm with a passkey" in text
    response = client.post("/reauth/passkey", data={"csrf_token": csrf_from(text), "next": "/account/passkeys/",
                                                    "credential": key.answer(_options(text))})
    assert response.headers["Location"] == "/account/passkeys/"
    assert post(client, f"/account/passkeys/{passkey_id}/rename", {"name": "Old laptop"}).status_code == 302
    assert post(client, f"/account/passkeys/{passkey_id}/remove").status_code == 302
    assert db.scalars(select(Passkey)).all() == []
    assert [a for a in _actions(db) if a.startswith("auth.passkey")] == [
        "auth.passkey.registered", "auth.passkey.used", "auth.passkey.renamed", "auth.passkey.removed"]


def test_nobody_manages_another_users_passkeys(app, db, kit):
    owner, owner_client = signed_in(app, db, kit)
    _register(owner_client, SoftKey())
    passkey_id = db.scalars(select(Passkey.id)).one()
    _, client = signed_in(app, db, kit, "admin")
    assert post(client, f"/account/passkeys/{passkey_id}/rename", {"name": "mine now"}).status_code == 302
    assert post(client, f"/account/passkeys/{passkey_id}/remove").status_code == 302
    kept = db.scalars(select(Passkey)).one()
    assert kept.name == "Laptop"


def test_a_role_that_must_use_a_passkey(app, db, kit):
    admin, admin_client = signed_in(app, db, kit, "admin")
    page = admin_client.get("/admin/users/passkey-policy")
    assert page.status_code == 200
    response = admin_client.post("/admin/users/passkey-policy", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                                     "roles": ["it", "admin"]})
    assert response.status_code == 302
    assert passkeys.policy_roles(db) == {"it", "admin"}
    changed = db.scalars(select(AuditEvent).where(AuditEvent.action == "auth.factor_policy.changed")).one()
    assert json.loads(changed.details_json)["passkey_roles"] == ["admin", "it"]

    # An IT user without a passkey signs in with TOTP, and may do nothing but register one.
    it = make_user(db, kit, roles=("it",))
    db.commit()
    client = app.test_client()
    response = login(client, db, it)
    assert response.headers["Location"].endswith("/account/passkeys/new")
    assert client.get("/").headers["Location"].endswith("/account/passkeys/new")
    assert post(client, "/account/time-zone", {"time_zone": "UTC"}, token_page="/account/passkeys/new").status_code == 403
    key = SoftKey()
    assert _register(client, key).status_code == 302
    assert client.get("/").status_code == 200

    # With a passkey, the TOTP code (and a recovery code) is refused at sign-in and at step-up.
    other = app.test_client()
    _password(other, it)
    text = other.get("/login/code").get_data(as_text=True)
    assert "must sign in with a passkey" in text and 'name="code"' not in text
    response = other.post("/login/code", data={"csrf_token": csrf_from(text), "code": fresh_code(db, it)})
    assert response.status_code == 200 and other.get("/").status_code == 302
    assert _passkey_sign_in(other, key).headers["Location"] == "/"
    _stale_mfa(db, it)
    text = other.get("/reauth").get_data(as_text=True)
    response = other.post("/reauth", data={"csrf_token": csrf_from(text), "code": fresh_code(db, it)})
    assert response.status_code == 200

    # Staff are not in the policy: TOTP as before.
    staff = make_user(db, kit)
    db.commit()
    assert login(app.test_client(), db, staff).headers["Location"] == "/"


def test_resetting_a_users_authenticator_removes_their_passkeys(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    who, client = signed_in(app, db, kit)
    _register(client, SoftKey())
    auth_users.reset_mfa(db, kit, actor=admin.user, user=who.user)
    db.commit()
    assert db.scalars(select(Passkey)).all() == []
    reset = db.scalars(select(AuditEvent).where(AuditEvent.action == "users.mfa_reset")).one()
    assert json.loads(reset.details_json)["passkeys_removed"] == 1


def test_the_relying_party_comes_from_the_configuration_never_the_host_header(app, db, kit):
    assert passkeys.relying_party({"BASE_URL": "https://govern.example.com/"}) == \
        passkeys.RelyingParty(rp_id="govern.example.com", origin="https://govern.example.com")
    assert passkeys.relying_party({"BASE_URL": "https://govern.example.com", "WEBAUTHN_RP_ID": "example.com"}).rp_id == \
        "example.com"
    _, client = signed_in(app, db, kit)
    text = client.get("/account/passkeys/new", headers={"X-Forwarded-Host": "evil.example",
                                                      "Origin": "https://evil.example"}).get_data(as_text=True)
    assert '"id": "localhost"' in _options(text)


def test_bad_answers_are_clear_errors_and_change_nothing(app, db, kit):
    _, client = signed_in(app, db, kit)
    for junk in ("", "not json", "[]", '{"rawId": 5}', "x" * 70_000):
        text = client.get("/account/passkeys/new").get_data(as_text=True)
        response = client.post("/account/passkeys/new", data={"csrf_token": csrf_from(text), "name": "Key", "credential": junk})
        assert response.status_code == 200, junk[:20]
    assert db.scalars(select(Passkey)).all() == []
