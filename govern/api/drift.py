"""Drift: where the platforms (as last synced or attested) and govern's grants disagree, for the company or one account."""

from __future__ import annotations

from datetime import datetime

from flask import Response
from flask_login import current_user
from pydantic import Field

from govern.accounts import services as accounts
from govern.accounts.models import Account
from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp
from govern.api.schemas import Moment, Out, Paging, Strict
from govern.api.spec import endpoint, query_of
from govern.connectors import drift, history
from govern.db import get_session
from govern.errors import NotFoundError

TAG = ["drift"]


class DriftItemOut(Out):
    account_id: int
    kind: str
    severity: str
    person_id: int | None
    person_name: str
    person_status: str | None
    member_id: str | None
    platform_roles: list[str]
    govern_roles: list[str]
    description: str


class DriftReport(Out):
    count: int
    items: list[DriftItemOut]


class DriftPage(Out):
    """The drift of one page of accounts (in id order): ``next`` reads the following accounts."""

    items: list[DriftItemOut]
    next: str | None = Field(description="The URL of the next page of accounts; null on the last.")


class DriftQuery(Paging):
    limit: int = Field(50, ge=1, le=200, description="Accounts per page (each may have several items, or none).")


def _report(items: list[drift.DriftItem]) -> Response:
    return answer(DriftReport(count=len(items), items=[DriftItemOut(**i.as_dict()) for i in items]))


@bp.get("/drift")
@endpoint(operation_id="listDrift", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          query=DriftQuery, responses={200: DriftPage})
def company_drift() -> Response:
    """The drift of the accounts you may see (a manager: their own), a page of accounts at a time in id
    order: unmanaged access, stale records, role mismatches, worst first within the page."""
    args = query_of(DriftQuery)
    session = get_session()
    statement = accounts.accounts_query(current_user, accounts.AccountFilter()).with_only_columns(Account.id) \
        .order_by(None)
    page = cursors.read_slice(session, statement, Account.id, cursor=args.cursor, limit=args.limit, scalars=False)
    account_ids = [row[0] for row in page.rows]
    items = drift.drift_of(session, drift.observations(session, account_ids)) if account_ids else []
    return answer_page(DriftPage, [DriftItemOut(**i.as_dict()) for i in items], page.next_cursor)


@bp.get("/accounts/<int:account_id>/drift")
@endpoint(operation_id="getAccountDrift", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: DriftReport, 404: None})
def account_drift(account_id: int) -> Response:
    """The drift of one account (empty when no connection covers it and no one attested it)."""
    account = get_session().get(Account, account_id)
    if account is None or not accounts.can_see_account(current_user, account):
        raise NotFoundError("No such account.")
    return _report(drift.account_drift(get_session(), account.id))


class PlatformMemberOut(Out):
    id: str = Field(description="The member's id on the platform (a Meta user id, a LinkedIn member URN, an email).")
    name: str
    email: str | None = Field(description="The verified email the platform gives, if any.")
    roles: list[str] = Field(description="The platform's roles or tasks (MANAGE, ADMINISTRATOR, ...).")
    person_id: int | None = Field(description="The person govern matched (by verified email or a linked identity).")
    person_name: str | None


class PlatformMembers(Out):
    account_id: int
    at: datetime
    source: str | None = Field(description="sync, attestation, or null when nothing was known by then.")
    seen_from: datetime | None = Field(description="When a sync first saw this set (or when it was attested).")
    seen_until: datetime | None = Field(description="The last sync that still saw it.")
    members: list[PlatformMemberOut]


class MembersQuery(Strict):
    at: Moment | None = Field(None, description="The moment asked about (with a time zone); now when absent.")


@bp.get("/accounts/<int:account_id>/platform-members")
@endpoint(operation_id="getAccountPlatformMembers", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          query=MembersQuery, responses={200: PlatformMembers, 404: None})
def account_platform_members(account_id: int) -> Response:
    """Who held a role on the account on the platform at a moment, as the syncs saw it (or the owner attested it):
    "who was admin of this Page on 3 March"."""
    args = query_of(MembersQuery)
    account = get_session().get(Account, account_id)
    if account is None or not accounts.can_see_account(current_user, account):
        raise NotFoundError("No such account.")
    found = history.members_at(get_session(), account, args.at)
    return answer(PlatformMembers(account_id=found.account_id, at=found.at, source=found.source,
                                  seen_from=found.seen_from, seen_until=found.seen_until,
                                  members=[PlatformMemberOut(**m) for m in found.members]))
