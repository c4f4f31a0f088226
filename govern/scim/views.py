"""The SCIM 2.0 API at /scim/v2 (bearer tokens, no CSRF, SCIM errors) and the admin page of its tokens."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user
from pydantic import ValidationError
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    ListResponse,
    Meta,
    Patch,
    Required,
    ResourceType,
    ResponseParameters,
    Schema,
    SCIMException,
    SearchRequest,
    ServiceProviderConfig,
    Sort,
    User,
)
from sqlalchemy.exc import InterfaceError, OperationalError, PendingRollbackError, SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from govern import web
from govern.auth import once
from govern.db import get_session
from govern.errors import ConflictError, GovernError, InvalidError, NotFoundError
from govern.offboarding.settings import Settings, settings_from
from govern.scim import services
from govern.scim.services import ScimError, ScimUser
from govern.web import ensure_visible, fresh_mfa_required, permission

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
admin_bp = Blueprint("scim_admin", __name__, url_prefix="/admin/scim-tokens")

MEDIA_TYPE = "application/scim+json"
PERMISSION = "scim.provision"
DEFAULT_COUNT = 100
#: The attributes govern stores; the published schemas list only these, so a client knows
#: what round-trips.
USER_ATTRIBUTES = {"userName", "name", "displayName", "title", "active", "emails"}
NAME_ATTRIBUTES = {"formatted", "givenName", "familyName"}
ENTERPRISE_ATTRIBUTES = {"employeeNumber", "department"}


# --- plumbing -------------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, mimetype=MEDIA_TYPE, headers=headers or {})


def error(status: int, detail: str, scim_type: str | None = None) -> Response:
    """A SCIM error response (RFC 7644 section 3.12)."""
    body: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    headers = {"WWW-Authenticate": 'Bearer realm="govern SCIM"'} if status == 401 else None
    return _json(body, status, headers)


class _ScimBearer:
    """Bearer-token authentication of the SCIM endpoints (see govern.web.BEARER_AUTH)."""

    def authenticate(self) -> Any | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return services.authenticate(get_session(), token.strip())

    def refuse(self, status: int) -> Response:
        if status == 401:
            return error(401, "A valid bearer token is required: an admin creates one under Admin, SCIM tokens.")
        return error(403, "This token may not do this.")


@bp.record_once
def _register(_state: Any) -> None:
    web.register_bearer_auth(PERMISSION, _ScimBearer())


@bp.errorhandler(ScimError)
def _scim_error(exc: ScimError) -> Response:
    get_session().rollback()
    return error(exc.status, exc.detail, exc.scim_type)


@bp.errorhandler(SCIMException)
def _scim_exception(exc: SCIMException) -> Response:
    get_session().rollback()
    err = exc.to_error()
    return error(int(err.status or 400), err.detail or "The request is not valid SCIM.", err.scim_type)


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    get_session().rollback()
    errors = exc.errors()
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return error(400, f"Invalid value{' for ' + where if where else ''}: {first.get('msg', 'not valid')}"[:500], "invalidValue")


@bp.errorhandler(GovernError)
def _domain(exc: GovernError) -> Response:
    get_session().rollback()
    return error(exc.status_code if exc.status_code in (400, 403, 404, 409) else 400, exc.message)


@bp.errorhandler(404)
def _not_found(_exc: Any) -> Response:
    return error(404, "No such SCIM endpoint or resource.")


@bp.errorhandler(405)
def _not_allowed(_exc: Any) -> Response:
    return error(405, "This endpoint does not accept that method.")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    # An error raised outside the view (the token check) arrives as a 500 wrapping the original.
    down = (OperationalError, InterfaceError, PendingRollbackError)
    if isinstance(exc, down) or isinstance(getattr(exc, "original_exception", None), down):
        # The database is down: a 503 the identity provider retries, as the web pages answer (scripts/soak).
        # Nothing after this may use the broken transaction (the after-request hooks check the flag).
        g.database_down = True
        with contextlib.suppress(SQLAlchemyError):
            get_session().rollback()
        current_app.logger.error("database unavailable on SCIM %s %s", request.method, request.endpoint)
        return error(503, "govern cannot reach its database; nothing was changed. Try again later.")
    if isinstance(exc, HTTPException):
        return error(exc.code or 400, exc.description or "The request could not be completed.")
    get_session().rollback()
    current_app.logger.error("unexpected error on SCIM %s %s", request.method, request.endpoint, exc_info=exc)
    return error(500, "govern hit an unexpected problem; nothing was changed.")


def _body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    return data


def _location(person_id: int) -> str:
    return url_for("scim.get_user", user_id=str(person_id), _external=True)


def _attribute_args() -> dict[str, Any]:
    """The attributes / excludedAttributes query parameters, as scim2-models' response parameters."""
    attributes = request.args.get("attributes")
    excluded = request.args.get("excludedAttributes")
    if not attributes and not excluded:
        return {}
    values = {k: v for k, v in (("attributes", attributes), ("excludedAttributes", excluded)) if v}
    return {"response_parameters": ResponseParameters[ScimUser].model_validate(values)}


def _dump(resource: Any, context: Context) -> dict[str, Any]:
    dumped: dict[str, Any] = resource.model_dump(scim_ctx=context, **_attribute_args())
    return dumped


def _user_response(person_id: int, context: Context, status: int = 200) -> Response:
    db = get_session()
    person, identity = services.find_user(db, str(person_id))
    location = _location(person.id)
    body = _dump(services.to_resource(db, person, identity, location), context)
    return _json(body, status, {"Location": location})


def _offboarding_settings() -> Settings:
    """The deadlines HR configured: an offboarding started by the identity provider keeps them too."""
    return settings_from(current_app.config)


def _principal() -> services.ScimPrincipal:
    principal: services.ScimPrincipal = g.principal
    return principal


# --- discovery ------------------------------------------------------------------------------------


def _schemas() -> list[Schema]:
    user = User.to_schema()
    user.attributes = [a for a in user.attributes or [] if a.name in USER_ATTRIBUTES]
    for attribute in user.attributes:
        if attribute.name == "active":
            # A person is always either active or not: govern never leaves it unassigned.
            attribute.required = Required.true
        if attribute.name == "name":
            attribute.sub_attributes = [s for s in attribute.sub_attributes or [] if s.name in NAME_ATTRIBUTES]
    enterprise = EnterpriseUser.to_schema()
    enterprise.attributes = [a for a in enterprise.attributes or [] if a.name in ENTERPRISE_ATTRIBUTES]
    group = Group.to_schema()

    for schema in (user, enterprise, group):
        schema.meta = Meta(resource_type="Schema", location=url_for("scim.schema", schema_id=schema.id, _external=True))
    return [user, enterprise, group]


def _resource_types() -> list[ResourceType]:
    out = []
    for name, model in (("User", ScimUser), ("Group", Group)):
        resource_type = ResourceType.from_resource(model)
        resource_type.meta = Meta(resource_type="ResourceType",
                                  location=url_for("scim.resource_type", type_id=name, _external=True))
        out.append(resource_type)
    return out


@bp.route("/ServiceProviderConfig")
@permission(PERMISSION)
def service_provider_config() -> Response:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=services.MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken, name="Bearer token",
            description="A token an admin creates in govern under Admin, SCIM tokens.", primary=True)],
        meta=Meta(resource_type="ServiceProviderConfig", location=url_for("scim.service_provider_config", _external=True)),
    )
    return _json(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


@bp.route("/Schemas")
@permission(PERMISSION)
def schemas() -> Response:
    items = _schemas()
    listing = ListResponse[Schema](total_results=len(items), start_index=1, items_per_page=len(items), resources=items)
    return _json(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@bp.route("/Schemas/<path:schema_id>")
@permission(PERMISSION)
def schema(schema_id: str) -> Response:
    for item in _schemas():
        if item.id == schema_id:
            return _json(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    return error(404, f"No schema {schema_id[:100]}.")


@bp.route("/ResourceTypes")
@permission(PERMISSION)
def resource_types() -> Response:
    items = _resource_types()
    listing = ListResponse[ResourceType](total_results=len(items), start_index=1, items_per_page=len(items),
                                         resources=items)
    return _json(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@bp.route("/ResourceTypes/<type_id>")
@permission(PERMISSION)
def resource_type(type_id: str) -> Response:
    for item in _resource_types():
        if item.id == type_id:
            return _json(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    return error(404, f"No resource type {type_id[:100]}.")


# --- users ----------------------------------------------------------------------------------------


#: The largest startIndex or count a client may send (a 32-bit integer, as most SCIM clients use):
#: beyond it the database could not take the value as an offset.
MAX_INTEGER = 2**31 - 1


def _bounded(name: str, value: int) -> int:
    """``value`` when it is within +-MAX_INTEGER, else a SCIM 400 (never an overflow deeper down)."""
    if not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise ScimError(400, f"{name} must be a whole number between -{MAX_INTEGER} and {MAX_INTEGER}.", "invalidValue")
    return value


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 20 or not raw.lstrip("+-").isdecimal():
        raise ScimError(400, f"{name} must be a whole number.", "invalidValue")
    return _bounded(name, int(raw))


@bp.route("/<path:anything>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@permission(PERMISSION)
def unknown(anything: str) -> Response:
    # Werkzeug prefers this rule over a 405 for a known endpoint called with another method.
    head = anything.split("/", 1)[0]
    if head in ("ServiceProviderConfig", "Schemas", "ResourceTypes", "Users", "Groups") and anything.count("/") <= 1:
        return error(405, "This endpoint does not accept that method.")
    return error(404, "No such SCIM endpoint or resource.")


@bp.route("/Users", methods=["GET"])
@permission(PERMISSION)
def list_users() -> Response:
    db = get_session()
    start_index = max(1, _int_arg("startIndex", 1))
    count = max(0, _int_arg("count", DEFAULT_COUNT))
    rows, total = services.list_users(db, filter_text=request.args.get("filter"), start_index=start_index, count=count)
    resources = [services.to_resource(db, person, identity, _location(person.id)) for person, identity in rows]
    listing = ListResponse[ScimUser](total_results=total, start_index=start_index, items_per_page=len(resources),
                                     resources=resources)
    return _json(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, **_attribute_args()))


@bp.route("/.search", methods=["POST"])
@permission(PERMISSION)
def search_everything() -> Response:
    # RFC 7644 3.4.3: a search at the root spans every resource type; govern searches one at a time.
    return error(501, "Search one resource type at a time: POST /Users/.search or /Groups/.search.")


@bp.route("/Users/.search", methods=["POST"])
@permission(PERMISSION)
def search_users() -> Response:
    db = get_session()
    search = SearchRequest[ScimUser].model_validate(_body(), scim_ctx=Context.SEARCH_REQUEST)
    start_index = max(1, _bounded("startIndex", search.start_index or 1))
    count = max(0, DEFAULT_COUNT if search.count is None else _bounded("count", search.count))
    rows, total = services.list_users(db, filter_text=search.filter, start_index=start_index, count=count)
    resources = [services.to_resource(db, person, identity, _location(person.id)) for person, identity in rows]
    listing = ListResponse[ScimUser](total_results=total, start_index=start_index, items_per_page=len(resources),
                                     resources=resources)
    return _json(listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=search))


@bp.route("/Users", methods=["POST"])
@permission(PERMISSION)
def create_user() -> Response:
    db = get_session()
    user = ScimUser.model_validate(_body(), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    person = services.create_user(db, actor=_principal(), user=user, settings=_offboarding_settings())
    db.commit()
    return _user_response(person.id, Context.RESOURCE_CREATION_RESPONSE, 201)


@bp.route("/Users/<user_id>", methods=["GET"])
@permission(PERMISSION)
def get_user(user_id: str) -> Response:
    person, _identity = services.find_user(get_session(), user_id)
    return _user_response(person.id, Context.RESOURCE_QUERY_RESPONSE)


@bp.route("/Users/<user_id>", methods=["PUT"])
@permission(PERMISSION)
def replace_user(user_id: str) -> Response:
    db = get_session()
    person, _identity = services.find_user(db, user_id)
    user = ScimUser.model_validate(_body(), scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    services.replace_user(db, actor=_principal(), person=person, user=user, settings=_offboarding_settings())
    db.commit()
    return _user_response(person.id, Context.RESOURCE_REPLACEMENT_RESPONSE)


@bp.route("/Users/<user_id>", methods=["PATCH"])
@permission(PERMISSION)
def patch_user(user_id: str) -> Response:
    db = get_session()
    person, identity = services.find_user(db, user_id)
    services.patch_user(db, actor=_principal(), person=person, identity=identity, body=_body(), location=_location(person.id),
                        settings=_offboarding_settings())
    db.commit()
    return _user_response(person.id, Context.RESOURCE_PATCH_RESPONSE)


@bp.route("/Users/<user_id>", methods=["DELETE"])
@permission(PERMISSION)
def delete_user(user_id: str) -> Response:
    db = get_session()
    person, _identity = services.find_user(db, user_id)
    services.delete_user(db, actor=_principal(), person=person, settings=_offboarding_settings())
    db.commit()
    return Response(status=204)


# --- the admin page of tokens -----------------------------------------------------------------------


@admin_bp.route("/")
@permission("scim.tokens")
def tokens() -> str:
    return render_template("scim/tokens.html", tokens=services.list_tokens(get_session()),
                           scim_url=url_for("scim.list_users", _external=True).rsplit("/Users", 1)[0])


@admin_bp.route("/", methods=["POST"])
@permission("scim.tokens")
@fresh_mfa_required
def create_token() -> Any:
    db = get_session()
    try:
        row, token = services.create_token(db, actor=current_user, name=request.form.get("name", ""))
    except InvalidError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("scim_admin.tokens"))
    db.commit()
    once.keep(session, current_app.extensions["govern.auth"], user_id=current_user.id, kind="scim_token",
              payload={"token": token, "token_id": row.id})
    return redirect(url_for("scim_admin.token_created", token_id=row.id), 303)


@admin_bp.route("/<int:token_id>/created")
@permission("scim.tokens")
def token_created(token_id: int) -> Any:
    """A new token, shown once to the admin who created it."""
    shown = once.take(session, current_app.extensions["govern.auth"], user_id=current_user.id, kind="scim_token")
    row = services.get_token(get_session(), token_id) if shown is not None and shown.get("token_id") == token_id else None
    if shown is None or row is None:
        flash("A token is shown only once, right after it is created. If you did not copy it, revoke it and create another.",
              "info")
        return redirect(url_for("scim_admin.tokens"))
    return render_template("scim/token_created.html", row=row, token=shown["token"],
                           scim_url=url_for("scim.list_users", _external=True).rsplit("/Users", 1)[0])


@admin_bp.route("/<int:token_id>/revoke", methods=["POST"])
@permission("scim.tokens")
@fresh_mfa_required
def revoke_token(token_id: int) -> WerkzeugResponse:
    db = get_session()
    try:
        services.revoke_token(db, actor=current_user, token=services.get_token(db, token_id))
    except NotFoundError:
        ensure_visible(False)
        raise
    except ConflictError as exc:
        db.rollback()
        flash(exc.message, "error")
        return redirect(url_for("scim_admin.tokens"))
    db.commit()
    flash("Token revoked: the identity provider's next call is refused.", "success")
    return redirect(url_for("scim_admin.tokens"))


# The /Groups routes join this blueprint (they use the helpers above).
from govern.scim import group_views  # noqa: E402,F401
