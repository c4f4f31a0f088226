"""Reports: who has access to what, per account, per person, as a matrix; CSV and JSON exports.

Pages are GETs. Exports are POSTs with a CSRF token because each one writes a
"report.exported" audit event before the rows stream out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_login import current_user
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import PLATFORM_LABELS, Account
from govern.auth.roles import sees_all_accounts
from govern.csvexport import csv_chunks, json_chunks
from govern.db import get_session
from govern.directory.models import Person
from govern.errors import NotFoundError
from govern.reports import matrix as matrix_report
from govern.reports.access import (
    ACCESS_COLUMNS,
    ALL_STATUSES,
    HISTORY_COLUMNS,
    HISTORY_STATUSES,
    SORTS,
    export_values,
    iter_row_batches,
    list_rows,
    visible_account,
    visible_person,
)
from govern.reports.filters import AccessFilter, departments, parse_filter, role_choices
from govern.web import page_arg, permission

bp = Blueprint("reports", __name__, url_prefix="/reports")

FORMATS = {"csv": ("text/csv", csv_chunks), "json": ("application/json", json_chunks)}


def _sort_args() -> tuple[str, bool]:
    sort = request.args.get("sort") or "person"
    return (sort if sort in SORTS else "person"), request.args.get("dir") == "desc"


def _choices() -> dict[str, Any]:
    db = get_session()
    return {"departments": departments(db), "platforms": PLATFORM_LABELS, "roles": role_choices(db)}


@bp.route("/")
@permission("reports.read")
def index() -> str:
    return render_template("reports/index.html", scoped=not sees_all_accounts(current_user.roles))


@bp.route("/access")
@permission("reports.read")
def access() -> str:
    flt = parse_filter(request.args)
    sort, descending = _sort_args()
    page = list_rows(get_session(), current_user, flt, page=page_arg(), sort=sort, descending=descending)
    params = flt.as_params()
    return render_template("reports/access.html", page=page, params=params, **_choices())


@bp.route("/matrix")
@permission("reports.read")
def matrix() -> str:
    flt = parse_filter(request.args)
    params = flt.as_params()
    # Without a filter the whole register would not fit a screen; ask for one first.
    grid = matrix_report.access_matrix(get_session(), current_user, flt) if params else None
    return render_template("reports/matrix.html", grid=grid, params=params, limits={
        "people": matrix_report.MATRIX_MAX_PEOPLE, "accounts": matrix_report.MATRIX_MAX_ACCOUNTS,
        "grants": matrix_report.MATRIX_MAX_GRANTS}, **_choices())


def _account_or_404(account_id: int) -> Account:
    try:
        return visible_account(get_session(), current_user, account_id)
    except NotFoundError:
        abort(404)


def _person_or_404(person_id: int) -> Person:
    try:
        return visible_person(get_session(), current_user, person_id)
    except NotFoundError:
        abort(404)


def _access_of(template: str, key: str, target: Account | Person, flt: AccessFilter, sort: str) -> str:
    """The page of ``target``'s access (``flt`` picks it): active grants, then their history."""
    db = get_session()
    active = list_rows(db, current_user, flt, page=page_arg(), sort=sort)
    history = list_rows(db, current_user, replace(flt, statuses=HISTORY_STATUSES),
                                 page=page_arg("hpage"), sort="since", descending=True)
    return render_template(template, **{key: target}, active=active, history=history, platforms=PLATFORM_LABELS)


@bp.route("/accounts/<int:account_id>")
@permission("reports.read")
def account(account_id: int) -> str:
    target = _account_or_404(account_id)
    return _access_of("reports/account.html", "account", target, AccessFilter(account_id=target.id), sort="person")


@bp.route("/people/<int:person_id>")
@permission("reports.read")
def person(person_id: int) -> str:
    target = _person_or_404(person_id)
    return _access_of("reports/person.html", "person", target, AccessFilter(person_id=target.id), sort="account")


# --- exports ---------------------------------------------------------------------------------------


def _rows(db: Session, user: Any, flt: AccessFilter, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    for batch in iter_row_batches(db, user, flt):
        db.rollback()  # end the read transaction while the client downloads this batch
        for row in batch:
            yield export_values(row, columns)


def _export(fmt: str, report: str, flt: AccessFilter, columns: Sequence[str], *, name: str,
            target_type: str | None = None, target_id: int | None = None) -> Response:
    db = get_session()
    audit.record(db, "report.exported", actor=current_user, target_type=target_type, target_id=target_id,
                 details={"report": report, "format": fmt, "filter": flt.as_params()})
    db.commit()
    mimetype, writer = FORMATS[fmt]
    user = current_user._get_current_object()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = stream_with_context(writer(columns, _rows(db, user, flt, columns)))
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="govern-{name}-{stamp}.{fmt}"'})


# Each export answers at two URLs (and endpoints), one a format; the format comes from the rule.
@bp.route("/access.csv", methods=["POST"], endpoint="access_csv", defaults={"fmt": "csv"})
@bp.route("/access.json", methods=["POST"], endpoint="access_json", defaults={"fmt": "json"})
@permission("reports.read")
def access_export(fmt: str) -> Response:
    return _export(fmt, "access", parse_filter(request.form), ACCESS_COLUMNS, name="access")


@bp.route("/accounts/<int:account_id>.csv", methods=["POST"], endpoint="account_csv", defaults={"fmt": "csv"})
@bp.route("/accounts/<int:account_id>.json", methods=["POST"], endpoint="account_json", defaults={"fmt": "json"})
@permission("reports.read")
def account_export(account_id: int, fmt: str) -> Response:
    target = _account_or_404(account_id)
    flt = AccessFilter(account_id=target.id, statuses=ALL_STATUSES)
    return _export(fmt, "account", flt, HISTORY_COLUMNS, name=f"account-{target.id}", target_type="account", target_id=target.id)


@bp.route("/people/<int:person_id>.csv", methods=["POST"], endpoint="person_csv", defaults={"fmt": "csv"})
@bp.route("/people/<int:person_id>.json", methods=["POST"], endpoint="person_json", defaults={"fmt": "json"})
@permission("reports.read")
def person_export(person_id: int, fmt: str) -> Response:
    target = _person_or_404(person_id)
    flt = AccessFilter(person_id=target.id, statuses=ALL_STATUSES)
    return _export(fmt, "person", flt, HISTORY_COLUMNS, name=f"person-{target.id}", target_type="person", target_id=target.id)
