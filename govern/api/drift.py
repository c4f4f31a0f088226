"""Drift: where the platforms (as last synced or attested) and govern's grants disagree, for the company or one account."""

from __future__ import annotations

from flask import Response
from flask_login import current_user

from govern.accounts import services as accounts
from govern.accounts.models import Account
from govern.api.blueprint import answer, bp
from govern.api.schemas import Out
from govern.api.spec import endpoint
from govern.connectors import drift
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


def _report(items: list[drift.DriftItem]) -> Response:
    return answer(DriftReport(count=len(items), items=[DriftItemOut(**i.as_dict()) for i in items]))


@bp.get("/drift")
@endpoint(operation_id="listDrift", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: DriftReport})
def company_drift() -> Response:
    """Every drift item of the company: unmanaged access, stale records, role mismatches; worst first."""
    return _report(drift.company_drift(get_session()))


@bp.get("/accounts/<int:account_id>/drift")
@endpoint(operation_id="getAccountDrift", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: DriftReport, 404: None})
def account_drift(account_id: int) -> Response:
    """The drift of one account (empty when no connection covers it and no one attested it)."""
    account = get_session().get(Account, account_id)
    if account is None or not accounts.can_see_account(current_user, account):
        raise NotFoundError("No such account.")
    return _report(drift.account_drift(get_session(), account.id))
