"""Admin pages of the identity provider's groups: the list, a group's members and mappings, and the
mappings' proposal, second-admin approval and removal. Thin: parse, call one service, commit, redirect."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from govern.accounts.models import Account, Role
from govern.auth.forms import ConfirmForm
from govern.auth.models import APP_ROLES
from govern.db import get_session
from govern.errors import ConflictError, ForbiddenError, InvalidError
from govern.groups import mappings
from govern.groups import services as groups
from govern.groups.forms import MappingForm
from govern.groups.models import DirectoryGroup, GroupEffect, GroupMapping, GroupMember
from govern.paging import read_page
from govern.web import ensure_visible, fresh_mfa_required, page_arg, permission

bp = Blueprint("groups", __name__, url_prefix="/admin/groups")

PAGE_SIZE = 50
MEMBERS_SHOWN = 200


@bp.route("/")
@permission("users.read")
def index() -> str:
    db = get_session()
    page = read_page(db, select(DirectoryGroup).order_by(DirectoryGroup.display_name), page_arg(), PAGE_SIZE,
                     count=select(func.count()).select_from(DirectoryGroup), scalars=True)
    ids = [g.id for g in page.items]
    counts = dict(db.execute(select(GroupMember.group_id, func.count(func.distinct(GroupMember.person_id)))
                             .where(GroupMember.group_id.in_(ids)).group_by(GroupMember.group_id)).all()) if ids else {}
    by_group: dict[int, list[Any]] = {}
    for mapping in mappings.mappings_of(db, ids):
        by_group.setdefault(mapping.group_id, []).append(mapping)
    pending = [m for m in mappings.mappings_of(db) if m.status == "pending"]
    return render_template("groups/index.html", page=page, counts=counts, by_group=by_group, pending=pending,
                           describe=_describer(db), form=ConfirmForm())


@bp.route("/<int:group_id>")
@permission("users.read")
def detail(group_id: int) -> str:
    group = _group(group_id)
    return _detail_page(group, _mapping_form())


def _detail_page(group: DirectoryGroup, form: MappingForm) -> str:
    db = get_session()
    members = groups.members_of(db, [group])[group.id]
    sources: dict[int, list[str]] = {}
    for person_id, source in db.execute(select(GroupMember.person_id, GroupMember.source)
                                        .where(GroupMember.group_id == group.id)):
        sources.setdefault(person_id, []).append(source)
    group_mappings = mappings.mappings_of(db, [group.id])
    effects: dict[int, dict[str, int]] = {}
    if group_mappings:
        for mapping_id, state, n in db.execute(
                select(GroupEffect.mapping_id, GroupEffect.state, func.count()).where(
                    GroupEffect.mapping_id.in_([m.id for m in group_mappings]))
                .group_by(GroupEffect.mapping_id, GroupEffect.state)):
            effects.setdefault(mapping_id, {})[state] = n
    return render_template("groups/detail.html", group=group, members=members[:MEMBERS_SHOWN], total=len(members),
                           sources=sources, mappings=group_mappings, effects=effects, describe=_describer(db),
                           form=form, confirm=ConfirmForm())


def _mapping_form() -> MappingForm:
    db = get_session()
    form = MappingForm()
    form.app_role.choices = [("", "—")] + [(r, r) for r in APP_ROLES]
    accounts = db.scalars(select(Account).where(Account.status == "active").order_by(Account.display_name).limit(1000))
    form.account_id.choices = [(0, "—")] + [(a.id, f"{a.platform_label} @{a.handle} — {a.display_name}") for a in accounts]
    form.role_code.choices = [("", "—")] + [(r.code, r.name) for r in db.scalars(select(Role).order_by(Role.sort_order))]
    return form


def _describer(db: Any) -> Any:
    names: dict[int, str] = {}

    def describe(mapping: Any) -> str:
        if mapping.app_role:
            return f"app role: {mapping.app_role}"
        if mapping.account_id not in names:
            account = db.get(Account, mapping.account_id)
            names[mapping.account_id] = account.display_name if account else f"account #{mapping.account_id}"
        return f"{mapping.role_code} on {names[mapping.account_id]}"

    return describe


def _group(group_id: int) -> DirectoryGroup:
    group = get_session().get(DirectoryGroup, group_id)
    ensure_visible(group is not None)
    assert group is not None
    return group


@bp.route("/<int:group_id>/mappings", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def add_mapping(group_id: int) -> Any:
    db = get_session()
    group = _group(group_id)
    form = _mapping_form()
    if not form.validate_on_submit():
        return _detail_page(group, form), 400
    app_role = form.app_role.data or None
    account_id = form.account_id.data or None
    role_code = form.role_code.data or None
    try:
        if app_role and (account_id or role_code):
            raise InvalidError("Choose an app role, or an account and a role: not both.")
        mapping = mappings.propose(db, actor=current_user, group=group, app_role=app_role,
                                   account_id=account_id if not app_role else None,
                                   role_code=role_code if not app_role else None)
    except (InvalidError, ConflictError) as exc:
        db.rollback()
        form.app_role.errors = [exc.message]
        return _detail_page(group, form), 400
    db.commit()
    flash("Mapping saved: a second admin must approve it before it gives anything." if mapping.status == "pending"
          else "Mapping saved: its members have what it gives.", "success")
    return redirect(url_for("groups.detail", group_id=group.id))


@bp.route("/mappings/<int:mapping_id>/approve", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def approve(mapping_id: int) -> Response:
    return _decide(mapping_id, lambda db, mapping: mappings.approve(db, actor=current_user, mapping=mapping),
                   "Approved: the group's members have what it gives.")


@bp.route("/mappings/<int:mapping_id>/remove", methods=["POST"])
@permission("users.manage")
@fresh_mfa_required
def remove(mapping_id: int) -> Response:
    return _decide(mapping_id, lambda db, mapping: mappings.remove(db, actor=current_user, mapping=mapping),
                   "Mapping removed: what it gave was taken back.")


def _decide(mapping_id: int, act: Any, done: str) -> Response:
    db = get_session()
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("groups.index"))
    mapping = db.get(GroupMapping, mapping_id)
    ensure_visible(mapping is not None)
    assert mapping is not None
    group_id = mapping.group_id
    try:
        act(db, mapping)
    except (ConflictError, ForbiddenError) as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("groups.detail", group_id=group_id))
    db.commit()
    flash(done, "success")
    return redirect(url_for("groups.detail", group_id=group_id))
