"""People: list, read, add, edit; their grants, exposures and offboardings are under their own resources."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Response, current_app
from flask_login import current_user
from sqlalchemy import select

from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created, require_match
from govern.api.schemas import PeopleQuery, PersonCreate, PersonList, PersonOut, PersonUpdate
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session
from govern.directory import services as directory
from govern.directory.models import Person
from govern.errors import NotFoundError
from govern.offboarding import lifecycle
from govern.offboarding.settings import settings_from

TAG = ["people"]
_GET = {"GetPerson": Link("getPerson", {"person_id": "$response.body#/id"}),
        "UpdatePerson": Link("updatePerson", {"person_id": "$response.body#/id"}),
        "PersonGrants": Link("listPersonGrants", {"person_id": "$response.body#/id"})}


@bp.get("/people")
@endpoint(operation_id="listPeople", permission_name="directory.read", scope="people:read", tags=TAG,
          query=PeopleQuery, responses={200: PersonList},
          links={"FirstPerson": Link("getPerson", {"person_id": "$response.body#/items/0/id"}),
                 "FirstPersonGrants": Link("listPersonGrants", {"person_id": "$response.body#/items/0/id"}),
                 "FirstPersonOffboardings": Link("listPersonOffboardings", {"person_id": "$response.body#/items/0/id"})})
def list_people() -> Response:
    """People in your scope (a manager: their reports), in id order."""
    args = query_of(PeopleQuery)
    flt = directory.PersonFilter(q=args.q, department=args.department, status=args.status, manager_id=args.manager_id)
    statement = directory.people_query(current_user, flt).order_by(None)
    page = cursors.read_slice(get_session(), statement, Person.id, cursor=args.cursor, limit=args.limit)
    items = [PersonOut.model_validate(p) for p in page.rows]
    return answer_page(PersonList, items, page.next_cursor)


@bp.get("/people/<int:person_id>")
@endpoint(operation_id="getPerson", permission_name="directory.read", scope="people:read", tags=TAG,
          responses={200: PersonOut, 404: None})
def get_person(person_id: int) -> Response:
    """One person; the ETag is what an update's If-Match names."""
    person = get_session().get(Person, person_id)  # the answer names the manager by id: no join
    if person is None or not directory.can_see_person(current_user, person):
        raise NotFoundError("No such person.")
    return answer(PersonOut.model_validate(person), tagged=True)


@bp.post("/people")
@endpoint(operation_id="createPerson", permission_name="directory.manage", scope="people:write", tags=TAG,
          body=PersonCreate, responses={201: PersonOut, 409: None}, creates=True, links=_GET)
def create_person() -> Response:
    """Add a person (an end date in the past offboards them at once, as the form does)."""
    data = body_of(PersonCreate)

    def change() -> tuple[PersonOut, str]:
        person, _ = lifecycle.create_person(get_session(), actor=current_user, data=directory.PersonInput(
            full_name=data.full_name, email=data.email, employee_id=data.employee_id or "",
            department=data.department or "", title=data.title or "", manager=data.manager or "", status="active",
            start_date=data.start_date, end_date=data.end_date), settings=settings_from(current_app.config))
        get_session().flush()
        return PersonOut.model_validate(person), f"/api/v1/people/{person.id}"

    return created(change)


@bp.patch("/people/<int:person_id>")
@endpoint(operation_id="updatePerson", permission_name="directory.manage", scope="people:write", tags=TAG,
          body=PersonUpdate, responses={200: PersonOut, 404: None, 409: None}, conditional=True)
def update_person(person_id: int) -> Response:
    """Change the fields sent; the rest stay. Send If-Match with the ETag you read."""
    session = get_session()
    person = directory.get_visible_person(session, current_user, person_id)
    require_match(PersonOut.model_validate(person))
    data = body_of(PersonUpdate)
    manager = session.scalar(select(Person.email).where(Person.id == person.manager_id)) if person.manager_id else ""
    current = directory.PersonInput(full_name=person.full_name, email=person.email,
                                    employee_id=person.employee_id or "", department=person.department or "",
                                    title=person.title or "", manager=manager or "", status=person.status,
                                    start_date=person.start_date, end_date=person.end_date)
    sent: dict[str, Any] = data.model_dump(exclude_unset=True)
    for name in ("employee_id", "department", "title", "manager", "full_name", "email"):
        if name in sent and sent[name] is None:
            sent[name] = ""  # null clears a text field, as an empty form field does
    new = replace(current, **sent)
    lifecycle.update_person(session, actor=current_user, person=person, data=new,
                            settings=settings_from(current_app.config))
    return changed(lambda: PersonOut.model_validate(person))
