"""Offboardings: start (now or scheduled), status with checklist and progress, complete an item, evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Response, current_app
from flask_login import current_user
from pydantic import Field
from sqlalchemy import or_, select

from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created
from govern.api.schemas import Id, Moment, Out, Paging, Strict, Text
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session
from govern.directory.models import Person
from govern.directory.services import get_visible_person
from govern.errors import NotFoundError
from govern.offboarding import evidence as offboarding_evidence
from govern.offboarding.checklist import complete_item, get_item, sync_offboarding
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.permissions import may_view, sees_all
from govern.offboarding.reading import items_of, progress_of
from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.settings import settings_from

TAG = ["offboardings"]


class ProgressOut(Out):
    total: int
    open: int
    done: int
    skipped: int
    percent: int


class ItemOut(Out):
    id: int
    kind: str
    title: str
    owner: str
    owner_person_id: int | None
    account_id: int | None
    status: str
    due_at: datetime | None
    done_at: datetime | None
    done_by_id: int | None
    evidence_note: str | None


class OffboardingOut(Out):
    id: int
    person_id: int
    kind: str
    status: str
    origin: str
    effective_at: datetime
    due_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    note: str | None


class OffboardingStatus(OffboardingOut):
    progress: ProgressOut
    items: list[ItemOut]


class OffboardingList(Out):
    items: list[OffboardingOut]
    next: str | None


class OffboardingsQuery(Paging):
    status: Literal["scheduled", "in_progress", "completed", "cancelled"] | None = None
    person_id: Id | None = None


class OffboardingStart(Strict):
    person_id: Id
    effective_at: Moment | None = Field(None, description="When it takes effect, with a time zone; leave out to offboard now.")
    deadline_hours: int | None = Field(None, ge=1, le=24 * 30)
    note: Text | None = None


class ItemDone(Strict):
    note: Text = Field("", description="What was done: kept as the item's evidence.")


class Evidence(Out):
    """The evidence report, as the page's JSON download."""

    offboarding: dict[str, Any]
    items: list[dict[str, Any]]
    grants_before: list[dict[str, Any]]
    grants_after: list[dict[str, Any]]
    exposures: list[dict[str, Any]]
    rotations: list[dict[str, Any]]
    generated_at: str


def _visible(offboarding_id: int) -> Offboarding:
    session = get_session()
    offboarding = session.get(Offboarding, offboarding_id)
    if offboarding is None or not may_view(session, current_user, offboarding):
        raise NotFoundError("No such offboarding.")
    return offboarding


def _status(offboarding: Offboarding) -> OffboardingStatus:
    session = get_session()
    progress = progress_of(session, [offboarding.id])[offboarding.id]
    return OffboardingStatus(
        **OffboardingOut.model_validate(offboarding).model_dump(),
        progress=ProgressOut(total=progress.total, open=progress.open, done=progress.done, skipped=progress.skipped,
                             percent=progress.percent),
        items=[ItemOut.model_validate(i) for i in items_of(session, offboarding)])


_LINKS = {"GetOffboarding": Link("getOffboarding", {"offboarding_id": "$response.body#/id"}),
          "OffboardingEvidence": Link("getOffboardingEvidence", {"offboarding_id": "$response.body#/id"})}


@bp.get("/offboardings")
@endpoint(operation_id="listOffboardings", permission_name="offboarding.read", scope="offboarding:read", tags=TAG,
          query=OffboardingsQuery, responses={200: OffboardingList},
          links={"FirstOffboarding": Link("getOffboarding", {"offboarding_id": "$response.body#/items/0/id"}),
                 "FirstEvidence": Link("getOffboardingEvidence", {"offboarding_id": "$response.body#/items/0/id"})})
def list_offboardings() -> Response:
    """Offboardings you may see (a manager: of their reports, or with items they own), in id order."""
    args = query_of(OffboardingsQuery)
    statement = select(Offboarding)
    if not sees_all(current_user):
        person_id = current_user.person_id
        owned = select(OffboardingItem.offboarding_id).where(OffboardingItem.owner_person_id == person_id)
        statement = statement.join(Person, Person.id == Offboarding.person_id).where(
            or_(Person.manager_id == person_id, Offboarding.id.in_(owned)))
    if args.status:
        statement = statement.where(Offboarding.status == args.status)
    if args.person_id:
        statement = statement.where(Offboarding.person_id == args.person_id)
    page = cursors.read_slice(get_session(), statement, Offboarding.id, cursor=args.cursor, limit=args.limit)
    return answer_page(OffboardingList, [OffboardingOut.model_validate(o) for o in page.rows], page.next_cursor)


@bp.get("/people/<int:person_id>/offboardings")
@endpoint(operation_id="listPersonOffboardings", permission_name="offboarding.read", scope="offboarding:read",
          tags=TAG, responses={200: OffboardingList, 404: None})
def person_offboardings(person_id: int) -> Response:
    """A person's offboardings (any you may see), oldest first."""
    session = get_session()
    person = get_visible_person(session, current_user, person_id)
    rows = [o for o in session.scalars(select(Offboarding).where(Offboarding.person_id == person.id)
                                       .order_by(Offboarding.id)) if may_view(session, current_user, o)]
    return answer(OffboardingList(items=[OffboardingOut.model_validate(o) for o in rows], next=None))


@bp.post("/offboardings")
@endpoint(operation_id="startOffboarding", permission_name="offboarding.manage", scope="offboarding:write", tags=TAG,
          body=OffboardingStart, responses={201: OffboardingStatus, 404: None, 409: None}, creates=True, links=_LINKS)
def start() -> Response:
    """Offboard a person now (access ends in this request) or schedule it for ``effective_at``."""
    data = body_of(OffboardingStart)

    def change() -> tuple[OffboardingStatus, str]:
        session = get_session()
        person = get_visible_person(session, current_user, data.person_id)
        offboarding = schedule_offboarding(session, actor=current_user, person=person, effective_at=data.effective_at,
                                           settings=settings_from(current_app.config),
                                           deadline_hours=data.deadline_hours, note=data.note)
        session.flush()
        return _status(offboarding), f"/api/v1/offboardings/{offboarding.id}"

    return created(change)


@bp.get("/offboardings/<int:offboarding_id>")
@endpoint(operation_id="getOffboarding", permission_name="offboarding.read", scope="offboarding:read", tags=TAG,
          responses={200: OffboardingStatus, 404: None})
def get_offboarding(offboarding_id: int) -> Response:
    """How far an offboarding is: its checklist items and their progress."""
    session = get_session()
    offboarding = _visible(offboarding_id)
    if offboarding.status == "in_progress" and sync_offboarding(session, offboarding):
        session.commit()
    return answer(_status(offboarding), tagged=True)


@bp.post("/offboardings/<int:offboarding_id>/items/<int:item_id>/complete")
@endpoint(operation_id="completeOffboardingItem", permission_name="offboarding.work", scope="offboarding:write",
          tags=TAG, body=ItemDone, responses={200: OffboardingStatus, 403: None, 404: None, 409: None})
def complete(offboarding_id: int, item_id: int) -> Response:
    """Mark a checklist item done, with what was done as its evidence (same rules as the page)."""
    session = get_session()
    offboarding = _visible(offboarding_id)
    item = get_item(session, item_id)
    if item.offboarding_id != offboarding.id:
        raise NotFoundError("No such item in this offboarding.")
    complete_item(session, actor=current_user, item=item, note=body_of(ItemDone).note)
    return changed(lambda: _status(offboarding))


@bp.get("/offboardings/<int:offboarding_id>/evidence")
@endpoint(operation_id="getOffboardingEvidence", permission_name="offboarding.evidence", scope="offboarding:read",
          tags=TAG, responses={200: Evidence, 404: None})
def evidence(offboarding_id: int) -> Response:
    """The evidence report: every item, who closed it, the audit events behind it, grants before and after."""
    report = offboarding_evidence.evidence(get_session(), _visible(offboarding_id))
    return answer(Evidence(**report.as_json()))
