"""Who held an account on a given day (page and API), the drift on the IT dashboard, a person linking their own
platform identity, a connection's accounts a page at a time, the drift report's filters, and attestation reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.cli import cli
from govern.connectors import attestations, connections, sync
from govern.connectors.connections import Settings
from govern.connectors.models import PlatformIdentity
from govern.notifications.models import Notification
from tests.api.helpers import Api, personal_token
from tests.connectors.fakeplatforms import Platforms
from tests.factories import login, make_account, make_user, post

MARCH_3 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
MARCH_10 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def _two_syncs(db: Any, settings: Settings, platforms: Platforms) -> None:
    """On 3 March Sam holds MANAGE on the Page; on 10 March he is gone from it."""
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit, now=MARCH_3)
    del platforms.pages["p1"]["101"]
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit, now=MARCH_10)


def test_the_account_page_shows_who_held_it_on_a_day(app: Any, db: Any, world: Any, client: Any,
                                                     settings: Settings, platforms: Platforms) -> None:
    _two_syncs(db, settings, platforms)
    login(client, db, world.users["it"])
    now = client.get(f"/connectors/accounts/{world.page.id}").text
    assert 'id="member-history"' in now and "Sam S." not in now.split('id="members"')[1].split("</ul>")[0]
    then = client.get(f"/connectors/accounts/{world.page.id}?at=2026-03-03").text
    listed = then.split('id="members"')[1].split("</ul>")[0]
    assert "Sam S." in listed and "MANAGE" in listed and "the platform listed these members" in then
    before = client.get(f"/connectors/accounts/{world.page.id}?at=2026-03-02").text
    assert "No sync had read this account by the end of" in before
    bad = client.get(f"/connectors/accounts/{world.page.id}?at=3%20March")
    assert bad.status_code == 200 and "Give the day as YYYY-MM-DD" in bad.text


def test_the_api_answers_who_held_it_at_a_moment(app: Any, db: Any, world: Any, settings: Settings,
                                                 platforms: Platforms) -> None:
    _two_syncs(db, settings, platforms)
    api = Api(app, personal_token(db, world.users["it"], "accounts:read"))
    then = api.get(f"/accounts/{world.page.id}/platform-members?at=2026-03-05T12:00:00Z")
    assert then.status_code == 200, then.text
    body = then.get_json()
    assert body["source"] == "sync" and body["seen_from"].startswith("2026-03-03")
    sam = next(m for m in body["members"] if m["id"] == "101")
    assert sam["roles"] == ["CREATE_CONTENT", "MANAGE"] and sam["person_id"] == world.sam.id
    dora = next(m for m in body["members"] if m["id"] == "102")
    assert dora["person_id"] == world.dora.id
    now = api.get(f"/accounts/{world.page.id}/platform-members").get_json()
    assert "101" not in {m["id"] for m in now["members"]} and now["seen_from"].startswith("2026-03-10")
    early = api.get(f"/accounts/{world.page.id}/platform-members?at=2026-01-01T00:00:00%2B01:00").get_json()
    assert early["source"] is None and early["members"] == []
    assert api.get(f"/accounts/{world.page.id}/platform-members?at=2026-03-05T12:00:00").status_code in (400, 422)
    assert api.get(f"/accounts/{world.page.id}/platform-members?at=yesterday").status_code in (400, 422)
    assert api.get("/accounts/999999/platform-members").status_code == 404


def test_the_it_dashboard_charts_drift_and_names_departed_access(app: Any, db: Any, world: Any, client: Any,
                                                                 settings: Settings, platforms: Platforms) -> None:
    _two_syncs(db, settings, platforms)
    points = sync.drift_history(db, now=MARCH_10 + timedelta(hours=1))
    assert [p.day.isoformat() for p in points] == ["2026-03-03", "2026-03-10"]
    assert all(p.total >= 2 and p.critical >= 2 for p in points)  # Dora (departed) and zed (unknown)
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    login(client, db, world.users["it"])
    board = client.get("/rotation/").text
    assert 'id="drift-chart"' in board and 'id="critical-drift"' in board
    critical = board.split('id="critical-drift"')[1].split("</section>")[0]
    assert "Dora Departed" in critical and "urn:li:person:zed" in critical


def test_a_person_links_their_own_identity_and_it_can_unlink_it(app: Any, db: Any, kit: Any, world: Any, client: Any,
                                                               settings: Settings) -> None:
    zed = make_user(db, kit, full_name="Zed Zimmer")
    db.commit()
    login(client, db, zed)
    assert "Platform identities" in client.get("/account").text
    answer = post(client, "/connectors/identities/mine", {"platform": "linkedin", "external_id": "urn:li:person:zed"},
                  token_page="/connectors/identities/mine")
    assert answer.status_code == 302
    row = db.scalar(select(PlatformIdentity).where(PlatformIdentity.external_id == "urn:li:person:zed"))
    assert row is not None and row.person_id == zed.user.person_id
    row_id = row.id
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "connectors.identity_linked")
                      .order_by(AuditEvent.id.desc()).limit(1))
    assert event is not None and event.actor_user_id == zed.user.id and '"by_the_person":true' in event.details_json.replace(" ", "")
    told = db.scalar(select(Notification).where(Notification.kind == "connectors.identity",
                                                Notification.user_id == world.it.id))
    assert told is not None and "urn:li:person:zed" in told.title
    # The same id cannot be claimed twice, and a staff user cannot unlink.
    again = post(client, "/connectors/identities/mine", {"platform": "linkedin", "external_id": "urn:li:person:zed"},
                 token_page="/connectors/identities/mine")
    assert again.status_code in (302, 409)
    assert db.scalar(select(func.count()).select_from(PlatformIdentity)
                     .where(PlatformIdentity.external_id == "urn:li:person:zed")) == 1
    refused = post(client, f"/connectors/identities/{row.id}/unlink", token_page="/connectors/identities/mine")
    assert refused.status_code in (403, 404)
    # The unknown LinkedIn member is now Zed: no longer "no one govern knows".
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    unknown = [i for i in sync.drift_summary(db)["critical_items"] if "urn:li:person:zed" in i["sentence"]]
    assert unknown == []
    it = app.test_client()
    login(it, db, world.users["it"])
    person_page = it.get(f"/people/{zed.user.person_id}").text
    assert 'id="platform-identities"' in person_page and "urn:li:person:zed" in person_page
    gone = post(it, f"/connectors/identities/{row_id}/unlink", token_page=f"/people/{zed.user.person_id}")
    assert gone.status_code == 302
    db.expire_all()
    assert db.get(PlatformIdentity, row_id) is None
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "connectors.identity_unlinked")) is not None


def test_a_connection_lists_its_accounts_a_page_at_a_time(app: Any, db: Any, world: Any, client: Any) -> None:
    with app.test_request_context():
        for n in range(105):
            account = make_account(db, display_name=f"Page {n:03}", handle=f"page-{n:03}", platform="facebook",
                                   url=f"https://facebook.com/page{n}")
            connections.cover_account(db, actor=world.it, connection=world.meta, account=account, platform_id=f"x{n}")
        db.commit()
    login(client, db, world.users["it"])
    index = client.get("/connectors/").text
    assert "106 accounts" in index
    first = client.get(f"/connectors/connections/{world.meta.id}").text
    assert "Acme Facebook" in first and "Page 098" in first and "Page 099" not in first and "page 1 of 2" in first
    second = client.get(f"/connectors/connections/{world.meta.id}?page=2").text
    assert "Page 099" in second and "Page 104" in second
    assert client.get("/connectors/connections/999999").status_code == 404


def test_the_drift_report_filters_by_kind_and_severity(app: Any, db: Any, world: Any, client: Any,
                                                       settings: Settings) -> None:
    sync.run_sync(db, actor=None, settings=settings, trigger="job", checkpoint=db.commit)
    login(client, db, world.users["it"])
    everything = client.get("/connectors/drift").text
    assert "Role mismatch" in everything and "Dora Departed" in everything
    unmanaged = client.get("/connectors/drift?kind=unmanaged").text.split('id="drift"')[1]
    assert "Dora Departed" in unmanaged and "Role mismatch" not in unmanaged
    critical = client.get("/connectors/drift?severity=critical").text.split('id="drift"')[1]
    assert "Dora Departed" in critical and "Sam Staff" not in critical
    assert client.get("/connectors/drift?kind=nope&severity=bogus&page=-4").status_code == 200


def test_owners_are_reminded_to_attest_once_a_week(app: Any, db: Any, world: Any) -> None:
    x = make_account(db, display_name="Acme News", handle="acme_news", platform="x", url="https://x.com/acme_news",
                     business_owner_id=world.olga.person_id)
    yt = make_account(db, display_name="Acme Videos", handle="acme-videos", platform="youtube",
                      url="https://youtube.com/@acme")
    db.commit()
    now = datetime.now(UTC)
    assert attestations.remind_due(db, now=now) == 2
    db.commit()
    to_olga = list(db.scalars(select(Notification).where(Notification.kind == "connectors.attest_due",
                                                         Notification.user_id == world.olga.id)))
    assert [n.link for n in to_olga] == [f"/connectors/accounts/{x.id}"]
    to_it = db.scalar(select(Notification).where(Notification.kind == "connectors.attest_due",
                                                 Notification.user_id == world.it.id))
    assert to_it is not None and to_it.link == f"/connectors/accounts/{yt.id}"  # no owner: IT is told
    assert attestations.remind_due(db, now=now + timedelta(days=1)) == 0
    with app.test_request_context():
        attestations.attest(db, actor=world.olga, account=x, members_text="sam@acme.test, publisher", now=now)
        db.commit()
    assert attestations.remind_due(db, now=now + timedelta(days=8)) == 1  # only YouTube is still due


def test_the_cli_answers_who_held_it_on_a_day(app: Any, db: Any, world: Any, settings: Settings,
                                              platforms: Platforms) -> None:
    _two_syncs(db, settings, platforms)
    runner = app.test_cli_runner()
    then = runner.invoke(cli, ["connectors", "members", "acme-fb", "--at", "2026-03-03"])
    assert then.exit_code == 0, then.output
    assert "Sam Staff [101]: CREATE_CONTENT, MANAGE" in then.output and "Dora Departed [102]" in then.output
    now = runner.invoke(cli, ["connectors", "members", str(world.page.id)])
    assert now.exit_code == 0 and "[101]" not in now.output and "first seen 2026-03-10" in now.output
    unknown = runner.invoke(cli, ["connectors", "members", "acme-li", "--at", "2026-03-04T00:00:00+00:00"])
    assert "urn:li:person:zed (not known to govern)" in unknown.output
    before = runner.invoke(cli, ["connectors", "members", "acme-fb", "--at", "2026-03-02"])
    assert before.exit_code == 0 and "nothing was known" in before.output
    assert runner.invoke(cli, ["connectors", "members", "acme-fb", "--at", "2026-03-05T10:00"]).exit_code == 2
    assert runner.invoke(cli, ["connectors", "members", "acme-fb", "--at", "soon"]).exit_code == 2
    assert runner.invoke(cli, ["connectors", "members", "nobody"]).exit_code == 1
