"""The web import's mapping step: every column with a field or Ignore, remembered (audited) for the
next file with the same columns; bad mappings are clear errors; vendor files and broken CSV."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.directory.models import ImportMapping
from tests.directory.helpers import count_people, person, signed_in
from tests.factories import post

FILES = Path(__file__).parent / "files"
ODD = b"Badge,Person,Mail,Team,Role,Notes\r\nB-7,Ada Lovelace,ada@acme.example,Comms,Lead,likes tea\r\n"
#: The same columns in another order, another person.
ODD_AGAIN = b"Mail,Person,Badge,Role,Team,Notes\r\nbob@acme.example,Bob Stone,B-8,Editor,Comms,\r\n"
MAPPING = {"column-0": "employee_id", "column-1": "full_name", "column-2": "email", "column-3": "department",
           "column-4": "title", "column-5": "ignore"}


def _upload(client, content, filename="hr.csv"):
    return post(client, "/people/import", {"file": (io.BytesIO(content), filename)}, token_page="/people/import",
                content_type="multipart/form-data")


def _map(client, choices):
    return post(client, "/people/import/mapping", choices, token_page="/people/import")


def _apply(client):
    return post(client, "/people/import/apply", {}, token_page="/people/import")


def _selected(page, index):
    select_html = re.search(rf'<select id="column-{index}".*?</select>', page, re.S).group(0)
    return re.search(r'<option value="([a-z_]+)" selected>', select_html).group(1)


def test_the_workday_export_imports_as_it_is_in_the_web(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    page = _upload(client, (FILES / "workday.csv").read_bytes(), "workday.csv").get_data(as_text=True)
    assert "Import 4 new and 0 updated" in page and "Columns ignored" not in page
    assert _selected(page, 3) == "department" and _selected(page, 4) == "title"
    assert _apply(client).status_code == 302
    camille = person(db, "camille.durand@acme.example")
    assert (camille.department, camille.title) == ("Communications (Camille Durand)", "Head of Communications")


def test_ignored_columns_are_listed_with_why(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    page = _upload(client, (FILES / "adp.csv").read_bytes(), "adp.csv").get_data(as_text=True)
    assert "Import 3 new" in page
    assert "<code>Reports To Legal Name</code> <span class=\"muted small\">(a manager&#39;s name or id" in page
    assert "<code>Personal Contact: Personal Email</code>" in page and _selected(page, 6) == "ignore"


def test_map_columns_then_remember_the_mapping_for_the_next_file(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    people = count_people(db)
    first = _upload(client, ODD).get_data(as_text=True)
    assert "no email column" in first and "/people/import/apply" not in first
    assert all(f'id="column-{i}"' in first for i in range(6)) and _selected(first, 0) == "ignore"
    mapped = _map(client, MAPPING)
    page = mapped.get_data(as_text=True)
    assert mapped.status_code == 200 and "Import 1 new and 0 updated" in page, page
    assert "<code>Notes</code> <span class=\"muted small\">(mapped to ignore)" in page
    saved = db.scalars(select(ImportMapping)).one()
    assert json.loads(saved.mapping_json) == {"badge": "employee_id", "person": "full_name", "mail": "email",
                                               "team": "department", "role": "title", "notes": "ignore"}
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "directory.import_mapping_saved")).one()
    details = json.loads(event.details_json)
    assert event.actor_user_id is not None and details["ignored"] == ["notes"] and details["mapped"]["badge"] == "employee_id"
    assert _apply(client).status_code == 302
    ada = person(db, "ada@acme.example")
    assert (ada.employee_id, ada.department, ada.title) == ("B-7", "Comms", "Lead")
    # The next file with the same columns (in another order) is read with the saved mapping at once.
    again = _upload(client, ODD_AGAIN).get_data(as_text=True)
    assert "Import 1 new and 0 updated" in again and "mapped for an earlier file" in again
    assert _selected(again, 0) == "email" and _selected(again, 5) == "ignore"
    assert _apply(client).status_code == 302
    bob = person(db, "bob@acme.example")
    assert (bob.employee_id, bob.department, bob.title) == ("B-8", "Comms", "Editor")
    assert count_people(db) == people + 2
    # Mapping the same way again changes nothing and writes no event.
    _upload(client, ODD)
    _map(client, MAPPING)
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "directory.import_mapping_saved")) == 1


@pytest.mark.parametrize(("change", "expected"), [
    ({"column-2": "full_name"}, "both mapped to Full name"),
    ({"column-2": "shoe_size"}, "choose what the column &#39;Mail&#39; is"),
    ({"column-2": "ignore"}, "no email column"),
    ({"column-1": "ignore"}, "no name column"),
])
def test_a_bad_mapping_is_a_clear_error_and_nothing_is_saved(app, db, kit, change, expected):
    _, client = signed_in(app, db, kit, "hr")
    _upload(client, ODD)
    response = _map(client, {**MAPPING, **change})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and expected in page and "The mapping cannot be used" in page
    assert db.scalar(select(func.count()).select_from(ImportMapping)) == 0
    # The choices are kept on the page, and the upload still waits for a good mapping.
    assert _selected(page, 3) == "department"
    assert "Import 1 new" in _map(client, MAPPING).get_data(as_text=True)


def test_the_mapping_step_needs_a_previewed_file_and_the_import_permission(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    response = _map(client, MAPPING)
    assert response.status_code == 302
    _, viewer = signed_in(app, db, kit, "manager")
    assert post(viewer, "/people/import/mapping", MAPPING, token_page="/people/").status_code == 403


def test_a_mapping_changed_since_the_preview_stops_the_import(app, db, kit):
    _, hr = signed_in(app, db, kit, "hr")
    _, other = signed_in(app, db, kit, "hr")
    _upload(hr, ODD)
    _map(hr, MAPPING)
    _upload(other, ODD)
    _map(other, {**MAPPING, "column-4": "ignore"})
    people = count_people(db)
    response = _apply(hr)
    assert response.status_code == 302 and count_people(db) == people
    assert "mapping of these columns changed" in hr.get("/people/import").get_data(as_text=True)


def test_a_broken_csv_is_reported_with_its_line(app, db, kit):
    _, client = signed_in(app, db, kit, "hr")
    content = b"Email,Name\r\na@acme.example,Ann\r\nb@acme.example,\"Ben\r\nc@acme.example,Cee\r\n"
    response = _upload(client, content)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "never closed" in page and "name column" not in page
    assert re.search(r"<td>3</td><td><code>file</code></td><td>this line cannot be read: a quote", page)
