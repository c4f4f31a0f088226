"""A company with a Meta business, a LinkedIn organisation and a TikTok Business Center connected to a
local fake of the platforms (a real socket server on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from govern.connectors import connections
from govern.connectors.connections import Settings
from govern.crypto.keyring import Keyring
from govern.vault import versions
from tests.connectors.fakeplatforms import LINKEDIN_TOKEN, META_TOKEN, TIKTOK_TOKEN, Platforms, serve
from tests.factories import make_account, make_grant, make_person, make_user


@pytest.fixture
def platforms() -> Platforms:
    return Platforms()


@pytest.fixture
def platform_url(platforms: Platforms) -> Iterator[str]:
    with serve(platforms) as url:
        yield url


@pytest.fixture
def app_overrides(keyring: Keyring, platform_url: str) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json(), "META_GRAPH_URL": platform_url, "LINKEDIN_API_URL": platform_url,
            "TIKTOK_API_URL": platform_url}


class NoSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def settings(platform_url: str, ring: Keyring) -> Settings:
    return Settings(meta_url=platform_url, linkedin_url=platform_url, tiktok_url=platform_url, keyring=ring,
                    sleep=NoSleep(), backoff_start=0.01)


@pytest.fixture
def world(app: Any, db: Any, kit: Any, ring: Keyring, platforms: Platforms) -> Iterator[SimpleNamespace]:
    """Lea (publisher on the Facebook Page, admin of the LinkedIn organisation) and Sam (moderator on the Page);
    on the platforms also: Dora, departed, still on the Page; an unknown LinkedIn member."""
    admin = make_user(db, kit, roles=("admin",), full_name="Ada Admin")
    it = make_user(db, kit, roles=("it",), full_name="Ivo IT")
    olga = make_user(db, kit, roles=("manager",), full_name="Olga Owner")
    lea = make_person(db, full_name="Lea Leaver", email="lea@acme.test")
    sam = make_person(db, full_name="Sam Staff", email="sam@acme.test")
    dora = make_person(db, full_name="Dora Departed", email="dora@acme.test", status="departed")
    page = make_account(db, display_name="Acme Facebook", handle="acme-fb", platform="facebook",
                        url="https://facebook.com/acme", business_owner_id=olga.user.person_id)
    org = make_account(db, display_name="Acme LinkedIn", handle="acme-li", platform="linkedin",
                       url="https://linkedin.com/company/acme", business_owner_id=olga.user.person_id)
    tiktok = make_account(db, display_name="Acme TikTok", handle="acme-tt", platform="tiktok",
                          url="https://tiktok.com/@acme")
    grants = SimpleNamespace(lea_page=make_grant(db, lea, page, "publisher"), sam_page=make_grant(db, sam, page, "moderator"),
                             lea_org=make_grant(db, lea, org, "admin"))
    with app.test_request_context():
        secrets = {}
        for account, token, label in ((page, META_TOKEN, "Meta system user"), (org, LINKEDIN_TOKEN, "LinkedIn token"),
                                      (tiktok, TIKTOK_TOKEN, "TikTok token")):
            secrets[account.platform] = versions.create_secret(db, actor=it.user, keyring=ring, account=account,
                                                               kind="api_token", label=label, value=token)
        meta = connections.create_connection(db, actor=admin.user, platform="meta", external_id="b1", name="Acme business",
                                             secret=secrets["facebook"])
        li = connections.create_connection(db, actor=it.user, platform="linkedin", external_id="9", name="Acme org",
                                           secret=secrets["linkedin"])
        tt = connections.create_connection(db, actor=it.user, platform="tiktok", external_id="bc1", name="Acme BC",
                                           secret=secrets["tiktok"])
        connections.cover_account(db, actor=it.user, connection=meta, account=page, platform_id="p1")
        connections.cover_account(db, actor=it.user, connection=li, account=org, platform_id="9")
        connections.cover_account(db, actor=it.user, connection=tt, account=tiktok, platform_id="bc1")
        connections.link_identity(db, actor=it.user, person=lea, platform="linkedin", external_id="urn:li:person:lea")
        db.commit()
        platforms.business_users["b1"] = {
            "100": {"id": "100", "name": "Lea L.", "email": "lea@acme.test", "role": "EMPLOYEE"},
            "101": {"id": "101", "name": "Sam S.", "email": "SAM@acme.test", "role": "EMPLOYEE"},
            "102": {"id": "102", "name": "Dora D.", "email": "dora@acme.test", "role": "EMPLOYEE"},
        }
        platforms.pages["p1"] = {"100": ["CREATE_CONTENT", "ANALYZE"], "101": ["MANAGE", "CREATE_CONTENT"],
                                 "102": ["ANALYZE"]}
        platforms.orgs["9"] = [
            {"role": "ADMINISTRATOR", "roleAssignee": "urn:li:person:lea", "state": "APPROVED", "organization": "urn:li:organization:9"},
            {"role": "ANALYST", "roleAssignee": "urn:li:person:zed", "state": "APPROVED", "organization": "urn:li:organization:9"},
            {"role": "ADMINISTRATOR", "roleAssignee": "urn:li:person:old", "state": "REVOKED", "organization": "urn:li:organization:9"},
        ]
        platforms.bcs["bc1"] = [{"user_id": "t1", "user_name": "Sam", "user_email": "sam@acme.test", "user_role": "STANDARD"}]
    yield SimpleNamespace(admin=admin.user, it=it.user, olga=olga.user, lea=lea, sam=sam, dora=dora, page=page, org=org,
                          tiktok=tiktok, grants=grants, meta=meta, li=li, tt=tt, users={"admin": admin, "it": it, "olga": olga})
