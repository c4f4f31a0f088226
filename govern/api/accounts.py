"""Accounts: list, read, add, edit; who holds them, their secrets' metadata, the role catalogue."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response
from flask_login import current_user
from pydantic import Field, StringConstraints
from sqlalchemy import select

from govern.accounts import services as accounts
from govern.accounts.models import ACCOUNT_STATUSES, ACCOUNT_TIERS, PLATFORMS, Account, Role
from govern.api import cursors
from govern.api.blueprint import answer, answer_page, bp, changed, created, require_match
from govern.api.schemas import Id, Out, Paging, Strict
from govern.api.secrets import SecretMeta
from govern.api.spec import Link, body_of, endpoint, query_of
from govern.db import get_session, utcnow
from govern.errors import InvalidError, NotFoundError
from govern.grants.models import Grant
from govern.rotation.schedules import schedules
from govern.vault import access
from govern.vault.models import Secret

TAG = ["accounts"]
# The registry's own tuples, so a new platform or status reaches the API's description by itself.
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]
AccountStatus = Literal[ACCOUNT_STATUSES]  # type: ignore[valid-type]
AccountTier = Literal[ACCOUNT_TIERS]  # type: ignore[valid-type]


class AccountOut(Out):
    id: int
    platform: str
    handle: str
    url: str
    display_name: str
    business_owner_id: int | None
    crisis_contact_id: int | None
    tier: str
    status: str
    rotation_interval_days: int
    max_credential_holders: int
    min_admins: int
    updated_at: datetime


class AccountList(Out):
    items: list[AccountOut]
    next: str | None


class AccountsQuery(Paging):
    platform: Platform | None = None
    status: AccountStatus | None = None
    owner_id: Id | None = None
    q: str | None = Field(None, max_length=120, description="Part of the handle or display name.")


class AccountFields(Strict):
    url: Annotated[str, StringConstraints(max_length=500)] | None = None
    business_owner_id: Id | None = None
    crisis_contact_id: Id | None = None
    tier: AccountTier | None = None
    rotation_interval_days: int | None = Field(None, ge=1, le=3650)
    max_credential_holders: int | None = Field(None, ge=1, le=100)
    min_admins: int | None = Field(None, ge=0, le=20)
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None


class AccountCreate(AccountFields):
    platform: Platform
    handle: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class AccountUpdate(AccountFields):
    handle: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    status: AccountStatus | None = None


class RoleOut(Out):
    code: str
    name: str
    description: str
    may_reveal: bool
    needs_second_approval: bool
    is_admin_role: bool


class RoleList(Out):
    items: list[RoleOut]


class HolderOut(Out):
    grant_id: int
    person_id: int
    full_name: str
    role_code: str
    starts_at: datetime
    expires_at: datetime | None


class HolderList(Out):
    items: list[HolderOut]


class SecretList(Out):
    items: list[SecretMeta]


def _visible(account_id: int) -> Account:
    account = get_session().get(Account, account_id)
    if account is None or not accounts.can_see_account(current_user, account):
        raise NotFoundError("No such account.")
    return account


_LINKS = {"GetAccount": Link("getAccount", {"account_id": "$response.body#/id"}),
          "UpdateAccount": Link("updateAccount", {"account_id": "$response.body#/id"}),
          "AccountHolders": Link("listAccountHolders", {"account_id": "$response.body#/id"})}


@bp.get("/accounts")
@endpoint(operation_id="listAccounts", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          query=AccountsQuery, responses={200: AccountList},
          links={"FirstAccount": Link("getAccount", {"account_id": "$response.body#/items/0/id"}),
                 "FirstAccountSecrets": Link("listAccountSecrets", {"account_id": "$response.body#/items/0/id"}),
                 "FirstAccountHolders": Link("listAccountHolders", {"account_id": "$response.body#/items/0/id"})})
def list_accounts() -> Response:
    """Accounts you may see (a manager: the ones they own or are crisis contact of), in id order."""
    args = query_of(AccountsQuery)
    flt = accounts.AccountFilter(platform=args.platform, status=args.status, owner_id=args.owner_id, q=args.q)
    statement = accounts.accounts_query(current_user, flt).order_by(None)
    page = cursors.read_slice(get_session(), statement, Account.id, cursor=args.cursor, limit=args.limit)
    return answer_page(AccountList, [AccountOut.model_validate(a) for a in page.rows], page.next_cursor)


@bp.get("/accounts/<int:account_id>")
@endpoint(operation_id="getAccount", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: AccountOut, 404: None})
def get_account(account_id: int) -> Response:
    """One account; its ETag is what an update's If-Match names."""
    return answer(AccountOut.model_validate(_visible(account_id)), tagged=True)


#: Fields every account has: null cannot clear them.
_REQUIRED = ("platform", "handle", "display_name", "tier", "status", "rotation_interval_days",
             "max_credential_holders", "min_admins")


def _input(account: Account | None, sent: dict[str, Any]) -> accounts.AccountInput:
    nulls = sorted(name for name in _REQUIRED if name in sent and sent[name] is None)
    if nulls:
        raise InvalidError("Every account has these; send a value or leave them out.",
                           {name: "cannot be null" for name in nulls})
    base: dict[str, Any] = {}
    if account is not None:
        base = {name: getattr(account, name) for name in (
            "platform", "handle", "display_name", "url", "business_owner_id", "crisis_contact_id",
            "recovery_email_person_id", "recovery_email_label", "recovery_phone_person_id", "recovery_phone_label",
            "tier", "status", "rotation_interval_days", "max_credential_holders", "min_admins", "notes")}
        base = {k: ("" if v is None and k in ("url", "recovery_email_label", "recovery_phone_label", "notes") else v)
                for k, v in base.items()}
    merged = {**base, **{k: ("" if v is None and k in ("url", "notes") else v) for k, v in sent.items()}}
    defaults = asdict(accounts.AccountInput(platform="", handle="", display_name=""))
    return accounts.AccountInput(**{**defaults, **merged})


@bp.post("/accounts")
@endpoint(operation_id="createAccount", permission_name="accounts.manage", scope="accounts:write", tags=TAG,
          body=AccountCreate, responses={201: AccountOut, 409: None}, creates=True, links=_LINKS)
def create_account() -> Response:
    """Register an official account."""
    sent = body_of(AccountCreate).model_dump(exclude_unset=True)

    def change() -> tuple[AccountOut, str]:
        account = accounts.create_account(get_session(), actor=current_user, data=_input(None, sent))
        return AccountOut.model_validate(account), f"/api/v1/accounts/{account.id}"

    return created(change)


@bp.patch("/accounts/<int:account_id>")
@endpoint(operation_id="updateAccount", permission_name="accounts.manage", scope="accounts:write", tags=TAG,
          body=AccountUpdate, responses={200: AccountOut, 404: None, 409: None}, conditional=True)
def update_account(account_id: int) -> Response:
    """Change the fields sent. Send If-Match with the ETag you read."""
    account = _visible(account_id)
    require_match(AccountOut.model_validate(account))
    sent = body_of(AccountUpdate).model_dump(exclude_unset=True)
    accounts.update_account(get_session(), actor=current_user, account=account, data=_input(account, sent))
    return changed(lambda: AccountOut.model_validate(account))


@bp.get("/accounts/<int:account_id>/holders")
@endpoint(operation_id="listAccountHolders", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: HolderList, 404: None})
def holders(account_id: int) -> Response:
    """Who holds an active role on the account now."""
    account = _visible(account_id)
    now = utcnow()
    grants = get_session().scalars(select(Grant).where(
        Grant.account_id == account.id, Grant.status == "active", Grant.starts_at <= now,
        (Grant.expires_at.is_(None)) | (Grant.expires_at > now)).order_by(Grant.id))
    return answer(HolderList(items=[HolderOut(grant_id=g.id, person_id=g.person_id, full_name=g.person.full_name,
                                              role_code=g.role_code, starts_at=g.starts_at, expires_at=g.expires_at)
                                    for g in grants]))


@bp.get("/accounts/<int:account_id>/secrets")
@endpoint(operation_id="listAccountSecrets", permission_name="accounts.read", scope="accounts:read", tags=TAG,
          responses={200: SecretList, 404: None},
          links={"FirstSecret": Link("getSecret", {"secret_id": "$response.body#/items/0/id"}),
                 "RevealFirstSecret": Link("revealSecret", {"secret_id": "$response.body#/items/0/id"})})
def secrets(account_id: int) -> Response:
    """The account's secrets: metadata only (kind, label, login, expiry), never a value."""
    session = get_session()
    account = _visible(account_id)
    rows = [s for s in session.scalars(select(Secret).where(Secret.account_id == account.id).order_by(Secret.id))
            if access.can_see_secret(session, current_user, s)]
    return answer(SecretList(items=[SecretMeta.model_validate(s) for s in rows]))


class RotationOut(Out):
    """Where one secret stands against its rotation interval."""

    secret_id: int
    kind: str
    label: str
    interval_days: int | None
    version: int | None
    since: datetime | None
    due_at: datetime | None
    state: str = Field(description="fine, due, overdue, never or no_value")
    open_task_id: int | None


class RotationList(Out):
    items: list[RotationOut]


@bp.get("/accounts/<int:account_id>/rotation")
@endpoint(operation_id="getAccountRotation", permission_name="rotation.read", scope="rotation:read", tags=TAG,
          responses={200: RotationList, 404: None})
def rotation(account_id: int) -> Response:
    """The rotation status of the account's secrets: interval, current version's age, due date, open task."""
    session = get_session()
    account = _visible(account_id)
    rows = list(session.scalars(select(Secret).where(Secret.account_id == account.id).order_by(Secret.id)))
    return answer(RotationList(items=[RotationOut(
        secret_id=s.secret.id, kind=s.secret.kind, label=s.secret.label, interval_days=s.interval_days,
        version=s.version, since=s.since, due_at=s.due_at, state=s.state, open_task_id=s.task.id if s.task else None)
        for s in schedules(session, rows)]))


@bp.get("/roles")
@endpoint(operation_id="listRoles", permission_name="accounts.read", scope="accounts:read", tags=["roles"],
          responses={200: RoleList})
def roles() -> Response:
    """The role catalogue: what each account role may do."""
    return answer(RoleList(items=[RoleOut.model_validate(r) for r in get_session().scalars(
        select(Role).order_by(Role.sort_order))]))
