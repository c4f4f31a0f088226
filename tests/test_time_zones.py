"""Times show in the reader's zone (their own setting, else GOVERN_TIME_ZONE), with the zone named."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth.models import User
from govern.config import ConfigError
from tests.factories import login, make_account, make_grant, make_person, make_user, post
from tests.support import app_config

#: Every <time> element a page shows, with its attributes and text.
TIME_RE = re.compile(r"<time ([^>]*)>([^<]*)</time>")
#: A time of day (10:15) written outside a <time> element: a time that escaped the filter.
BARE_CLOCK_RE = re.compile(r"\b\d{1,2}:\d{2}\b")
#: An ISO date written outside a <time> element.
BARE_ISO_DAY_RE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _set_zone(db, user_id: int, name: str | None) -> None:
    db.get(User, user_id).time_zone = name
    db.commit()


def test_a_user_in_paris_sees_paris_time_with_the_zone_named(app, db, kit, client):
    admin = make_user(db, kit, roles=("admin",))
    _set_zone(db, admin.id, "Europe/Paris")
    person = make_person(db)
    user = make_user(db, kit)
    db.get(User, user.id).last_login_at = datetime(2026, 12, 4, 9, 15, tzinfo=UTC)
    db.commit()
    login(client, db, admin)

    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)

    assert '<time datetime="2026-12-04T09:15:00Z" title="4 Dec 2026, 09:15 UTC">4 Dec 2026, 10:15 CET</time>' in page
    assert person  # a directory with someone else in it


def test_summer_time_and_zones_without_an_abbreviation(app):
    with app.test_request_context():
        from govern import timezones

        summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        assert timezones.format_moment(summer, timezones.zone("Europe/Paris")) == "1 Jul 2026, 14:00 CEST"
        # Asia/Dubai's abbreviation is "+04": the IANA name says more.
        assert timezones.format_moment(summer, timezones.zone("Asia/Dubai")) == "1 Jul 2026, 16:00 Asia/Dubai"
        assert timezones.format_moment(summer, timezones.zone("UTC"), "seconds") == "1 Jul 2026, 12:00:00 UTC"


@pytest.mark.parametrize("app_overrides", [{"TIME_ZONE": "America/New_York"}])
def test_the_organisation_zone_applies_to_users_without_their_own(app, db, kit, client, app_overrides):
    admin = make_user(db, kit, roles=("admin",))
    user = make_user(db, kit)
    db.get(User, user.id).last_login_at = datetime(2026, 12, 4, 9, 15, tzinfo=UTC)
    db.commit()
    login(client, db, admin)

    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert ">4 Dec 2026, 04:15 EST</time>" in page

    # Their own setting wins over the organisation's.
    _set_zone(db, admin.id, "Asia/Tokyo")
    page = client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert ">4 Dec 2026, 18:15 JST</time>" in page


def test_an_unknown_organisation_zone_is_a_config_error(tmp_path, database_url):
    from govern.app import create_app

    with pytest.raises(ConfigError, match="GOVERN_TIME_ZONE"):
        create_app(app_config(tmp_path, database_url, TIME_ZONE="Europe/Atlantis"))


def test_a_user_chooses_their_zone_on_their_account_page(app, db, kit, client):
    who = make_user(db, kit)
    login(client, db, who)
    page = client.get("/account").get_data(as_text=True)
    assert 'id="time-zone-names"' in page and '<option value="Europe/Paris">' in page

    response = post(client, "/account/time-zone", {"time_zone": "Europe/Paris"})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(User, who.id).time_zone == "Europe/Paris"
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "users.time_zone_changed")).one()
    assert event.target_id == str(who.id) and event.actor_user_id == who.id
    assert json.loads(event.details_json) == {"old": None, "new": "Europe/Paris"}
    assert re.search(r" CES?T</time>", client.get("/account").get_data(as_text=True))

    # Empty: back to the organisation's zone.
    assert post(client, "/account/time-zone", {"time_zone": ""}).status_code == 302
    db.expire_all()
    assert db.get(User, who.id).time_zone is None


@pytest.mark.parametrize("bad", ["Europe/Atlantis", "../../etc/passwd", "localtime", "x" * 65])
def test_an_unknown_zone_is_a_form_error_and_changes_nothing(app, db, kit, client, bad):
    who = make_user(db, kit)
    login(client, db, who)
    response = post(client, "/account/time-zone", {"time_zone": bad})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert 'class="error"' in body
    db.expire_all()
    assert db.get(User, who.id).time_zone is None
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "users.time_zone_changed")).first() is None


def test_dates_the_user_types_are_days_in_their_zone(app, db, kit, client):
    """"Until 30 November" ends at the end of that day where the user is, and reads back as that day."""
    manager = make_user(db, kit, roles=("admin",))
    _set_zone(db, manager.id, "Asia/Tokyo")
    with app.test_request_context():
        from flask_login import login_user

        from govern.web import end_of_local_day, from_local, to_local

        login_user(db.get(User, manager.id))
        end = end_of_local_day(date(2026, 11, 30))
        assert end == datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC)
        typed = datetime(2026, 12, 4, 9, 0)
        assert from_local(typed) == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
        assert to_local(from_local(typed)) == typed


#: Paris in winter and in summer: the tests run on any day of the year.
PARIS = ("CET", "CEST")


def _assert_every_time_names_its_zone(html: str, zone_labels: tuple[str, ...], where: str) -> int:
    times = TIME_RE.findall(html)
    for attributes, text in times:
        assert 'datetime="' in attributes, (where, attributes)
        if ":" in text:  # a time of day: the zone is named next to it
            assert text.rsplit(" ", 1)[-1] in zone_labels, (where, text)
        else:  # a day alone: the title names the time and its zone
            title = re.search(r'title="([^"]*)"', attributes)
            assert title and title.group(1).rsplit(" ", 1)[-1] in zone_labels, (where, attributes, text)
    # No time of day and no ISO date outside the filter's <time> elements (scripts and styles aside).
    visible = TIME_RE.sub("", re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S))
    visible = re.sub(r'<[^>]+>', " ", visible)
    assert not BARE_CLOCK_RE.search(visible), (where, BARE_CLOCK_RE.search(visible))
    assert not BARE_ISO_DAY_RE.search(visible), (where, BARE_ISO_DAY_RE.search(visible))
    return len(times)


def test_every_time_on_a_sample_of_pages_names_its_zone(app, db, kit, client):
    from govern import audit
    from govern.grants.models import Grant

    admin = make_user(db, kit, roles=("admin", "hr", "auditor"))
    _set_zone(db, admin.id, "Europe/Paris")
    person = make_person(db, start_date=date(2026, 1, 5))
    account = make_account(db)
    grant = make_grant(db, person, account)
    db.get(Grant, grant.id).expires_at = datetime(2027, 1, 31, 22, 59, 59, tzinfo=UTC)
    audit.record(db, "directory.person_updated", target_type="person", target_id=person.id, details={})
    db.commit()
    login(client, db, admin)

    pages = ["/account", f"/admin/users/{admin.id}", "/admin/users/", "/audit/", f"/people/{person.id}",
             f"/accounts/{account.id}", "/grants/", "/notifications/", "/jobs/", "/policies/", "/reviews/"]
    shown = 0
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        shown += _assert_every_time_names_its_zone(response.get_data(as_text=True), PARIS, path)
    assert shown >= 8  # the sample does show times


def test_the_audit_filter_takes_days_in_the_readers_zone_even_at_the_ends_of_the_calendar(app, db, kit, client):
    import time_machine

    from govern import audit

    auditor = make_user(db, kit, roles=("auditor",))
    _set_zone(db, auditor.id, "Asia/Tokyo")
    with time_machine.travel(datetime(2026, 12, 4, 20, 0, tzinfo=UTC)):  # 5 Dec, 05:00 in Tokyo
        audit.record(db, "test.zoned", target_type="person", target_id=1)
        db.commit()
    login(client, db, auditor)
    assert "test.zoned</code>" in client.get("/audit/?action=test.zoned&since=2026-12-05&until=2026-12-05").get_data(as_text=True)
    assert "test.zoned</code>" not in client.get("/audit/?action=test.zoned&since=2026-12-04&until=2026-12-04").get_data(as_text=True)
    for edge in ("0001-01-01", "9999-12-31"):
        assert client.get(f"/audit/?since={edge}&until={edge}").status_code == 200
    _set_zone(db, auditor.id, "America/New_York")
    for edge in ("0001-01-01", "9999-12-31"):
        assert client.get(f"/audit/?since={edge}&until={edge}").status_code == 200


def test_utc_works_without_the_tz_database(monkeypatch):
    """A system without /usr/share/zoneinfo or the tzdata package still shows times, in UTC."""
    from zoneinfo import ZoneInfoNotFoundError

    from govern import timezones

    def missing(name):
        raise ZoneInfoNotFoundError(name)

    monkeypatch.setattr(timezones, "ZoneInfo", missing)
    timezones.zone.cache_clear()
    try:
        tz = timezones.zone("UTC")
        assert timezones.zone_key(tz) == "UTC"
        assert timezones.format_moment(datetime(2026, 12, 4, 9, 15, tzinfo=UTC), tz) == "4 Dec 2026, 09:15 UTC"
    finally:
        timezones.zone.cache_clear()
