"""Policies: the current version of each tier, publishing, accepting, and who has not accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Response
from flask_login import current_user
from pydantic import Field, StringConstraints

from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created
from govern.api.schemas import Out, Paging, Strict
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session
from govern.grants.models import Grant
from govern.policies import services as policies
from govern.policies.models import PolicyVersion

TAG = ["policies"]
TierName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,32}$")]


class VersionSummary(Out):
    id: int
    tier: str
    version: int
    title: str
    published_at: datetime
    published_by_id: int | None


class TierOut(Out):
    tier: str
    roles: list[str] = Field(description="The catalogue roles whose holders must accept this tier.")
    current: VersionSummary | None = Field(description="The newest version; null while none is published.")
    accepted_at: datetime | None = Field(description="When the token's user accepted the current version.")
    must_accept: bool = Field(description="The token's user must accept the current version and has not.")


class TierList(Out):
    items: list[TierOut]


class VersionOut(VersionSummary):
    body_markdown: str
    is_current: bool = Field(description="The newest version of its tier: only this one can be accepted.")
    accepted_at: datetime | None = Field(description="When the token's user accepted this version.")


class VersionCreate(Strict):
    tier: TierName = Field(description="2 to 32 lower-case letters or underscores, e.g. standard, privileged.")
    title: Annotated[str, StringConstraints(min_length=1, max_length=policies.MAX_TITLE)]
    body_markdown: Annotated[str, StringConstraints(min_length=1, max_length=policies.MAX_BODY)]


class UnacceptedOut(Out):
    grant_id: int
    person_id: int
    person_name: str
    person_email: str
    department: str | None
    account_id: int
    account_name: str
    platform: str
    handle: str
    role_name: str
    tier: str
    version: int
    policy_version_id: int


class UnacceptedList(Out):
    items: list[UnacceptedOut]
    next: str | None = Field(description="The URL of the next page; null on the last.")


class UnacceptedQuery(Paging):
    tier: TierName | None = None
    department: str | None = Field(None, max_length=120)


def _version_out(version: PolicyVersion) -> VersionOut:
    session = get_session()
    current = policies.current_version(session, version.tier)
    ack = policies.acceptance_of(session, current_user.person_id, [version.id]).get(version.id)
    return VersionOut(id=version.id, tier=version.tier, version=version.version, title=version.title,
                      published_at=version.published_at, published_by_id=version.published_by_id,
                      body_markdown=version.body_markdown, is_current=current is not None and current.id == version.id,
                      accepted_at=ack.accepted_at if ack is not None else None)


_VERSION = {"GetPolicy": Link("getPolicyVersion", {"version_id": "$response.body#/id"}),
            "AcceptPolicy": Link("acceptPolicyVersion", {"version_id": "$response.body#/id"})}


@bp.get("/policies")
@endpoint(operation_id="listPolicies", permission_name="policies.accept", scope="policies:read", tags=TAG,
          responses={200: TierList})
def list_policies() -> Response:
    """Each tier with its current version, and whether the token's user accepted it (standard first)."""
    session = get_session()
    tiers = policies.list_tiers(session, per_tier=1)
    current_ids = [t.current.id for t in tiers if t.current is not None]
    accepted = policies.acceptance_of(session, current_user.person_id, current_ids)
    to_accept = {v.id for v in policies.policies_to_accept(session, current_user.person_id)}
    items = []
    for tier in tiers:
        current = tier.current
        ack = accepted.get(current.id) if current is not None else None
        items.append(TierOut(tier=tier.name, roles=tier.roles,
                             current=VersionSummary.model_validate(current) if current is not None else None,
                             accepted_at=ack.accepted_at if ack is not None else None,
                             must_accept=current is not None and current.id in to_accept))
    return answer(TierList(items=items))


@bp.get("/policies/<int:version_id>")
@endpoint(operation_id="getPolicyVersion", permission_name="policies.accept", scope="policies:read", tags=TAG,
          responses={200: VersionOut, 404: None})
def get_version(version_id: int) -> Response:
    """One version with its text (Markdown), and whether the token's user accepted it."""
    return answer(_version_out(policies.get_version(get_session(), version_id)))


@bp.post("/policies")
@endpoint(operation_id="publishPolicyVersion", permission_name="policies.manage", scope="policies:write", tags=TAG,
          body=VersionCreate, responses={201: VersionOut, 409: None}, creates=True, links=_VERSION)
def publish() -> Response:
    """Publish the next version of a tier's policy; everyone it covers must accept it again."""
    data = body_of(VersionCreate)

    def change() -> tuple[VersionOut, str]:
        version = policies.publish_version(get_session(), actor=current_user, tier=data.tier, title=data.title,
                                           body_markdown=data.body_markdown)
        return _version_out(version), f"/api/v1/policies/{version.id}"

    return created(change)


@bp.post("/policies/<int:version_id>/accept")
@endpoint(operation_id="acceptPolicyVersion", permission_name="policies.accept", scope="policies:write", tags=TAG,
          responses={200: VersionOut, 404: None, 409: None})
def accept(version_id: int) -> Response:
    """The token's user accepts this version (the current one of its tier); accepting twice changes nothing."""
    session = get_session()
    version = policies.get_version(session, version_id)
    policies.accept_version(session, actor=current_user, version=version)
    return changed(lambda: _version_out(version))


@bp.get("/policies/unaccepted")
@endpoint(operation_id="listUnacceptedPolicies", permission_name="reports.read", scope="policies:read", tags=TAG,
          query=UnacceptedQuery, responses={200: UnacceptedList})
def unaccepted() -> Response:
    """Active grants whose holder has not accepted the current policy of the role's tier, in grant id order.

    A manager sees the grants on accounts they own and those of their reports, as on the report page.
    """
    args = query_of(UnacceptedQuery)
    flt = policies.ReportFilter(tier=args.tier, department=(args.department or "").strip() or None)
    statement = policies.unaccepted_query(current_user, flt)
    page = cursors.read_slice(get_session(), statement, Grant.id, cursor=args.cursor, limit=args.limit, scalars=False)
    return answer_page(UnacceptedList, [UnacceptedOut.model_validate(row) for row in page.rows], page.next_cursor)
