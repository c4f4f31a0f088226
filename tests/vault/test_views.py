"""Vault pages: IT adds, holders reveal after a reason and a fresh second factor, everyone else is
refused (and audited), other accounts' ids are 404, a sealed vault answers 503, tampering is no 500."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from govern.audit.models import AuditEvent
from govern.auth.models import WebSession
from govern.db import utcnow
from govern.vault.access import REVEAL_VISIBLE_SECONDS, reveal
from govern.vault.listing import versions_of
from govern.vault.models import Exposure, Secret, SecretVersion
from govern.vault.versions import create_secret
from tests.factories import login, make_account, make_user, post

PASSWORD = "Canary-Pw-81f2c7e9"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def secrets_(app, db, world, ring):
    with app.test_request_context():
        password = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password",
                                 label="Instagram login", value=PASSWORD, login="social@acme.example")
        totp = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="totp",
                             label="Instagram 2FA", value=SEED)
        codes = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="recovery_codes",
                              label="Backup codes", value=["code-aaaa-1111", "code-bbbb-2222"])
        other = create_secret(db, actor=world.it.user, keyring=ring, account=world.other_account, kind="password",
                              label="Other login", value="Other-Canary-77aa")
    db.commit()
    return type("Secrets", (), {"password": password, "totp": totp, "codes": codes, "other": other})


def _client(app, db, who):
    client = app.test_client()
    login(client, db, who)
    return client


def _stale_mfa(db, who):
    db.execute(update(WebSession).where(WebSession.user_id == who.id).values(mfa_verified_at=utcnow() - timedelta(minutes=6)))
    db.commit()


def _reveal(client, secret_id, reason="post the launch", path="reveal"):
    return post(client, f"/vault/secrets/{secret_id}/{path}", {"reason": reason}, token_page="/account")


def test_publisher_reveals_a_password_with_a_reason(app, db, world, secrets_):
    client = _client(app, db, world.publisher)
    form = client.get(f"/vault/secrets/{secrets_.password.id}/reveal")
    assert form.status_code == 200 and "Why do you need it?" in form.get_data(as_text=True)
    assert PASSWORD not in form.get_data(as_text=True)
    response = _reveal(client, secrets_.password.id)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and PASSWORD in page and "data-hide-after=\"30\"" in page
    assert response.headers["Cache-Control"] == "no-store"
    exposure = db.scalars(select(Exposure).where(Exposure.user_id == world.publisher.id)).one()
    assert exposure.reason == "post the launch" and exposure.kind == "value"
    # The secret page lists the exposure, not the value.
    detail = client.get(f"/vault/secrets/{secrets_.password.id}").get_data(as_text=True)
    assert "post the launch" in detail and PASSWORD not in detail


def test_publisher_sees_the_live_code_never_the_seed(app, db, world, secrets_):
    client = _client(app, db, world.publisher)
    page = _reveal(client, secrets_.totp.id, "sign in on the office phone").get_data(as_text=True)
    assert "data-totp" in page and SEED not in page and SEED.lower() not in page
    assert client.get(f"/vault/secrets/{secrets_.totp.id}/seed").status_code == 403  # vault.reveal_seed: IT/admin only


def test_it_reveals_the_seed_as_a_separate_action(app, db, world, secrets_):
    client = _client(app, db, world.it)
    page = _reveal(client, secrets_.totp.id, "enrol the new phone", path="seed").get_data(as_text=True)
    assert SEED in page
    assert db.scalars(select(Exposure.kind).where(Exposure.user_id == world.it.id, Exposure.reason == "enrol the new phone")).one() == "totp_seed"


def test_stale_second_factor_asks_for_step_up_first(app, db, world, secrets_):
    client = _client(app, db, world.publisher)
    _stale_mfa(db, world.publisher)
    response = client.get(f"/vault/secrets/{secrets_.password.id}/reveal")
    assert response.status_code == 302 and "/reauth?next=/vault/secrets/" in response.headers["Location"]
    response = _reveal(client, secrets_.password.id)
    assert response.status_code == 302 and "/reauth" in response.headers["Location"]
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == world.publisher.id)) == 0
    assert db.scalars(select(AuditEvent.details_json).where(AuditEvent.action == "vault.reveal_denied")).all()[-1].count("not fresh")


def test_reason_is_required(app, db, world, secrets_):
    client = _client(app, db, world.publisher)
    response = _reveal(client, secrets_.password.id, reason="")
    assert response.status_code == 200 and "Say why" in response.get_data(as_text=True)
    assert PASSWORD not in response.get_data(as_text=True)


@pytest.mark.parametrize("who", ["admin", "auditor", "manager", "analyst"])
def test_visible_but_not_allowed_is_403_and_audited(app, db, world, secrets_, who):
    client = _client(app, db, getattr(world, who))
    assert client.get(f"/vault/secrets/{secrets_.password.id}").status_code == 200 or who == "analyst"
    response = _reveal(client, secrets_.password.id)
    assert response.status_code in (403, 404) and PASSWORD not in response.get_data(as_text=True)
    assert db.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc())).first() == "vault.reveal_denied"


def _without_csrf(body: bytes) -> bytes:
    return re.sub(rb'name="csrf_token" value="[^"]*"', b'name="csrf_token" value=""', body)


def test_ids_of_another_accounts_secrets_are_404_like_missing_ones(app, db, world, secrets_):
    client = _client(app, db, world.publisher)
    # Also where the app role alone refuses (edit, change, the seed): the refusal does not say it exists.
    for path in ("", "/reveal", "/edit", "/change", "/seed"):
        other = client.get(f"/vault/secrets/{secrets_.other.id}{path}")
        missing = client.get(f"/vault/secrets/999999{path}")
        # The sign-out form's CSRF token carries a timestamp, so it may differ between requests.
        assert other.status_code == missing.status_code == 404, path
        assert _without_csrf(other.get_data()) == _without_csrf(missing.get_data()), path
    response = post(client, f"/vault/secrets/{secrets_.other.id}/codes/1/used", {})
    assert response.status_code == 404
    response = _reveal(client, secrets_.other.id)
    assert response.status_code == 404 and "Other-Canary-77aa" not in response.get_data(as_text=True)
    denied = db.scalars(select(AuditEvent).where(AuditEvent.actor_user_id == world.publisher.id,
                                                 AuditEvent.outcome == "denied", AuditEvent.target_type == "secret")).all()
    assert denied and {e.target_id for e in denied} == {str(secrets_.other.id)}
    assert client.get("/vault/").get_data(as_text=True).count("Other login") == 0


ENDPOINTS = [
    ("GET", "/vault/", None),
    ("GET", "/vault/secrets/{password}", None),
    ("GET", "/vault/accounts/{account}/new", None),
    ("GET", "/vault/secrets/{password}/edit", None),
    ("GET", "/vault/secrets/{password}/change", None),
    ("GET", "/vault/secrets/{password}/reveal", None),
    ("POST", "/vault/secrets/{password}/reveal", {"reason": "r"}),
    ("GET", "/vault/secrets/{totp}/seed", None),
    ("POST", "/vault/secrets/{totp}/seed", {"reason": "r"}),
    ("POST", "/vault/secrets/{codes}/codes/1/used", {}),
]
#: role -> expected status per endpoint (same order as ENDPOINTS).
EXPECTED = {
    "it":        [200, 200, 200, 200, 200, 200, 200, 200, 200, 302],
    "admin":     [200, 200, 200, 200, 200, 403, 403, 403, 403, 403],
    "auditor":   [200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
    "manager":   [200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
    "publisher": [200, 200, 403, 403, 403, 200, 200, 403, 403, 302],
    "analyst":   [200, 404, 403, 404, 404, 404, 404, 404, 404, 404],
    "stranger":  [200, 404, 403, 404, 404, 404, 404, 404, 404, 404],
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_permission_matrix_of_every_vault_endpoint(app, db, world, secrets_, role):
    client = _client(app, db, getattr(world, role))
    ids = {"password": secrets_.password.id, "totp": secrets_.totp.id, "codes": secrets_.codes.id, "account": world.account.id}
    got = []
    for method, path, data in ENDPOINTS:
        url = path.format(**ids)
        response = client.get(url) if method == "GET" else post(client, url, data)
        got.append(response.status_code)
        assert "Canary-Pw" not in response.get_data(as_text=True) or (role in ("it", "publisher") and url.endswith("/reveal") and method == "POST")
    assert got == EXPECTED[role]


def test_the_url_map_has_no_vault_endpoint_missing_from_the_matrix(app):
    vault_rules = {r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("vault.")}
    covered = {p.replace("{password}", "<int:secret_id>").replace("{totp}", "<int:secret_id>").replace("{codes}", "<int:secret_id>")
               .replace("{account}", "<int:account_id>").replace("/codes/1/", "/codes/<int:index>/") for _, p, _ in ENDPOINTS}
    assert vault_rules <= covered, vault_rules - covered


def test_it_adds_a_secret_through_the_page_and_values_never_come_back(app, db, world):
    client = _client(app, db, world.it)
    page = client.get(f"/vault/accounts/{world.account.id}/new")
    assert page.status_code == 200
    response = post(client, f"/vault/accounts/{world.account.id}/new",
                    {"kind": "password", "label": "Login", "value": "Typed-Canary-9d9d", "login": "x@acme.example"})
    assert response.status_code == 302
    secret = db.scalars(select(Secret).where(Secret.label == "Login")).one()
    # A failed form does not echo the typed value.
    bad = post(client, f"/vault/accounts/{world.account.id}/new",
               {"kind": "password", "label": "Login", "value": "Typed-Canary-9d9d"})
    assert bad.status_code == 200 and "already has a secret with that name" in bad.get_data(as_text=True)
    assert "Typed-Canary-9d9d" not in bad.get_data(as_text=True)
    codes = post(client, f"/vault/accounts/{world.account.id}/new",
                 {"kind": "recovery_codes", "label": "Codes", "value_lines": "aaaa\nbbbb\n"})
    assert codes.status_code == 302
    change = post(client, f"/vault/secrets/{secret.id}/change", {"value": "Changed-Canary-1e1e"})
    assert change.status_code == 302
    assert [v.status for v in versions_of(db, secret)] == ["current", "retired"]
    account_page = client.get(f"/accounts/{world.account.id}").get_data(as_text=True)
    assert "Login" in account_page and "Add secret" in account_page and "Canary" not in account_page


def test_account_and_person_pages_show_exposures(app, db, world, secrets_):
    publisher = _client(app, db, world.publisher)
    _reveal(publisher, secrets_.password.id, "launch day post")
    admin = _client(app, db, world.admin)
    account_page = admin.get(f"/accounts/{world.account.id}").get_data(as_text=True)
    assert "launch day post" in account_page and PASSWORD not in account_page
    person_page = admin.get(f"/people/{world.publisher.user.person_id}").get_data(as_text=True)
    assert "launch day post" in person_page and "Instagram login" in person_page


def test_a_tampered_row_is_reported_and_audited_never_a_500(app, db, world, secrets_):
    version = db.scalars(select(SecretVersion).where(SecretVersion.secret_id == secrets_.password.id)).one()
    broken = bytearray(version.ciphertext)
    broken[20] ^= 0x40
    db.execute(update(SecretVersion).where(SecretVersion.id == version.id).values(ciphertext=bytes(broken)))
    db.commit()
    client = _client(app, db, world.publisher)
    response = _reveal(client, secrets_.password.id)
    assert response.status_code == 409 and "does not decrypt" in response.get_data(as_text=True)
    assert db.scalars(select(AuditEvent.action).where(AuditEvent.action == "vault.decrypt_failed")).one()
    assert db.scalar(select(func.count(Exposure.id)).where(Exposure.user_id == world.publisher.id)) == 0


class TestSealed:
    @pytest.fixture
    def app_overrides(self):
        return {}  # no keyring: sealed

    def test_vault_pages_answer_503_and_the_rest_works(self, app, db, kit):
        it = make_user(db, kit, roles=("it",))
        account = make_account(db)
        db.commit()
        client = _client(app, db, it)
        response = client.get("/vault/")
        assert response.status_code == 503 and "The vault is sealed" in response.get_data(as_text=True)
        assert "govern keys init" in response.get_data(as_text=True)
        assert client.get(f"/vault/accounts/{account.id}/new").status_code == 503
        page = client.get(f"/accounts/{account.id}")
        assert page.status_code == 200 and "The vault is sealed" in page.get_data(as_text=True)
        assert client.get("/accounts/").status_code == 200


def test_bad_new_values_show_the_error_on_the_right_box_and_change_nothing(app, db, world, secrets_):
    client = _client(app, db, world.it)
    response = post(client, f"/vault/secrets/{secrets_.codes.id}/change", {"value_lines": "  \n "})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Enter at least one recovery code" in page
    response = post(client, f"/vault/secrets/{secrets_.totp.id}/change", {"value": "not-base32!"})
    assert response.status_code == 200 and "base32" in response.get_data(as_text=True)
    assert "not-base32!" not in response.get_data(as_text=True)
    assert [v.version for v in versions_of(db, secrets_.totp)] == [1]


def test_account_page_and_vault_list_use_no_query_per_secret(app, db, world, ring, connection):
    from sqlalchemy import event

    client = _client(app, db, world.it)

    def count(path: str) -> int:
        """How many SELECTs one page view runs."""
        statements: list[str] = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
        event.listen(connection, "before_cursor_execute", listener)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(connection, "before_cursor_execute", listener)
        # Reads only: the session row's own bookkeeping writes depend on timing, not on secrets.
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    def add(n: int, start: int) -> None:
        with app.test_request_context():
            for i in range(start, start + n):
                secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind="password",
                                       label=f"login {i}", value=f"value-{i}-xyz")
                with app.test_request_context():
                    reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason="r", mfa_fresh=True)
        db.commit()

    add(2, 0)
    few = {path: count(path) for path in (f"/accounts/{world.account.id}", "/vault/")}
    add(8, 2)
    many = {path: count(path) for path in (f"/accounts/{world.account.id}", "/vault/")}
    assert many == few


def test_an_auditor_sees_that_a_secret_exists_and_is_told_why_it_is_not_revealed(app, db, world, secrets_):
    """Auditors may know every secret (its page, versions and exposures), so a reveal answers 403 with
    the reason, as the README says; an id that names nothing is 404."""
    client = _client(app, db, world.auditor)
    assert client.get(f"/vault/secrets/{secrets_.password.id}").status_code == 200
    response = client.get(f"/vault/secrets/{secrets_.password.id}/reveal")
    assert response.status_code == 403 and "no active role on this account" in response.get_data(as_text=True)
    assert client.get(f"/vault/secrets/{secrets_.totp.id}/seed").status_code == 403
    for path in ("/reveal", "/seed", "/edit"):
        assert client.get(f"/vault/secrets/999999{path}").status_code == 404, path


def test_the_reveal_page_hides_when_it_says_and_the_readme_agrees(app, db, world, secrets_):
    """One number for the page's text, its script (data-hide-after) and the README."""
    client = _client(app, db, world.publisher)
    page = _reveal(client, secrets_.password.id).get_data(as_text=True)
    seconds = REVEAL_VISIBLE_SECONDS
    assert f'data-hide-after="{seconds}"' in page
    assert f"The value hides itself after <span data-hide-note>{seconds}</span> seconds." in page
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"The page hides the value after {seconds} s" in readme
    page = _reveal(client, secrets_.totp.id, "sign in on the office phone").get_data(as_text=True)
    left = int(re.search(r'data-seconds-left="(\d+)"', page).group(1))
    period = int(re.search(r'data-period="(\d+)"', page).group(1))
    assert f'data-hide-after="{left + period}"' in page
    assert f"when the next one expires, after <span data-hide-note>{left + period}</span> seconds" in page
    assert left + period <= 2 * period
