"""Checklist 36: no secret reaches a log line, an audit event, a stored session or an error page.

Distinctive canary values go through the whole flow (invite, setup, enrolment, failed and good
sign-ins, a recovery code, a password change, a crash); then every place they could leak is
searched for them, raw and encoded.
"""

from __future__ import annotations

import base64
import logging
import re
from urllib.parse import quote_plus

import pyotp
from sqlalchemy import select, update

from govern.audit.models import AuditEvent
from govern.auth.models import User, WebSession
from govern.logs import JsonFormatter
from tests.factories import csrf_from, csrf_token, login, make_user, post

CANARY_PASSWORD = "canary Pw0rd lantern quietly 7f3a"
CANARY_NEW_PASSWORD = "canary second Pw0rd harbour 9b1c"
CANARY_TYPO = "canary typo Pw0rd velvet 4d2e"


def _forms(value: str) -> set[str]:
    """The value and the encodings a leak might wear."""
    raw = value.encode()
    return {value, quote_plus(value), base64.b64encode(raw).decode(), raw.hex()}


def test_no_secret_reaches_logs_audit_sessions_or_error_pages(app, db, kit, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    admin = make_user(db, kit, roles=("admin",))
    admin_client = app.test_client()
    login(admin_client, db, admin)
    html = post(admin_client, "/admin/users/new", {"email": "canary@example.com", "full_name": "Cana Ry", "roles": ["it"]},
                token_page="/admin/users/new", follow_redirects=True).get_data(as_text=True)
    setup_secret = re.search(r'<code id="setup-secret">([^<]+)</code>', html).group(1)

    newcomer = app.test_client()
    page = newcomer.get("/setup")
    newcomer.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": setup_secret})
    page = newcomer.get("/setup/password")
    newcomer.post("/setup/password", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                           "password": CANARY_PASSWORD, "confirm": CANARY_PASSWORD})
    page = newcomer.get("/setup/authenticator").get_data(as_text=True)
    seed = re.search(r'id="totp-key">([^<]+)</code>', page).group(1).replace(" ", "")
    enrol_code = pyotp.TOTP(seed).now()
    done = newcomer.post("/setup/authenticator", data={"csrf_token": csrf_from(page), "code": enrol_code},
                         follow_redirects=True)
    recovery_codes = re.findall(r"<li><code>([A-Z0-9-]+)</code></li>", done.get_data(as_text=True))
    assert len(recovery_codes) == 10
    session_token = newcomer.get_cookie("govern_session").value

    # A typo'd password, a password typed into the email field, a wrong code, then a recovery code.
    other = app.test_client()
    token = csrf_token(other, "/login")
    other.post("/login", data={"csrf_token": token, "email": "canary@example.com", "password": CANARY_TYPO})
    other.post("/login", data={"csrf_token": token, "email": CANARY_TYPO, "password": CANARY_TYPO})
    other.post("/login", data={"csrf_token": token, "email": "canary@example.com", "password": CANARY_PASSWORD})
    page = other.get("/login/code").get_data(as_text=True)
    other.post("/login/code", data={"csrf_token": csrf_from(page), "code": "000000"})
    other.post("/login/code", data={"csrf_token": csrf_from(page), "code": recovery_codes[0]})
    # Forget the enrolment's step, so a code of this same 30 seconds is not a replay.
    db.execute(update(User).where(User.email == "canary@example.com").values(last_totp_step=0))
    db.commit()
    post(other, "/account/password", {"current_password": CANARY_PASSWORD, "code": pyotp.TOTP(seed).now(),
                                      "new_password": CANARY_NEW_PASSWORD, "confirm": CANARY_NEW_PASSWORD})

    # A crash while the password is in hand: the page and the log line must not carry it.
    import govern.auth.login as auth_login

    def crash(*_args, **kwargs):
        raise RuntimeError(f"boom with {kwargs.get('password')}")

    monkeypatch.setattr(auth_login, "check_password_login", crash)
    crashed = app.test_client()
    token = csrf_token(crashed, "/login")
    error_page = crashed.post("/login", data={"csrf_token": token, "email": "canary@example.com", "password": CANARY_PASSWORD})
    assert error_page.status_code == 500

    secrets_used = [CANARY_PASSWORD, CANARY_NEW_PASSWORD, CANARY_TYPO, seed, setup_secret, session_token,
                    *recovery_codes, recovery_codes[0].replace("-", "")]
    formatter = JsonFormatter()
    log_text = "\n".join(formatter.format(record) for record in caplog.records)
    db.expire_all()
    audit_text = "\n".join(" ".join(str(v) for v in row) for row in db.execute(select(AuditEvent.__table__)).all())
    sessions_text = "\n".join(" ".join(str(v) for v in row) for row in db.execute(select(WebSession.__table__)).all())
    places = {"logs": log_text, "audit trail": audit_text, "stored sessions": sessions_text,
              "500 page": error_page.get_data(as_text=True)}
    assert len(caplog.records) > 0
    actions = set(db.scalars(select(AuditEvent.action)))
    # The flow really went through every step that handles a secret.
    assert {"auth.password.set", "auth.mfa.enrolled", "auth.login.password_failed", "auth.login.mfa_failed",
            "auth.recovery_code.used", "auth.password.changed"} <= actions, actions
    for where, text in places.items():
        for secret in secrets_used:
            for form in _forms(secret):
                assert form not in text, f"a secret ({secret[:6]}…) leaked into the {where}"
    # TOTP codes are six digits and may appear by chance in ids or hashes; look for them as values.
    assert f'"{enrol_code}"' not in audit_text + log_text
