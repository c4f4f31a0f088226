"""Exposures: who saw (part of) which secret version, when and why. Metadata only, never a value."""

from __future__ import annotations

from datetime import datetime

from flask import Response
from pydantic import Field

from govern.api import cursors
from govern.api.blueprint import answer_page, bp
from govern.api.schemas import Id, Out, Paging
from govern.api.spec import endpoint, query_of
from govern.db import get_session
from govern.vault.listing import exposure_rows
from govern.vault.models import Exposure

TAG = ["exposures"]


class ExposureOut(Out):
    id: int
    exposed_at: datetime
    kind: str = Field(description="What was seen: value, totp_code or totp_seed.")
    reason: str
    secret_id: int
    secret_label: str
    version: int = Field(description="The secret's version number that was seen.")
    account_id: int
    account_name: str
    person_id: int
    person_name: str
    user_id: int
    user_email: str


class ExposureList(Out):
    items: list[ExposureOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class ExposuresQuery(Paging):
    person_id: Id | None = None
    account_id: Id | None = None
    secret_id: Id | None = None


@bp.get("/exposures")
@endpoint(operation_id="listExposures", permission_name="rotation.read", scope="rotation:read", tags=TAG,
          query=ExposuresQuery, responses={200: ExposureList})
def list_exposures() -> Response:
    """Exposures, newest first, by person, account or secret: what rotation and offboarding work from."""
    args = query_of(ExposuresQuery)
    # The same columns and joins as the pages' lists, never the version's ciphertext.
    statement = exposure_rows(Exposure.account_id, Exposure.person_id, Exposure.user_id)
    if args.person_id is not None:
        statement = statement.where(Exposure.person_id == args.person_id)
    if args.account_id is not None:
        statement = statement.where(Exposure.account_id == args.account_id)
    if args.secret_id is not None:
        statement = statement.where(Exposure.secret_id == args.secret_id)
    page = cursors.read_slice(get_session(), statement, Exposure.id, cursor=args.cursor, limit=args.limit,
                              newest_first=True, scalars=False)
    return answer_page(ExposureList, [ExposureOut.model_validate(row) for row in page.rows], page.next_cursor)
