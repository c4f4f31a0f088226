"""Single sign-on against a real OpenID provider (oidc-provider on loopback): the flow and its refusals."""

from __future__ import annotations

import base64
import html
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth.models import User, WebSession
from govern.db import utcnow
from govern.groups.models import DirectoryGroup
from govern.notifications.models import Notification
from govern.sso import services
from govern.sso.models import SsoIdentity
from tests.factories import csrf_from, fresh_code, make_person, make_user, offboard, session_cookie
from tests.sso.idp import BASE, CALLBACK, CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, SECRET_ENV

pytestmark = pytest.mark.usefixtures("proxy")


@pytest.fixture
def provider(db: Any, kit: Any, oidc_provider: Any) -> Any:
    admin = make_user(db, kit, roles=("admin",))
    row = services.create_provider(db, actor=admin.user, slug="test", name="Test IdP", issuer=oidc_provider.issuer,
                                   client_id=CLIENT_ID, client_secret_env=SECRET_ENV,
                                   allowed_domains="example.com", groups_claim="groups")
    db.commit()
    return row


def _account(email: str, *, groups: list[str] | None = None, amr: list[str] | None = None, verified: bool = True) -> dict[str, Any]:
    return {"email": email, "email_verified": verified, "name": email.split("@")[0], "groups": groups or [],
            "amr": amr or ["pwd"]}


def _sso(client: Any, oidc_provider: Any, login: str) -> Any:
    """Sign in through the provider's page as ``login``; returns govern's answer to the callback."""
    start = client.get("/login/sso/test")
    assert start.status_code == 302, start.get_data(as_text=True)
    back = oidc_provider.sign_in(start.headers["Location"], login)
    assert back.startswith(CALLBACK), back
    return client.get(back[len(BASE):])


def _reasons(db: Any) -> list[str]:
    db.expire_all()
    rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "sso.login.failed").order_by(AuditEvent.id))
    return [json.loads(row.details_json)["reason"] for row in rows]


def test_sign_in_links_the_person_by_verified_email_and_keeps_no_secret(app, db, kit, provider, oidc_provider):
    alice = make_user(db, kit, email="alice@example.com", with_mfa=False)
    oidc_provider.set_accounts({"alice": _account("alice@example.com", groups=["marketing"])})
    client = app.test_client()
    start = client.get("/login/sso/test")
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    back = oidc_provider.sign_in(start.headers["Location"], "alice")
    response = client.get(back[len(BASE):])
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/").status_code == 200
    identity = db.scalar(select(SsoIdentity).where(SsoIdentity.user_id == alice.id))
    assert identity is not None and identity.subject == "alice" and json.loads(identity.groups_json) == ["marketing"]
    # No code, state or nonce anywhere in the audit trail.
    code = parse_qs(urlsplit(back).query)["code"][0]
    trail = " ".join(row.details_json for row in db.scalars(select(AuditEvent)))
    for secret in (code, query["state"][0], query["nonce"][0], CLIENT_SECRET):
        assert secret not in trail
    actions = [row.action for row in db.scalars(select(AuditEvent).where(AuditEvent.actor_user_id == alice.id))]
    assert {"sso.identity.linked", "sso.login.succeeded", "auth.login.succeeded"} <= set(actions)


def test_a_password_only_sign_in_at_the_provider_needs_govern_step_up(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="pat@example.com", roles=("admin",))
    make_user(db, kit, email="mia@example.com", roles=("admin",))
    oidc_provider.set_accounts({"pat": _account("pat@example.com", amr=["pwd"]),
                                "mia": _account("mia@example.com", amr=["pwd", "mfa"])})
    pat, mia = app.test_client(), app.test_client()
    assert _sso(pat, oidc_provider, "pat").status_code == 302
    assert _sso(mia, oidc_provider, "mia").status_code == 302
    # /admin/users/new is a sensitive page (fresh_mfa_required).
    first = pat.get("/admin/users/new")
    assert first.status_code == 302, (first.status_code, first.get_data(as_text=True)[:3000])
    assert "/reauth" in first.headers["Location"]
    assert mia.get("/admin/users/new").status_code == 200
    db.expire_all()
    rows = {row.user_id: row.mfa_verified_at for row in db.scalars(select(WebSession).where(WebSession.user_id.is_not(None)))}
    assert sorted(v is None for v in rows.values()) == [False, True]


def test_wrong_audience_is_refused(app, db, kit, provider, oidc_provider, proxy):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    other = oidc_provider.id_token_for("alice", client_id=OTHER_CLIENT_ID, client_secret="other-secret",  # noqa: S106
                                       redirect_uri=f"{BASE}/other/callback", nonce="n")
    proxy.swap_id_token = lambda _real: other
    response = _sso(app.test_client(), oidc_provider, "alice")
    assert response.status_code == 400
    assert _reasons(db) == ["wrong_audience"]


def test_a_token_signed_with_a_key_the_provider_did_not_publish_is_refused(app, db, kit, provider, oidc_provider, proxy):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    forger = RSAKey.generate_key(2048)

    def forge(real: str) -> str:
        # The provider's own claims and key id, signed with a key it never published.
        header = _part(real, 0)
        return jwt.encode({"alg": "RS256", "kid": header.get("kid")}, _part(real, 1), forger)

    proxy.swap_id_token = forge
    assert _sso(app.test_client(), oidc_provider, "alice").status_code == 400
    assert _reasons(db) == ["bad_signature"]


def _part(token: str, index: int) -> dict[str, Any]:
    """The header (0) or the claims (1) of a compact JWS, unverified."""
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_an_expired_token_is_refused(app, db, kit, provider, oidc_provider, monkeypatch):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    client = app.test_client()
    start = client.get("/login/sso/test")
    back = oidc_provider.sign_in(start.headers["Location"], "alice")
    # The provider's id tokens live an hour; govern's clock reads two hours later (beyond the skew).
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(services, "utcnow", lambda: later)
    assert client.get(back[len(BASE):]).status_code == 400
    assert _reasons(db) == ["expired"]


def test_a_replayed_state_is_refused(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    client = app.test_client()
    start = client.get("/login/sso/test")
    back = oidc_provider.sign_in(start.headers["Location"], "alice")
    assert client.get(back[len(BASE):]).status_code == 302
    # The same callback again (same state, same code), in the same browser and in another one.
    assert client.get(back[len(BASE):]).status_code == 400
    assert app.test_client().get(back[len(BASE):]).status_code == 400
    assert _reasons(db) == ["no_pending_sign_in", "no_pending_sign_in"]


def test_a_state_that_does_not_match_is_refused(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    client = app.test_client()
    start = client.get("/login/sso/test")
    back = oidc_provider.sign_in(start.headers["Location"], "alice")
    forged = back[len(BASE):].replace("state=", "state=x")
    assert client.get(forged).status_code == 400
    assert _reasons(db) == ["state_mismatch"]


def test_a_nonce_mismatch_is_refused(app, db, kit, provider, oidc_provider, proxy):
    make_user(db, kit, email="alice@example.com")
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    # A genuine token for govern's own client, but from another sign-in (another nonce).
    stolen = oidc_provider.id_token_for("alice", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                        redirect_uri=CALLBACK, nonce="someone-elses-nonce")
    proxy.swap_id_token = lambda _real: stolen
    assert _sso(app.test_client(), oidc_provider, "alice").status_code == 400
    assert _reasons(db) == ["nonce_mismatch"]


def test_an_unknown_or_unverified_email_gets_no_login(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="unverified@example.com")
    make_user(db, kit, email="elsewhere@other.org")
    offboard(db, make_person(db, email="gone@example.com"), "departed")  # no login, and gone
    db.commit()
    oidc_provider.set_accounts({"ghost": _account("ghost@example.com"),
                                "unverified": _account("unverified@example.com", verified=False),
                                "elsewhere": _account("elsewhere@other.org"), "gone": _account("gone@example.com")})
    for login in ("ghost", "unverified", "elsewhere", "gone"):
        client = app.test_client()
        assert _sso(client, oidc_provider, login).status_code == 400
        assert client.get("/").status_code == 302  # still signed out
    assert _reasons(db) == ["unknown_email", "email_not_verified", "domain_not_allowed", "person_not_active"]
    assert db.scalar(select(SsoIdentity)) is None
    assert db.scalar(select(User).where(User.email == "gone@example.com")) is None


def test_an_active_person_without_a_login_gets_one_at_the_first_sign_in(app, db, kit, provider, oidc_provider):
    make_person(db, email="nologin@example.com", full_name="Nora Nologin")
    db.commit()
    oidc_provider.set_accounts({"nologin": _account("nologin@example.com")})
    client = app.test_client()
    assert _sso(client, oidc_provider, "nologin").status_code == 302
    assert "Welcome" in client.get("/").get_data(as_text=True)
    user = db.scalar(select(User).where(User.email == "nologin@example.com"))
    assert user is not None and user.roles == frozenset() and user.password_hash is None and not user.has_mfa
    assert client.get("/admin/users/").status_code == 403  # plain staff until an admin grants a role
    created = db.scalars(select(AuditEvent).where(AuditEvent.action == "sso.user.created")).one()
    assert created.actor_user_id == user.id and created.target_id == str(user.id)
    # The next sign-in uses the same login.
    assert _sso(app.test_client(), oidc_provider, "nologin").status_code == 302
    assert len(db.scalars(select(User).where(User.email == "nologin@example.com")).all()) == 1


@pytest.mark.parametrize("status", ["departed", "leaving"])
def test_a_departed_or_leaving_person_cannot_sign_in(app, db, kit, provider, oidc_provider, status):
    bob = make_user(db, kit, email="bob@example.com")
    oidc_provider.set_accounts({"bob": _account("bob@example.com")})
    assert _sso(app.test_client(), oidc_provider, "bob").status_code == 302  # linked while active
    offboard(db, bob.user.person, status)
    db.commit()
    client = app.test_client()
    assert _sso(client, oidc_provider, "bob").status_code == 400
    assert client.get("/").status_code == 302
    assert _reasons(db) == ["person_not_active"]


def test_group_claim_changes_are_seen_at_the_next_sign_in(app, db, kit, provider, oidc_provider):
    carol = make_user(db, kit, email="carol@example.com")
    oidc_provider.set_accounts({"carol": _account("carol@example.com", groups=["social", "marketing"])})
    assert _sso(app.test_client(), oidc_provider, "carol").status_code == 302
    oidc_provider.set_accounts({"carol": _account("carol@example.com", groups=["social", "it-admins"])})
    assert _sso(app.test_client(), oidc_provider, "carol").status_code == 302
    db.expire_all()
    identity = db.scalar(select(SsoIdentity).where(SsoIdentity.user_id == carol.id))
    assert json.loads(identity.groups_json) == ["it-admins", "social"]
    changes = [json.loads(row.details_json) for row in db.scalars(
        select(AuditEvent).where(AuditEvent.action == "sso.groups.changed").order_by(AuditEvent.id))]
    assert changes[-1]["added"] == ["it-admins"] and changes[-1]["removed"] == ["marketing"]


def test_the_group_claim_sets_this_providers_memberships_of_known_groups(app, db, kit, provider, oidc_provider):
    from govern.groups import services as groups
    from govern.groups.models import GroupMember

    carol = make_user(db, kit, email="carol@example.com")
    social = groups.create_group(db, actor=None, display_name="social", external_id="grp-social-0001")
    it_admins = groups.create_group(db, actor=None, display_name="IT admins", external_id="grp-it-0002")
    groups.add_members(db, actor=None, group=social, person_ids=[carol.user.person_id])  # SCIM's own row
    db.commit()

    def by_claim() -> list[str]:
        db.expire_all()
        return sorted(name for name, in db.execute(
            select(DirectoryGroup.display_name).join(GroupMember, GroupMember.group_id == DirectoryGroup.id)
            .where(GroupMember.person_id == carol.user.person_id, GroupMember.source == "sso:test")))

    # Entra sends object ids, Okta names; a name govern has no group for ("marketing") makes none.
    oidc_provider.set_accounts({"carol": _account("carol@example.com", groups=["grp-social-0001", "marketing"])})
    assert _sso(app.test_client(), oidc_provider, "carol").status_code == 302
    assert by_claim() == ["social"]
    oidc_provider.set_accounts({"carol": _account("carol@example.com", groups=["IT admins"])})
    assert _sso(app.test_client(), oidc_provider, "carol").status_code == 302
    assert by_claim() == ["IT admins"]
    # Leaving the claim removed only the provider's membership: SCIM's stays.
    assert groups.member_ids(db, social) == [carol.user.person_id]
    assert groups.member_ids(db, it_admins, "sso:test") == [carol.user.person_id]
    assert db.scalar(select(DirectoryGroup).where(DirectoryGroup.display_name == "marketing")) is None


def test_logout_ends_the_session_and_the_providers(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="alice@example.com", with_mfa=False)
    oidc_provider.set_accounts({"alice": _account("alice@example.com")})
    client = app.test_client()
    assert _sso(client, oidc_provider, "alice").status_code == 302
    cookie = session_cookie(client)
    page = client.get("/")
    response = client.post("/logout", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.headers["Location"] == "/logout/sso/test"
    offer = client.get("/logout/sso/test").get_data(as_text=True)
    target = next(html.unescape(part.split('"', 1)[0]) for part in offer.split('href="') if "/session/end" in part.split('"', 1)[0])
    assert target.startswith(oidc_provider.issuer + "/session/end")
    assert parse_qs(urlsplit(target).query)["client_id"] == [CLIENT_ID]
    replay = app.test_client()
    replay.set_cookie("govern_session", cookie or "")
    assert replay.get("/").status_code == 302  # the captured cookie is dead


def _password_login(client: Any, db: Any, who: Any) -> Any:
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "email": who.email,
                                           "password": who.password})
    return response


def test_sso_required_for_a_role_refuses_the_password_but_the_break_glass_admin_gets_in(app, db, kit, provider):
    admin = make_user(db, kit, roles=("admin",))
    glass = make_user(db, kit, roles=("admin",))
    staff = make_user(db, kit)
    services.set_requirement(db, actor=admin.user, required_for_all=False, required_roles=["admin"],
                             break_glass_user_id=glass.id)
    db.commit()
    refused = _password_login(app.test_client(), db, admin)
    assert refused.status_code == 200 and "requires single sign-on" in refused.get_data(as_text=True)
    assert _password_login(app.test_client(), db, staff).status_code == 302
    client = app.test_client()
    assert _password_login(client, db, glass).status_code == 302
    page = client.get("/login/code")
    done = client.post("/login/code", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": fresh_code(db, glass)})
    assert done.status_code == 302 and client.get("/").status_code == 200
    db.expire_all()
    actions = [row.action for row in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "sso.password_refused" in actions and "sso.break_glass.used" in actions
    told = db.scalars(select(Notification.user_id).where(Notification.title.contains("break-glass"))).all()
    assert admin.id in told and glass.id not in told


def test_sso_required_for_everyone(app, db, kit, provider):
    admin = make_user(db, kit, roles=("admin",))
    staff = make_user(db, kit)
    services.set_requirement(db, actor=admin.user, required_for_all=True, required_roles=[], break_glass_user_id=None)
    db.commit()
    assert _password_login(app.test_client(), db, staff).status_code == 200
    assert _password_login(app.test_client(), db, admin).status_code == 200


def test_the_cli_adds_a_provider_and_requires_sso(app, db, kit):
    glass = make_user(db, kit, roles=("admin",))
    from govern.sso.cli import add_provider, require

    runner = app.test_cli_runner()
    result = runner.invoke(add_provider, args=[ "okta", "--name", "Okta", "--issuer", "https://example.okta.com",
                                 "--client-id", "0oa1", "--secret-env", "GOVERN_SSO_OKTA_SECRET", "--domains", "example.com"])
    assert result.exit_code == 0, result.output
    assert "http://localhost/login/sso/okta/callback" in result.output
    result = runner.invoke(require, args=["--role", "admin", "--role", "it", "--break-glass", glass.email])
    assert result.exit_code == 0, result.output
    db.expire_all()
    settings = services.settings_of(db)
    assert settings.required_roles == "admin it" and settings.break_glass_user_id == glass.id
    assert runner.invoke(require, args=["--role", "wizard"]).exit_code != 0


def test_step_up_at_the_provider_counts_only_with_a_second_factor(app, db, kit, provider, oidc_provider):
    make_user(db, kit, email="pat@example.com", roles=("admin",), with_mfa=False)
    oidc_provider.set_accounts({"pat": _account("pat@example.com", amr=["pwd"])})
    client = app.test_client()
    assert _sso(client, oidc_provider, "pat").status_code == 302
    reauth = client.get("/admin/users/new")
    assert "/reauth" in reauth.headers["Location"]
    page = client.get(reauth.headers["Location"]).get_data(as_text=True)
    assert "Confirm with Test IdP" in page and 'name="code"' not in page  # no govern authenticator to ask for

    def step_up() -> Any:
        start = client.get("/login/sso/test?reauth=1&next=/admin/users/new")
        query = parse_qs(urlsplit(start.headers["Location"]).query)
        assert query["prompt"] == ["login"] and query["max_age"] == ["0"]
        back = oidc_provider.sign_in(start.headers["Location"], "pat")
        return client.get(back[len(BASE):])

    # The provider asked for a password only: not a step-up.
    assert "/reauth" in step_up().headers["Location"]
    assert client.get("/admin/users/new").status_code == 302
    oidc_provider.set_accounts({"pat": _account("pat@example.com", amr=["pwd", "otp", "mfa"])})
    done = step_up()
    assert done.headers["Location"].endswith("/admin/users/new")
    assert client.get("/admin/users/new").status_code == 200
    db.expire_all()
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "sso.reauth.succeeded")) is not None


def test_a_person_provisioned_by_scim_is_found_by_external_id(app, db, kit, provider, oidc_provider):
    from govern.scim.models import ScimIdentity

    dana = make_user(db, kit, email="dana.old@example.com", with_mfa=False)
    db.add(ScimIdentity(person_id=dana.user.person_id, external_id="00u-dana"))
    db.commit()
    # The provider knows her by a newer address; her Okta user id (the SCIM externalId) is the subject.
    oidc_provider.set_accounts({"00u-dana": _account("dana@example.com")})
    client = app.test_client()
    assert _sso(client, oidc_provider, "00u-dana").status_code == 302
    assert client.get("/").status_code == 200
    db.expire_all()
    assert db.scalar(select(SsoIdentity.user_id).where(SsoIdentity.subject == "00u-dana")) == dana.id
