"""SCIM /Groups (RFC 7643 section 4.2, RFC 7644): create, get, list with filters, PUT, PATCH in the
dialects Entra ID and Okta send, DELETE. Members are SCIM Users (people) by id; the memberships are
SCIM's own (govern.groups keeps each source apart)."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, g, request, url_for
from scim2_models import Context, Group, GroupMember, ListResponse, Meta, ResponseParameters, SearchRequest

from govern.db import get_session
from govern.errors import ConflictError, InvalidError, NotFoundError
from govern.groups import services as groups
from govern.groups.models import DirectoryGroup
from govern.scim.services import ScimError
from govern.scim.views import DEFAULT_COUNT, PERMISSION, _body, _bounded, _int_arg, _json, bp
from govern.web import permission

_FILTER = re.compile(r'^\s*(displayName|externalId|id)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'^\s*members\s*\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\]\s*$', re.IGNORECASE)


def _location(group_id: int) -> str:
    return url_for("scim.get_group", group_id=str(group_id), _external=True)


def _resource(group: DirectoryGroup, members: list[tuple[Any, str | None]]) -> Group:
    return Group(
        id=str(group.id), external_id=group.external_id, display_name=group.display_name,
        members=[GroupMember(value=str(p.id), ref=url_for("scim.get_user", user_id=str(p.id), _external=True),  # type: ignore[arg-type]
                             display=display or p.full_name, type="User") for p, display in members] or None,
        meta=Meta(resource_type="Group", created=group.created_at, last_modified=group.updated_at,
                  location=_location(group.id)))


def _parameters(search: Any = None) -> dict[str, Any]:
    if search is not None:
        return {"response_parameters": search}
    values = {k: v for k in ("attributes", "excludedAttributes") if (v := request.args.get(k))}
    return {"response_parameters": ResponseParameters[Group].model_validate(values)} if values else {}


def _answer(group_id: int, context: Context, status: int = 200) -> Response:
    db = get_session()
    group = _group(group_id)
    body = _resource(group, groups.members_of(db, [group])[group.id]).model_dump(scim_ctx=context, **_parameters())
    return _json(body, status, {"Location": _location(group.id)})


def _group(group_id: Any) -> DirectoryGroup:
    text = str(group_id)
    if not text.isdecimal() or len(text) > 9:
        raise ScimError(404, f"Group {text[:40]} not found.")
    try:
        return groups.get_group(get_session(), int(text))
    except NotFoundError:
        raise ScimError(404, f"Group {text[:40]} not found.") from None


GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _as_group(data: dict[str, Any], context: Context) -> Group:
    """The body as a core Group: extension schemas govern keeps nothing of (Entra ID names its ADSCIM one
    on every group) and their attributes are set aside rather than refused."""
    core = {k: v for k, v in data.items() if ":" not in k}
    core["schemas"] = [GROUP_SCHEMA]
    return Group.model_validate(core, scim_ctx=context)


def _actor() -> Any:
    return g.principal


def _member_ids(value: Any) -> list[int]:
    """SCIM member objects (or bare ids, as some clients send) to person ids."""
    return list(_members(value))


def _members(value: Any) -> dict[int, str]:
    """SCIM member objects (or bare ids, as some clients send): person id -> the label sent with it ("" if none)."""
    items = value if isinstance(value, list) else [value]
    out: dict[int, str] = {}
    for item in items:
        raw = item.get("value") if isinstance(item, dict) else item
        text = str(raw) if isinstance(raw, (str, int)) else ""
        if not text.isdecimal() or len(text) > 9:
            raise ScimError(400, f"A member must be a User id of this server, not {str(raw)[:40]!r}.", "invalidValue")
        display = item.get("display") if isinstance(item, dict) else None
        out[int(text)] = display if isinstance(display, str) else ""
    return out


def _domain_errors(call: Any) -> Any:
    try:
        return call()
    except ConflictError as exc:
        raise ScimError(409, exc.message, "uniqueness") from None
    except InvalidError as exc:
        raise ScimError(400, exc.message, "invalidValue") from None


@bp.route("/Groups", methods=["GET"])
@permission(PERMISSION)
def list_groups() -> Response:
    start_index = max(1, _int_arg("startIndex", 1))
    count = max(0, _int_arg("count", DEFAULT_COUNT))
    return _listing(request.args.get("filter"), start_index, count)


@bp.route("/Groups/.search", methods=["POST"])
@permission(PERMISSION)
def search_groups() -> Response:
    search = SearchRequest[Group].model_validate(_body(), scim_ctx=Context.SEARCH_REQUEST)
    start_index = max(1, _bounded("startIndex", search.start_index or 1))
    count = max(0, DEFAULT_COUNT if search.count is None else _bounded("count", search.count))
    return _listing(search.filter, start_index, count, search)


def _listing(filter_text: str | None, start_index: int, count: int, search: Any = None) -> Response:
    db = get_session()
    criteria: dict[str, Any] = {}
    if filter_text:
        match = _FILTER.match(filter_text)
        if match is None:
            raise ScimError(400, 'Only equality filters are supported on Groups: displayName eq "...", '
                                 'externalId eq "..." or id eq "...".', "invalidFilter")
        attribute, value = match.group(1).lower(), match.group(2).replace('\\"', '"')
        if attribute == "id":
            criteria["group_id"] = int(value) if value.isdecimal() and len(value) < 10 else -1
        else:
            criteria["display_name" if attribute == "displayname" else "external_id"] = value
    rows, total = groups.list_groups(db, start_index=start_index, count=min(count, 200), **criteria)
    members = groups.members_of(db, rows)
    listing = ListResponse[Group](total_results=total, start_index=start_index, items_per_page=len(rows),
                                  resources=[_resource(group, members[group.id]) for group in rows])
    return _json(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, **_parameters(search)))


@bp.route("/Groups", methods=["POST"])
@permission(PERMISSION)
def create_group() -> Response:
    db = get_session()
    data = _body()
    resource = _as_group(data, Context.RESOURCE_CREATION_REQUEST)
    members = _members(data.get("members") or [])
    group = _domain_errors(lambda: groups.create_group(db, actor=_actor(), display_name=resource.display_name or "",
                                                        external_id=resource.external_id, member_ids=list(members),
                                                        displays=members))
    db.commit()
    return _answer(group.id, Context.RESOURCE_CREATION_RESPONSE, 201)


@bp.route("/Groups/<group_id>", methods=["GET"])
@permission(PERMISSION)
def get_group(group_id: str) -> Response:
    return _answer(_group(group_id).id, Context.RESOURCE_QUERY_RESPONSE)


@bp.route("/Groups/<group_id>", methods=["PUT"])
@permission(PERMISSION)
def replace_group(group_id: str) -> Response:
    """The whole group as the client sends it (Okta pushes groups this way): name, external id, members."""
    db = get_session()
    group = _group(group_id)
    data = _body()
    resource = _as_group(data, Context.RESOURCE_REPLACEMENT_REQUEST)
    members = _members(data.get("members") or [])
    _domain_errors(lambda: groups.rename_group(db, actor=_actor(), group=group, display_name=resource.display_name or "",
                                               external_id=resource.external_id or ""))
    _domain_errors(lambda: groups.set_members(db, actor=_actor(), group=group, person_ids=list(members),
                                              displays=members))
    db.commit()
    return _answer(group.id, Context.RESOURCE_REPLACEMENT_RESPONSE)


@bp.route("/Groups/<group_id>", methods=["PATCH"])
@permission(PERMISSION)
def patch_group(group_id: str) -> Response:
    db = get_session()
    group = _group(group_id)
    data = _body()
    operations = data.get("Operations") or data.get("operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "A PATCH needs a list of Operations.", "invalidSyntax")
    for operation in operations:
        _domain_errors(lambda op=operation: _patch(group, op))
    db.commit()
    if request.args.get("attributes") or request.args.get("excludedAttributes"):
        return _answer(group.id, Context.RESOURCE_PATCH_RESPONSE)
    # Entra ID and Okta ignore the body of a PATCH answer; 204 spares listing a large group's members.
    return Response(status=204)


def _patch(group: DirectoryGroup, operation: Any) -> None:
    """One PATCH operation, in either dialect: Entra ID ("Add"/"Remove"/"Replace" with path "members" and
    a list of {"value": id}), Okta (remove by path members[value eq "id"], replace with a value object)."""
    db = get_session()
    if not isinstance(operation, dict):
        raise ScimError(400, "Each operation must be an object.", "invalidSyntax")
    op = str(operation.get("op", "")).lower()
    path = operation.get("path")
    value = operation.get("value")
    if op not in ("add", "remove", "replace"):
        raise ScimError(400, f"Unknown PATCH op {str(operation.get('op'))[:20]!r}: use add, remove or replace.",
                        "invalidSyntax")
    if path is None:
        if op == "remove":
            raise ScimError(400, "A remove needs a path.", "noTarget")
        if not isinstance(value, dict):
            raise ScimError(400, "Without a path, the value must be an object of attributes.", "invalidValue")
        _patch_attributes(group, op, value)
        return
    if not isinstance(path, str):
        raise ScimError(400, "path must be a string.", "invalidPath")
    member = _MEMBER_PATH.match(path)
    name = path.strip().lower()
    if member is not None:
        if op != "remove":
            raise ScimError(400, "Only remove takes a filtered members path.", "invalidPath")
        groups.remove_members(db, actor=_actor(), group=group, person_ids=_member_ids([member.group(1)]))
    elif name == "members":
        if op == "remove":
            groups.remove_members(db, actor=_actor(), group=group,
                                  person_ids=None if value in (None, []) else _member_ids(value))
        else:
            members = _members(value or [])
            change = groups.add_members if op == "add" else groups.set_members
            change(db, actor=_actor(), group=group, person_ids=list(members), displays=members)
    elif name in ("displayname", "externalid"):
        if op == "remove":
            if name == "displayname":
                raise ScimError(400, "displayName is required; it cannot be removed.", "mutability")
            groups.rename_group(db, actor=_actor(), group=group, external_id="")
        elif not isinstance(value, str):
            raise ScimError(400, f"{path} takes a string.", "invalidValue")
        elif name == "displayname":
            groups.rename_group(db, actor=_actor(), group=group, display_name=value)
        else:
            groups.rename_group(db, actor=_actor(), group=group, external_id=value)
    else:
        raise ScimError(400, f"govern does not keep {path[:60]!r} for groups: use members, displayName or externalId.",
                        "invalidPath")


def _patch_attributes(group: DirectoryGroup, op: str, value: dict[str, Any]) -> None:
    db = get_session()
    known = {"id", "displayname", "externalid", "members", "schemas"}
    unknown = [k for k in value if k.lower() not in known]
    if unknown:
        raise ScimError(400, f"govern does not keep {unknown[0][:60]!r} for groups.", "invalidPath")
    lowered = {k.lower(): v for k, v in value.items()}
    if "displayname" in lowered:
        if not isinstance(lowered["displayname"], str):
            raise ScimError(400, "displayName takes a string.", "invalidValue")
        groups.rename_group(db, actor=_actor(), group=group, display_name=lowered["displayname"])
    if "externalid" in lowered:
        groups.rename_group(db, actor=_actor(), group=group, external_id=str(lowered["externalid"] or ""))
    if "members" in lowered:
        members = _members(lowered["members"] or [])
        change = groups.add_members if op == "add" else groups.set_members
        change(db, actor=_actor(), group=group, person_ids=list(members), displays=members)


@bp.route("/Groups/<group_id>", methods=["DELETE"])
@permission(PERMISSION)
def delete_group(group_id: str) -> Response:
    db = get_session()
    groups.delete_group(db, actor=_actor(), group=_group(group_id))
    db.commit()
    return Response(status=204)
