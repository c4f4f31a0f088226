"""The connectors' pages, the button that syncs, removal from the account page, attestation, the API's drift."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from govern.connectors import attestations, sync
from govern.connectors.connections import Settings
from govern.connectors.models import Attestation
from govern.grants.models import PlatformRemoval
from govern.grants.services import revoke_grant
from tests.api.helpers import Api, personal_token
from tests.connectors.fakeplatforms import Platforms
from tests.factories import csrf_token, login, make_account, make_grant, post


def test_it_syncs_from_the_page_and_sees_the_drift(app: Any, db: Any, world: Any, client: Any) -> None:
    login(client, db, world.users["it"])
    page = client.get("/connectors/")
    assert page.status_code == 200 and "Acme business" in page.text
    answer = post(client, "/connectors/sync", token_page="/connectors/")
    assert answer.status_code == 302
    report = client.get("/connectors/drift").text
    assert "Dora Departed" in report and "urn:li:person:zed" in report and "Role mismatch" in report
    account = client.get(f"/connectors/accounts/{world.page.id}").text
    assert "Dora Departed" in account and "last confirmed" in account
    home = client.get("/").text
    assert 'id="waiting-drift"' in home


def test_revoking_a_grant_offers_removal_on_the_platform(app: Any, db: Any, world: Any, client: Any,
                                                         settings: Settings, platforms: Platforms) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    with app.test_request_context():
        revoke_grant(db, actor=world.admin, grant=world.grants.lea_page, reason="moved team")
        db.commit()
    removal = db.scalar(select(PlatformRemoval).where(PlatformRemoval.grant_id == world.grants.lea_page.id))
    login(client, db, world.users["it"])
    page = client.get(f"/connectors/accounts/{world.page.id}").text
    assert "Remove on Meta" in page
    answer = post(client, f"/connectors/removals/{removal.id}/remove", token_page=f"/connectors/accounts/{world.page.id}")
    assert answer.status_code == 302
    db.expire_all()
    assert db.get(PlatformRemoval, removal.id).confirmed_at is not None
    assert "100" not in platforms.pages["p1"]


def test_owner_attests_an_x_account_and_drift_follows(app: Any, db: Any, world: Any, client: Any) -> None:
    x = make_account(db, display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news",
                     business_owner_id=world.olga.person_id)
    make_grant(db, world.sam, x, "publisher")
    db.commit()
    assert x in attestations.due_attestations(db)
    login(client, db, world.users["olga"])
    token = csrf_token(client, f"/connectors/accounts/{x.id}")
    answer = client.post(f"/connectors/accounts/{x.id}/attest", data={
        "csrf_token": token, "members": "sam@acme.test, admin\nstranger@gmail.com, publisher", "note": "as seen today"})
    assert answer.status_code == 302, answer.text
    row = db.scalar(select(Attestation).where(Attestation.account_id == x.id))
    assert row is not None and len(row.members) == 2
    page = client.get(f"/connectors/accounts/{x.id}").text
    assert "stranger@gmail.com" in page and "Role mismatch" in page
    assert x not in attestations.due_attestations(db)


def test_api_drift_for_the_company_and_one_account(app: Any, db: Any, world: Any, settings: Settings) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    api = Api(app, personal_token(db, world.users["it"], "accounts:read"))
    everything = api.get("/drift")
    assert everything.status_code == 200, everything.text
    body = everything.get_json()
    assert len(body["items"]) >= 4 and body["next"] is None
    assert {i["kind"] for i in body["items"]} == {"unmanaged", "mismatch"}
    # A page of accounts at a time: walking one account a page finds the same items.
    walked, answer = [], api.get("/drift?limit=1").get_json()
    walked += answer["items"]
    while answer["next"]:
        answer = api.client.get(answer["next"], headers=api.headers).get_json()
        walked += answer["items"]
    key = lambda i: (i["account_id"], i["kind"], i["member_id"] or "", i["person_name"])  # noqa: E731
    assert sorted(map(key, walked)) == sorted(map(key, body["items"]))
    # A manager's token sees the drift of the accounts they may see, as the pages do.
    other = make_account(db, display_name="Not Olga's", handle="not-olgas", platform="instagram")
    db.commit()
    olga = Api(app, personal_token(db, world.users["olga"], "accounts:read")).get("/drift").get_json()
    assert {i["account_id"] for i in olga["items"]} <= {world.page.id, world.org.id}
    assert other.id not in {i["account_id"] for i in olga["items"]}
    one = api.get(f"/accounts/{world.org.id}/drift").get_json()
    assert [i["member_id"] for i in one["items"]] == ["urn:li:person:zed"]
    assert api.get("/accounts/999999/drift").status_code == 404
    assert "token" not in str(body).lower()


def test_it_connects_a_platform_and_covers_an_account_from_the_page(app: Any, db: Any, world: Any, client: Any) -> None:
    from govern.connectors.models import ConnectedAccount, Connection
    from govern.vault.models import Secret

    insta = make_account(db, display_name="Acme Instagram", handle="acme-ig", platform="instagram")
    db.commit()
    secret = db.scalar(select(Secret).where(Secret.account_id == world.page.id))
    login(client, db, world.users["it"])
    token = csrf_token(client, "/connectors/")
    answer = client.post("/connectors/connections", data={"csrf_token": token, "platform": "meta", "external_id": "b2",
                                                           "name": "Second business", "secret_id": secret.id})
    assert answer.status_code == 302
    second = db.scalar(select(Connection).where(Connection.external_id == "b2"))
    assert second is not None and not second.auto_remove
    answer = client.post("/connectors/connections/accounts", data={
        "csrf_token": token, "connection_id": second.id, "account_id": insta.id, "platform_id": "p2"})
    assert answer.status_code == 302
    assert db.scalar(select(ConnectedAccount.platform_id).where(ConnectedAccount.account_id == insta.id)) == "p2"
    # The same account twice is refused in words, not a 500.
    answer = client.post("/connectors/connections/accounts", data={
        "csrf_token": token, "connection_id": second.id, "account_id": insta.id, "platform_id": "p3"}, follow_redirects=True)
    assert answer.status_code == 200


def test_the_account_page_shows_platform_drift_and_offers_removal(app: Any, db: Any, world: Any, client: Any,
                                                                  settings: Settings) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    with app.test_request_context():
        revoke_grant(db, actor=world.admin, grant=world.grants.lea_org, reason="moved team",
                     override_reason="the test's only admin")
        db.commit()
    login(client, db, world.users["it"])
    page = client.get(f"/accounts/{world.org.id}").text
    assert 'id="platform-drift"' in page and "urn:li:person:zed" in page and "Remove on LinkedIn" in page


def test_a_review_campaign_shows_the_latest_attestation(app: Any, db: Any, world: Any, client: Any) -> None:
    from datetime import timedelta

    from govern.db import utcnow
    from govern.reviews.models import ReviewCampaign, ReviewItem

    x = make_account(db, display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news",
                     business_owner_id=world.olga.person_id)
    grant = make_grant(db, world.sam, x, "publisher")
    campaign = ReviewCampaign(name="Q4", scope_kind="all", due_at=utcnow() + timedelta(days=7))
    db.add(campaign)
    db.flush()
    db.add(ReviewItem(campaign_id=campaign.id, grant_id=grant.id, reviewer_id=world.olga.person_id))
    attestations.attest(db, actor=world.olga, account=x, members_text="sam@acme.test, publisher", note="checked Monday")
    db.commit()
    login(client, db, world.users["admin"])
    page = client.get(f"/reviews/{campaign.id}").text
    assert 'id="attestations"' in page and "checked Monday" in page


def test_it_presses_remove_on_meta_on_the_offboarding_checklist(app: Any, db: Any, world: Any, client: Any,
                                                                settings: Settings, platforms: Platforms) -> None:
    from govern.offboarding.models import OffboardingItem
    from govern.offboarding.scheduling import schedule_offboarding
    from govern.offboarding.settings import Settings as OffboardingSettings

    run = schedule_offboarding(db, actor=world.admin, person=world.lea, effective_at=None, settings=OffboardingSettings())
    db.commit()
    item = db.scalar(select(OffboardingItem).where(OffboardingItem.offboarding_id == run.id,
                                                   OffboardingItem.account_id == world.page.id))
    login(client, db, world.users["it"])
    page = client.get(f"/offboarding/{run.id}").text
    assert "Remove on Meta" in page and "Remove on LinkedIn" in page
    token = csrf_token(client, f"/offboarding/{run.id}")
    answer = client.post(f"/connectors/removals/{item.platform_removal_id}/remove",
                         data={"csrf_token": token, "next": f"/offboarding/{run.id}"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/offboarding/{run.id}")
    db.expire_all()
    assert db.get(OffboardingItem, item.id).status == "done"
    assert "100" not in platforms.pages["p1"]


def test_an_attestation_keeps_a_screenshot_and_refuses_other_files(app: Any, db: Any, world: Any, client: Any) -> None:
    import io

    x = make_account(db, display_name="Acme Tube", handle="acmetube", platform="youtube", url="https://youtube.com/@acme",
                     business_owner_id=world.olga.person_id)
    db.commit()
    login(client, db, world.users["olga"])
    token = csrf_token(client, f"/connectors/accounts/{x.id}")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    answer = client.post(f"/connectors/accounts/{x.id}/attest", content_type="multipart/form-data", data={
        "csrf_token": token, "members": "sam@acme.test, admin", "screenshot": (io.BytesIO(png), "members.png")})
    assert answer.status_code == 302
    row = db.scalar(select(Attestation).where(Attestation.account_id == x.id))
    assert row.screenshot and row.screenshot.endswith(".png")
    shown = client.get(f"/connectors/attestations/{row.id}/screenshot")
    assert shown.status_code == 200 and shown.data == png and shown.mimetype == "image/png"
    answer = client.post(f"/connectors/accounts/{x.id}/attest", content_type="multipart/form-data", data={
        "csrf_token": token, "members": "sam@acme.test, admin",
        "screenshot": (io.BytesIO(b"<svg onload=alert(1)>"), "members.png")}, follow_redirects=True)
    assert "must be a PNG or JPEG" in answer.text
    assert len(list(db.scalars(select(Attestation).where(Attestation.account_id == x.id)))) == 1


def test_a_manager_sees_and_attests_only_their_own_accounts(app: Any, db: Any, world: Any, client: Any) -> None:
    other = make_account(db, display_name="Not Olga's X", handle="not-olgas-x", platform="x")
    db.commit()
    login(client, db, world.users["olga"])
    assert client.get(f"/connectors/accounts/{world.page.id}").status_code == 200
    assert client.get(f"/connectors/accounts/{other.id}").status_code == 404
    token = csrf_token(client, f"/connectors/accounts/{world.page.id}")
    refused = client.post(f"/connectors/accounts/{other.id}/attest",
                          data={"csrf_token": token, "members": "x@acme.test, admin", "note": "not mine"})
    assert refused.status_code == 404
    assert db.scalar(select(Attestation).where(Attestation.account_id == other.id)) is None
