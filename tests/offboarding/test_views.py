"""Offboarding pages: who may do what, forms, the checklist flow and the evidence downloads."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

from sqlalchemy import select

from govern.db import utcnow
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.reading import items_of
from govern.offboarding.scheduling import schedule_offboarding
from tests.factories import csrf_token, login
from tests.offboarding.helpers import SETTINGS


def _client(app, db, company, who):
    client = app.test_client()
    login(client, db, company.users[who])
    return client


def _post(client, path, data=None):
    return client.post(path, data={"csrf_token": csrf_token(client, "/offboarding/"), **(data or {})})


def _offboarding(db):
    return db.scalars(select(Offboarding)).one()


def test_hr_schedules_edits_and_cancels_through_the_pages(app, db, company):
    hr = _client(app, db, company, "hr")
    page = hr.get(f"/offboarding/new?person={company.person.email}")
    assert page.status_code == 200 and company.person.email in page.get_data(as_text=True)
    when = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = _post(hr, "/offboarding/new", {"person": company.person.email, "effective_at": when, "note": "last day"})
    assert response.status_code == 302
    off = _offboarding(db)
    assert off.status == "scheduled" and off.effective_at.strftime("%Y-%m-%dT%H:%M") == when
    detail = hr.get(f"/offboarding/{off.id}").get_data(as_text=True)
    assert "What happens at" in detail and "LinkedIn Super admin" in detail and "Successors" in detail
    assert "Accounts below their minimum" in detail
    assert re.search(r"\(in \d+ h \d+ min\)", detail)  # a start to come, not "... min left"
    listed = hr.get("/offboarding/").get_data(as_text=True)
    assert re.search(r"starts in \d+ h \d+ min<", listed), listed
    later = (utcnow() + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    assert _post(hr, f"/offboarding/{off.id}/edit", {"effective_at": later, "deadline_hours": "12"}).status_code == 302
    db.refresh(off)
    assert off.deadline_hours == 12
    assert _post(hr, f"/offboarding/{off.id}/cancel", {"reason": ""}).status_code == 302
    db.refresh(off)
    assert off.status == "scheduled"
    assert _post(hr, f"/offboarding/{off.id}/cancel", {"reason": "stays"}).status_code == 302
    db.refresh(off)
    assert off.status == "cancelled"


def test_bad_start_input_is_a_form_error_not_a_500(app, db, company):
    hr = _client(app, db, company, "hr")
    for data in ({"person": "nobody@example.com", "immediate": "y"},
                 {"person": company.person.email},
                 {"person": company.person.email, "effective_at": "2001-01-01T10:00"},
                 {"person": company.person.email, "immediate": "y", "deadline_hours": "0"}):
        response = _post(hr, "/offboarding/new", data)
        assert response.status_code == 200, data
        assert 'class="error"' in response.get_data(as_text=True)
    assert db.scalar(select(Offboarding.id)) is None


def test_the_whole_checklist_through_the_pages(app, db, company):
    hr = _client(app, db, company, "hr")
    assert _post(hr, "/offboarding/new", {"person": company.person.email, "immediate": "y"}).status_code == 302
    off = _offboarding(db)
    assert off.status == "in_progress"
    items = db.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == off.id)).all()
    # IT closes the removals (a note is required).
    it = _client(app, db, company, "it")
    page = it.get(f"/offboarding/{off.id}").get_data(as_text=True)
    assert "Mark done" in page and ">Skip<" not in page
    removal = next(i for i in items if i.kind == "platform_removal")
    assert _post(it, f"/offboarding/items/{removal.id}/done", {"note": ""}).status_code == 302
    db.refresh(removal)
    assert removal.status == "open"
    for item in items:
        if item.kind == "platform_removal":
            assert _post(it, f"/offboarding/items/{item.id}/done", {"note": "removed on the platform"}).status_code == 302
    # IT may not close the manager's items; the manager picks successors and closes them.
    successor_items = [i for i in items if i.kind == "successor"]
    assert _post(it, f"/offboarding/items/{successor_items[0].id}/done", {"note": "x"}).status_code == 302
    db.refresh(successor_items[0])
    assert successor_items[0].status == "open"
    manager = _client(app, db, company, "max")
    assert manager.get("/offboarding/").get_data(as_text=True).count(company.person.full_name) >= 1
    for item in successor_items:
        assert _post(manager, f"/offboarding/{off.id}/successor", {"account_id": str(item.account_id), "successor": company.sam.email}).status_code == 302
        assert _post(manager, f"/offboarding/items/{item.id}/done", {"note": "handed over"}).status_code == 302
    db.refresh(off)
    assert off.status == "completed"
    db.refresh(company.linkedin)
    assert company.linkedin.business_owner_id == company.sam.id and company.linkedin.crisis_contact_id == company.sam.id
    # HR sees it complete; the auditor downloads the evidence.
    assert "completed" in hr.get(f"/offboarding/{off.id}").get_data(as_text=True)
    auditor = _client(app, db, company, "auditor")
    html = auditor.get(f"/offboarding/{off.id}/evidence")
    assert html.status_code == 200 and "removed on the platform" in html.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(auditor.get(f"/offboarding/{off.id}/evidence.csv").get_data(as_text=True))))
    assert rows[0][:3] == ["item_id", "kind", "title"] and len([r for r in rows if r and r[0].isdigit()]) == 5
    data = json.loads(auditor.get(f"/offboarding/{off.id}/evidence.json").get_data(as_text=True))
    assert data["offboarding"]["status"] == "completed" and all(i["audit_event_ids"] for i in data["items"])
    assert {g["status"] for g in data["grants_after"]} == {"revoked", "rejected"}


def test_auditors_read_but_never_change(app, db, company):
    off = schedule_offboarding(db, actor=company.hr, person=company.person, effective_at=None, settings=SETTINGS)
    db.commit()
    auditor = _client(app, db, company, "auditor")
    assert auditor.get(f"/offboarding/{off.id}").status_code == 200
    item = items_of(db, off)[0]
    assert _post(auditor, f"/offboarding/items/{item.id}/done", {"note": "x"}).status_code == 403
    assert _post(auditor, "/offboarding/new", {"person": company.sam.email, "immediate": "y"}).status_code == 403
    assert _post(auditor, f"/offboarding/{off.id}/items", {"title": "x", "owner": "hr"}).status_code == 403


def test_a_manager_sees_only_their_reports_offboardings(app, db, company):
    off = schedule_offboarding(db, actor=company.hr, person=company.person, effective_at=None, settings=SETTINGS)
    db.commit()
    olga = _client(app, db, company, "olga")
    assert olga.get(f"/offboarding/{off.id}").status_code == 404
    assert olga.get(f"/offboarding/{off.id}/evidence").status_code == 403
    item = items_of(db, off)[0]
    assert _post(olga, f"/offboarding/items/{item.id}/done", {"note": "x"}).status_code == 404
    assert olga.get("/offboarding/999999").status_code == 404


def test_hr_home_lists_open_offboardings_with_progress_and_blockers(app, db, company):
    schedule_offboarding(db, actor=company.hr, person=company.person, effective_at=None, settings=SETTINGS)
    db.commit()
    page = _client(app, db, company, "hr").get("/").get_data(as_text=True)
    assert "Open offboardings (1)" in page and company.person.full_name in page
    assert "0%" in page and "3 for IT, 2 for the manager" in page and "min left" in page


def test_skip_is_admin_only_and_hr_adds_items(app, db, company):
    off = schedule_offboarding(db, actor=company.hr, person=company.person, effective_at=None, settings=SETTINGS)
    db.commit()
    hr = _client(app, db, company, "hr")
    assert _post(hr, f"/offboarding/{off.id}/items", {"title": "Collect the laptop", "owner": "it"}).status_code == 302
    item = db.scalars(select(OffboardingItem).where(OffboardingItem.kind == "manual")).one()
    assert _post(hr, f"/offboarding/items/{item.id}/skip", {"reason": "n/a"}).status_code == 403
    admin = _client(app, db, company, "admin")
    assert _post(admin, f"/offboarding/items/{item.id}/skip", {"reason": ""}).status_code == 302
    db.refresh(item)
    assert item.status == "open"
    assert _post(admin, f"/offboarding/items/{item.id}/skip", {"reason": "laptop was never issued"}).status_code == 302
    db.refresh(item)
    assert item.status == "skipped" and item.evidence_note == "laptop was never issued"


def test_rehire_from_the_person_page(app, db, company):
    off = schedule_offboarding(db, actor=company.hr, person=company.stranger, effective_at=None, settings=SETTINGS)
    db.commit()
    assert off.status == "completed"
    hr = _client(app, db, company, "hr")
    assert "Rehire" in hr.get(f"/people/{company.stranger.id}").get_data(as_text=True)
    assert _post(hr, f"/offboarding/rehire/{company.stranger.id}").status_code == 302
    db.refresh(company.stranger)
    assert company.stranger.status == "active"


def test_a_double_submitted_start_makes_one_offboarding(app, db, company):
    hr = _client(app, db, company, "hr")
    token = csrf_token(hr, "/offboarding/new")
    data = {"csrf_token": token, "person": company.person.email, "immediate": "y"}
    assert hr.post("/offboarding/new", data=data).status_code == 302
    again = hr.post("/offboarding/new", data=data)
    assert again.status_code == 200 and "already has an open offboarding" in again.get_data(as_text=True)
    assert len(db.scalars(select(Offboarding)).all()) == 1
    assert len(db.scalars(select(OffboardingItem)).all()) == 5


def test_hr_in_paris_types_and_reads_paris_times(app, db, company):
    """The effective time HR types is in their zone, stored in UTC, and the edit form shows it back in their zone."""
    from zoneinfo import ZoneInfo

    from govern.auth.models import User

    db.get(User, company.users["hr"].id).time_zone = "Europe/Paris"
    db.commit()
    hr = _client(app, db, company, "hr")
    page = hr.get("/offboarding/new").get_data(as_text=True)
    assert "in Europe/Paris" in page
    local = (utcnow() + timedelta(days=2)).astimezone(ZoneInfo("Europe/Paris")).replace(second=0, microsecond=0)
    typed = local.strftime("%Y-%m-%dT%H:%M")
    assert _post(hr, "/offboarding/new", {"person": company.person.email, "effective_at": typed}).status_code == 302
    off = _offboarding(db)
    assert off.effective_at == local  # the same instant, stored in UTC
    assert off.effective_at.utcoffset() == timedelta(0)
    edit = hr.get(f"/offboarding/{off.id}/edit").get_data(as_text=True)
    assert f'value="{typed}"' in edit
    # The evidence page names the zone of every time it shows, its report's times included.
    from tests.test_time_zones import PARIS, _assert_every_time_names_its_zone

    evidence = hr.get(f"/offboarding/{off.id}/evidence")
    assert evidence.status_code == 200
    assert _assert_every_time_names_its_zone(evidence.get_data(as_text=True), PARIS, "evidence") >= 1
