"""Grants: list with filters, read, request or grant, approve or reject (four-eyes), revoke, expire the due."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Response
from flask_login import current_user
from pydantic import Field
from sqlalchemy import or_, select

from govern.accounts.models import Account
from govern.accounts.services import visible_accounts_clause
from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created
from govern.api.schemas import Id, Moment, Out, Paging, Reason, Strict, Text
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session
from govern.directory.models import Person
from govern.directory.services import visible_people_clause
from govern.errors import NotFoundError
from govern.grants import services as grants
from govern.grants.models import GRANT_STATUSES, Grant

TAG = ["grants"]
GrantStatus = Literal[GRANT_STATUSES]  # type: ignore[valid-type]


class GrantOut(Out):
    id: int
    person_id: int
    account_id: int
    role_code: str
    status: str
    reason: str
    requested_by_id: int | None
    requested_at: datetime
    approved_by_id: int | None
    decided_at: datetime | None
    decision_note: str | None
    starts_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    revoke_reason: str | None


class GrantList(Out):
    items: list[GrantOut]
    next: str | None


class GrantsQuery(Paging):
    status: GrantStatus | None = None
    person_id: Id | None = None
    account_id: Id | None = None
    role_code: str | None = Field(None, max_length=16)


class GrantCreate(Strict):
    account_id: Id
    role_code: str = Field(max_length=16)
    reason: Reason
    person_id: Id | None = Field(None, description="Whom to grant it to; leave out to request it for yourself.")
    starts_at: Moment | None = None
    expires_at: Moment | None = None


class Decision(Strict):
    note: Text = ""


class Rejection(Strict):
    note: Reason


class Revocation(Strict):
    reason: Reason
    override_reason: Text = Field("", description="An app admin's reason to revoke an account's last admin.")


class ExpiryRun(Out):
    expired: int
    details: dict[str, int]


def _scope_clause() -> Any:
    """Grants you may see: of people in your scope, on accounts you may see, and your own."""
    people, accounts = visible_people_clause(current_user), visible_accounts_clause(current_user)
    if people is True or accounts is True:
        return True
    return or_(Grant.person_id.in_(select(Person.id).where(people)),
               Grant.account_id.in_(select(Account.id).where(accounts)),
               Grant.person_id == current_user.person_id)


def _visible(grant_id: int) -> Grant:
    session = get_session()
    scope = _scope_clause()
    statement = select(Grant).where(Grant.id == grant_id)
    if scope is not True:
        statement = statement.where(scope)
    grant = session.scalar(statement)
    if grant is None:
        raise NotFoundError("No such grant.")
    return grant


def _out(grant: Grant) -> GrantOut:
    return GrantOut.model_validate(grant)


_LINKS = {"GetGrant": Link("getGrant", {"grant_id": "$response.body#/id"}),
          "ApproveGrant": Link("approveGrant", {"grant_id": "$response.body#/id"}),
          "RejectGrant": Link("rejectGrant", {"grant_id": "$response.body#/id"})}


@bp.get("/grants")
@endpoint(operation_id="listGrants", permission_name="grants.request", scope="grants:read", tags=TAG,
          query=GrantsQuery, responses={200: GrantList},
          links={"FirstGrant": Link("getGrant", {"grant_id": "$response.body#/items/0/id"}),
                 "ApproveFirstGrant": Link("approveGrant", {"grant_id": "$response.body#/items/0/id"}),
                 "RevokeFirstGrant": Link("revokeGrant", {"grant_id": "$response.body#/items/0/id"})})
def list_grants() -> Response:
    """Grants you may see (a manager: of their reports and on their accounts), in id order."""
    args = query_of(GrantsQuery)
    statement = select(Grant)
    scope = _scope_clause()
    if scope is not True:
        statement = statement.where(scope)
    for column, value in ((Grant.status, args.status), (Grant.person_id, args.person_id),
                          (Grant.account_id, args.account_id), (Grant.role_code, args.role_code)):
        if value is not None:
            statement = statement.where(column == value)
    page = cursors.read_slice(get_session(), statement, Grant.id, cursor=args.cursor, limit=args.limit)
    return answer_page(GrantList, [_out(g) for g in page.rows], page.next_cursor)


@bp.get("/people/<int:person_id>/grants")
@endpoint(operation_id="listPersonGrants", permission_name="directory.read", scope="grants:read", tags=TAG,
          query=Paging, responses={200: GrantList, 404: None})
def person_grants(person_id: int) -> Response:
    """Every grant of one person in your scope, current and past."""
    from govern.directory.services import get_visible_person  # noqa: PLC0415 - one use

    args = query_of(Paging)
    person = get_visible_person(get_session(), current_user, person_id)
    page = cursors.read_slice(get_session(), select(Grant).where(Grant.person_id == person.id), Grant.id,
                              cursor=args.cursor, limit=args.limit)
    return answer_page(GrantList, [_out(g) for g in page.rows], page.next_cursor)


@bp.get("/grants/<int:grant_id>")
@endpoint(operation_id="getGrant", permission_name="grants.request", scope="grants:read", tags=TAG,
          responses={200: GrantOut, 404: None})
def get_grant(grant_id: int) -> Response:
    """One grant."""
    return answer(_out(_visible(grant_id)), tagged=True)


@bp.post("/grants")
@endpoint(operation_id="createGrant", permission_name="grants.request", scope="grants:write", tags=TAG,
          body=GrantCreate, responses={201: GrantOut, 403: None, 404: None, 409: None}, creates=True, links=_LINKS)
def create_grant() -> Response:
    """Grant a role (a manager or admin, with ``person_id``) or request one for yourself (without).

    Owner and admin roles, and revealing roles the account's owner did not grant, start as
    ``requested`` and wait for a second person; the policy gate applies as on the pages.
    """
    data = body_of(GrantCreate)

    def change() -> tuple[GrantOut, str]:
        session = get_session()
        if data.person_id is None:
            grant = grants.request_role(session, actor=current_user, account_id=data.account_id,
                                        role_code=data.role_code, reason=data.reason, expires_at=data.expires_at)
        else:
            grant = grants.grant_role(session, actor=current_user, person_id=data.person_id,
                                      account_id=data.account_id, role_code=data.role_code, reason=data.reason,
                                      starts_at=data.starts_at, expires_at=data.expires_at)
        session.flush()
        return _out(grant), f"/api/v1/grants/{grant.id}"

    return created(change)


@bp.post("/grants/<int:grant_id>/approve")
@endpoint(operation_id="approveGrant", permission_name="grants.manage", scope="grants:write", tags=TAG,
          body=Decision, responses={200: GrantOut, 403: None, 404: None, 409: None})
def approve(grant_id: int) -> Response:
    """Approve a request: a second person, never who asked for it nor the grantee (four-eyes)."""
    grant = _visible(grant_id)
    grants.approve_grant(get_session(), actor=current_user, grant=grant, note=body_of(Decision).note)
    return changed(lambda: _out(grant))


@bp.post("/grants/<int:grant_id>/reject")
@endpoint(operation_id="rejectGrant", permission_name="grants.request", scope="grants:write", tags=TAG,
          body=Rejection, responses={200: GrantOut, 403: None, 404: None, 409: None})
def reject(grant_id: int) -> Response:
    """Reject a request (or withdraw your own), with a reason."""
    grant = _visible(grant_id)
    grants.reject_grant(get_session(), actor=current_user, grant=grant, note=body_of(Rejection).note)
    return changed(lambda: _out(grant))


@bp.post("/grants/<int:grant_id>/revoke")
@endpoint(operation_id="revokeGrant", permission_name="grants.manage", scope="grants:write", tags=TAG,
          body=Revocation, responses={200: GrantOut, 403: None, 404: None, 409: None})
def revoke(grant_id: int) -> Response:
    """End an active grant: the platform removal opens, and what the person could see is rotated."""
    grant = _visible(grant_id)
    data = body_of(Revocation)
    grants.revoke_grant(get_session(), actor=current_user, grant=grant, reason=data.reason,
                        override_reason=data.override_reason)
    return changed(lambda: _out(grant))


@bp.post("/grants/expire-due")
@endpoint(operation_id="expireDueGrants", permission_name="jobs.manage", scope="grants:write", tags=TAG,
          responses={200: ExpiryRun})
def expire_due() -> Response:
    """End every grant past its expiry now (the jobs runner does it too), with the same rotations."""
    counts = grants.expire_grants(get_session())
    get_session().commit()
    return answer(ExpiryRun(expired=int(counts.get("expired", 0)), details={k: int(v) for k, v in counts.items()}))
