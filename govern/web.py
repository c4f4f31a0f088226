"""Request plumbing shared by views: permissions, the fresh-MFA guard, safe redirects, headers."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from functools import wraps
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    has_app_context,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response as WerkzeugResponse

from govern import audit, timezones
from govern.audit.services import AuditContext, session_reference
from govern.crypto.auditkeys import AuditKeys, ChainKey
from govern.db import get_session, utcnow
from govern.errors import GovernError, InvalidError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Anyone, signed in or not (login pages, health check, static files).
PUBLIC = "public"
#: Any signed-in user: every user is also plain staff.
STAFF = "staff"

#: The one policy table: which app roles may use each permission. Every endpoint declares one
#: permission with @permission(...); an endpoint without one is refused (deny by default).
POLICY: dict[str, frozenset[str]] = {
    PUBLIC: frozenset({"*"}),
    STAFF: frozenset({"staff"}),
    "audit.read": frozenset({"admin", "auditor"}),
    "users.manage": frozenset({"admin"}),
    "users.read": frozenset({"admin", "auditor"}),
    # Object-level rules narrow these further (a manager sees their accounts and reports).
    "directory.read": frozenset({"admin", "hr", "it", "manager", "auditor"}),
    "directory.manage": frozenset({"admin", "hr"}),
    # The person picker of forms that choose a colleague (grants, successors, offboarding, account owners).
    "directory.pick": frozenset({"admin", "hr", "it", "manager"}),
    "accounts.read": frozenset({"admin", "it", "manager", "hr", "auditor"}),
    "accounts.manage": frozenset({"admin", "it"}),
    "roles.manage": frozenset({"admin"}),
    "grants.manage": frozenset({"admin", "manager"}),
    "grants.request": frozenset({"staff"}),
    "removals.confirm": frozenset({"admin", "it", "manager"}),
    "policies.manage": frozenset({"admin"}),
    "policies.accept": frozenset({"staff"}),
    "reports.read": frozenset({"admin", "auditor", "hr", "it", "manager"}),
    # Auditors read campaigns and their reports; only admins open and close them.
    "reviews.read": frozenset({"admin", "auditor"}),
    "reviews.manage": frozenset({"admin"}),
    "reviews.decide": frozenset({"staff"}),
    # Rotation: IT rotates and locks down; admins and auditors watch.
    "rotation.read": frozenset({"admin", "it", "auditor"}),
    "rotation.manage": frozenset({"it"}),
    # Incidents: IT locks an account down and closes its incident; admins and auditors watch.
    "incidents.read": frozenset({"admin", "it", "auditor"}),
    "incidents.manage": frozenset({"it"}),
    # The vault: object-level rules (govern.vault.access.refusal / can_see_secret) narrow
    # read and reveal to holders of a revealing role and IT; other ids answer 404.
    "vault.read": frozenset({"staff"}),
    "vault.reveal": frozenset({"staff"}),
    "vault.manage": frozenset({"admin", "it"}),
    "vault.reveal_seed": frozenset({"admin", "it"}),
    "jobs.read": frozenset({"admin"}),
    "jobs.manage": frozenset({"admin"}),
    "webhooks.manage": frozenset({"admin"}),
    # Vault tools: the password generator, its per-platform rules, and the import.
    "vault.generate": frozenset({"admin", "it"}),
    "vault.import": frozenset({"admin", "it"}),
    "vault.rules.read": frozenset({"admin", "it"}),
    "vault.rules.manage": frozenset({"admin"}),
    # Object-level rules narrow these further (a manager sees the offboardings of their reports).
    "connectors.read": frozenset({"admin", "it", "auditor"}),
    "connectors.manage": frozenset({"admin", "it"}),
    # Owners (managers) attest the members of accounts without an API; the service checks ownership.
    "connectors.attest": frozenset({"admin", "it", "manager"}),
    "offboarding.read": frozenset({"admin", "hr", "it", "manager", "auditor"}),
    "offboarding.manage": frozenset({"admin", "hr"}),
    "offboarding.work": frozenset({"admin", "hr", "it", "manager"}),
    "offboarding.skip": frozenset({"admin"}),
    "offboarding.evidence": frozenset({"admin", "hr", "auditor"}),
    "scim.tokens": frozenset({"admin"}),
    # API tokens: everyone makes their own (never beyond their roles); admins and IT make service tokens.
    "api.tokens.own": frozenset({"staff"}),
    "api.tokens.manage": frozenset({"admin", "it"}),
    # Identity providers, authenticated by a bearer token (see BEARER_AUTH), never by a session.
    "scim.provision": frozenset({"scim"}),
}

PERMISSION_ATTRIBUTE = "govern_permission"

#: Read permissions not named "<area>.read": the offboarding evidence report and its downloads.
_OTHER_READ_PERMISSIONS = frozenset({"offboarding.evidence"})
#: Roles that only read: POLICY gives them read permissions only (a test checks every entry).
READ_ONLY_ROLES = frozenset({"auditor"})


def is_read_permission(name: str) -> bool:
    """True when ``name`` only lets its holders read (pages, reports, exports), never change state."""
    return name.endswith(".read") or name in _OTHER_READ_PERMISSIONS


class BearerAuth(Protocol):
    """How the endpoints of a machine-facing permission authenticate their callers."""

    def authenticate(self) -> Any | None:
        """The caller (with ``roles``) named by the request's bearer token, or None."""

    def refuse(self, status: int) -> Response:
        """The API's own answer to an unauthenticated (401) or forbidden (403) call."""


#: Permissions whose callers present a bearer token instead of a session (e.g. SCIM). Their
#: endpoints still declare the permission and POLICY still decides; only the way the caller is
#: identified differs, and a session never counts for them.
BEARER_AUTH: dict[str, BearerAuth] = {}


#: Blueprints whose every endpoint is called with a bearer token (the API): their endpoints declare the
#: same permissions as the pages, POLICY decides with the token's roles, and a session never counts.
BEARER_BLUEPRINTS: dict[str, BearerAuth] = {}


def register_bearer_blueprint(blueprint_name: str, auth: BearerAuth) -> None:
    """Let every endpoint of ``blueprint_name`` identify callers by a bearer token."""
    BEARER_BLUEPRINTS[blueprint_name] = auth


def bearer_auth_of(permission_name: str) -> BearerAuth | None:
    """How the current request's caller is identified by a token, or None for a session."""
    blueprint = request.blueprint if has_request_context() else None
    if blueprint in BEARER_BLUEPRINTS:
        return BEARER_BLUEPRINTS[blueprint]
    return BEARER_AUTH.get(permission_name)


def register_bearer_auth(permission_name: str, auth: BearerAuth) -> None:
    """Let the endpoints of ``permission_name`` identify callers by a bearer token."""
    if permission_name not in POLICY:
        raise ValueError(f"unknown permission {permission_name!r}; add it to govern.web.POLICY")
    BEARER_AUTH[permission_name] = auth


def permission(name: str) -> Callable[[F], F]:
    """Declare which permission of POLICY a view needs."""
    if name not in POLICY:
        raise ValueError(f"unknown permission {name!r}; add it to govern.web.POLICY")

    def decorate(view: F) -> F:
        setattr(view, PERMISSION_ATTRIBUTE, name)
        return view

    return decorate


#: Attribute of a view: a function of the URL's arguments saying whether the signed-in user may
#: know that the object the URL names exists (see ``known_object``).
KNOWN_OBJECT_ATTRIBUTE = "govern_known_object"


def known_object(check: Callable[..., bool]) -> Callable[[F], F]:
    """Answer a refused permission with 404, like a missing object, when ``check(**url_args)`` says
    the user may not know the object exists: a 403 would tell them it does."""

    def decorate(view: F) -> F:
        setattr(view, KNOWN_OBJECT_ATTRIBUTE, check)
        return view

    return decorate


def roles_of(user: Any) -> frozenset[str]:
    """App roles of a user plus 'staff'; empty for anonymous visitors."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return frozenset(user.roles) | {"staff"}


def may(user: Any, permission_name: str) -> bool:
    """True when ``user`` holds a role that POLICY allows for ``permission_name``."""
    return roles_allow(roles_of(user), permission_name)


def roles_allow(roles: frozenset[str], permission_name: str) -> bool:
    """True when one of ``roles`` is one that POLICY allows for ``permission_name``."""
    allowed = POLICY[permission_name]
    return "*" in allowed or bool(allowed & roles)


#: An id no row has, used to find where the id goes in a route's URL.
_ID_MARK = 987_654_321_987


def id_url(endpoint: str, name: str) -> Callable[[int], str]:
    """``url_for(endpoint, **{name: id})`` for the many ids of a table: the route is built once.

    A 50-row table with two links a row otherwise spends more on building URLs than on its queries.
    """
    values: dict[str, Any] = {name: _ID_MARK}
    head, mark, tail = url_for(endpoint, **values).partition(str(_ID_MARK))
    if not mark:
        raise ValueError(f"{endpoint} does not put {name} in its URL")
    return lambda value: f"{head}{int(value)}{tail}"


def main_nav() -> Markup:
    """The layout's main navigation for the signed-in user on this page (templates/_partials/nav.html):
    the links the user's roles allow, the current area marked."""
    roles = roles_of(current_user)
    return Markup(render_template(  # noqa: S704 - an autoescaped template's output
        "_partials/nav.html", nav_roles=roles, bp=request.blueprint, ep=request.endpoint,
        may=lambda name: roles_allow(roles, name)))


def current_zone() -> tzinfo:
    """The zone this request shows times in: the user's own setting, else GOVERN_TIME_ZONE."""
    if not has_request_context():
        return timezones.zone(current_app.config.get("TIME_ZONE", timezones.DEFAULT_ZONE))
    cached: tzinfo | None = g.get("time_zone")
    if cached is None:
        name = getattr(current_user, "time_zone", None) if getattr(current_user, "is_authenticated", False) else None
        # A name the tz database no longer knows falls back to the organisation's zone.
        g.time_zone = cached = timezones.zone(name if timezones.is_zone_name(name) else current_app.config.get("TIME_ZONE", timezones.DEFAULT_ZONE))
    return cached


def when(moment: datetime | date | str | None, style: str = "minute") -> Markup | str:
    """Template filter for every time a page shows: ``<time>`` in the reader's zone, with the zone named.

    "4 Dec 2026, 10:15 CET"; style "seconds" adds the seconds; style "date" shows the day in that zone
    and names the full time and zone in the title. A dash when there is no time.
    """
    if moment is None or moment == "":
        return "\u2014"
    if isinstance(moment, str):  # an ISO time from a stored report (offboarding evidence)
        text = moment
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
    if not isinstance(moment, datetime):
        return timezones.format_day(moment)
    tz = current_zone()
    instant = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    stamp = instant.isoformat(timespec="seconds").replace("+00:00", "Z")
    text = timezones.format_moment(instant, tz, style)
    if style == "date":
        title = timezones.format_moment(instant, tz)
    elif timezones.zone_key(tz) != timezones.DEFAULT_ZONE:
        title = timezones.format_moment(instant, timezones.zone(timezones.DEFAULT_ZONE), style)
    else:
        title = ""
    title_attribute = Markup(' title="{}"').format(title) if title else ""
    return Markup('<time datetime="{}"{}>{}</time>').format(stamp, title_attribute, text)


def from_local(value: datetime | None) -> datetime | None:
    """A wall-clock time the user typed (naive, in their zone) as an aware moment in UTC."""
    if value is None:
        return None
    return (value if value.tzinfo is not None else value.replace(tzinfo=current_zone())).astimezone(UTC)


def to_local(moment: datetime | None) -> datetime | None:
    """A stored moment as the naive wall-clock time of the user's zone (to fill a datetime-local field)."""
    return moment.astimezone(current_zone()).replace(tzinfo=None) if moment is not None else None


def end_of_local_day(value: date | None) -> datetime | None:
    """"Until 30 November" lasts to the end of that day where the user is, stored in UTC."""
    return from_local(datetime.combine(value, time(23, 59, 59))) if value is not None else None


def day(moment: date | None) -> Markup | str:
    """Template filter for a calendar day: "4 Dec 2026", or a dash; a datetime's day is taken in the reader's zone."""
    return when(moment, "date")


def view_permission(app: Flask, endpoint: str | None) -> str | None:
    """The permission declared by the view behind ``endpoint`` (None when undeclared)."""
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, PERMISSION_ATTRIBUTE, None)


def enforce_permissions() -> WerkzeugResponse | None:
    """before_request: refuse any endpoint without a declared permission, and anyone not allowed."""
    if request.endpoint is None:
        return None  # routing failed; the 404/405 handler answers
    name = view_permission(current_app, request.endpoint)
    if name is None:
        current_app.logger.error("endpoint %s declares no permission; refused", request.endpoint)
        abort(403)
    bearer = bearer_auth_of(name)
    if name == PUBLIC and bearer is None:
        return None
    if bearer is not None:
        return _enforce_bearer(name, bearer)
    if not current_user.is_authenticated:
        if request.method == "GET":
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(401)
    if not may(current_user, name):
        db = get_session()
        audit.record(db, "authz.denied", actor=current_user, outcome="denied",
                     details={"endpoint": request.endpoint, "permission": name})
        db.commit()
        known = getattr(current_app.view_functions.get(request.endpoint), KNOWN_OBJECT_ATTRIBUTE, None)
        if known is not None and not known(**(request.view_args or {})):
            abort(404)
        abort(403)
    return None


def _enforce_bearer(name: str, auth: BearerAuth) -> Response | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if name == PUBLIC:
        return None
    principal = auth.authenticate()
    if principal is None:
        return auth.refuse(401)
    admits = getattr(auth, "admits", None)
    if not may(principal, name) or (admits is not None and not admits(principal, view)):
        db = get_session()
        audit.record(db, "authz.denied", actor=principal, outcome="denied",
                     details={"endpoint": request.endpoint, "permission": name})
        db.commit()
        return auth.refuse(403)
    g.principal = principal
    return None


def act(change: Callable[[], T], *, back: str, done: Callable[[T], Any], valid: bool = True,
        refused: str | None = None, invalid: Callable[[InvalidError], Any] | None = None,
        explain: Callable[[GovernError], str] | None = None) -> Any:
    """The one shape of a POST that changes something: check, call the service, commit, answer.

    Not ``valid`` (the form's check, done by the caller): flash ``refused`` (when given) and redirect
    to ``back``. Else ``change()`` calls the service; a domain error rolls the transaction back and
    is flashed (worded by ``explain``, else its message) with a redirect to ``back``, except that an
    InvalidError answers ``invalid(exc)`` when given (a form shown again with its errors). Success
    commits and answers ``done(result)`` (usually ``success(...)``).
    """
    if not valid:
        if refused is not None:
            flash(refused, "error")
        return redirect(back)
    db = get_session()
    try:
        result = change()
    except InvalidError as exc:
        db.rollback()
        if invalid is not None:
            return invalid(exc)
        flash(explain(exc) if explain else exc.message, "error")
        return redirect(back)
    except GovernError as exc:
        db.rollback()
        flash(explain(exc) if explain else exc.message, "error")
        return redirect(back)
    db.commit()
    return done(result)


def success(message: str, target: str, status: int = 302) -> WerkzeugResponse:
    """Flash ``message`` as a success and redirect to ``target`` (the answer of a POST that worked)."""
    flash(message, "success")
    return redirect(target, status)


def form_errors(form: Any, exc: GovernError, *, default: Any, fields: Mapping[str, str] | None = None,
                whole: bool = False) -> None:
    """Show a domain error on the form: each reason on the field it names (renamed by ``fields``,
    e.g. ``{"due_at": "due_on"}``), reasons for no field and a reasonless message on ``default``.

    With ``whole``, the error's own message (a sentence, where a reason is a word for its field) goes
    once, on the field of its first reason.
    """
    reasons = getattr(exc, "reasons", None) or {}
    if whole and reasons:
        reasons = {next(iter(reasons)): exc.message}
    if not reasons:
        default.errors = [exc.message]
    for name, message in reasons.items():
        getattr(form, (fields or {}).get(name, name), default).errors = [message]


def ensure_visible(allowed: bool) -> None:
    """Object-level check for later areas: answer 404 (not 403) so existence does not leak."""
    if not allowed:
        abort(404)


def mfa_is_fresh() -> bool:
    """True when a second factor was verified in this session within the freshness window."""
    row = getattr(session, "row", None)
    verified: datetime | None = getattr(row, "mfa_verified_at", None)
    if getattr(session, "mark_mfa_verified", False):
        return True
    return verified is not None and utcnow() - verified <= current_app.config["FRESH_MFA_WINDOW"]


def fresh_mfa_required(view: F) -> F:
    """Sensitive views: demand a TOTP code verified within the last 5 minutes (step-up)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not mfa_is_fresh():
            if request.method == "GET":
                return redirect(url_for("auth.reauth", next=request.full_path.rstrip("?")))
            abort(401)
        return view(*args, **kwargs)

    return cast(F, wrapper)  # wraps keeps the view's signature


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` limited to the range of a 32-bit integer column."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


MAX_PAGE = 100_000


def page_arg(name: str = "page") -> int:
    """The page number from the query string, clamped to 1..MAX_PAGE."""
    value = request.args.get(name, 1, type=int) or 1
    return min(max(1, value), MAX_PAGE)


def safe_next(target: str | None, default: str = "/") -> str:
    """Return ``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if not target or len(target) > 2000:
        return default
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def client_ip() -> str | None:
    """The client address (ProxyFix has already applied the configured hop count)."""
    return request.remote_addr


def current_audit_context() -> AuditContext:
    """Audit context of the current request: actor, client IP, session reference, request id."""
    if not has_request_context():
        return AuditContext(actor_label=g.get("audit_actor_label", "system") if _has_app_context() else "system")
    principal = g.get("principal")
    if principal is not None:
        # A bearer-token caller (SCIM): every event of its request names the token, including the
        # ones a service writes with no actor of its own (the sessions it ends, the tasks it opens).
        # An API token acts as a user: its events name the user and, in place of a session, the token.
        return AuditContext(actor_label=principal.email, actor_user_id=getattr(principal, "audit_user_id", None),
                            session_ref=getattr(principal, "audit_ref", None), ip=client_ip(),
                            request_id=g.get("request_id"))
    user = current_user
    digest = getattr(session, "digest", None)
    return AuditContext(
        actor_label=user.email if getattr(user, "is_authenticated", False) else "anonymous",
        actor_user_id=user.id if getattr(user, "is_authenticated", False) else None,
        ip=client_ip(),
        # SECRET_KEY comes from the environment or the key file (config.py): a str, never bytes.
        session_ref=session_reference(cast(str, current_app.secret_key), digest) if digest else None,
        request_id=g.get("request_id"),
    )


def current_chain_key(fallback: AuditKeys | None = None) -> ChainKey | None:
    """The key new audit events are chained with: the current app's primary audit HMAC key; outside an app
    context (a service called from a script), ``fallback``: the keys of the app this process built."""
    keys: AuditKeys | None = current_app.extensions.get("govern.audit_keys") if has_app_context() else None
    keys = keys or fallback
    return keys.chain_key() if keys is not None else None


def _has_app_context() -> bool:
    return has_app_context()


def reject_nul_bytes() -> None:
    """before_request: no field may carry a NUL byte (PostgreSQL refuses them; nobody types them)."""
    for source in (request.args, request.form):
        for key, values in source.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                abort(400)


def assign_request_id() -> None:
    """before_request: a random id that ties log lines and audit events of one request."""
    g.request_id = secrets.token_hex(8)


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def set_security_headers(response: Response) -> Response:
    """after_request: the headers every response carries, errors included."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: the CSRF check over HTTPS compares the Referer with our host,
    # and other sites still learn nothing.
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    headers["X-Frame-Options"] = "DENY"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if request.endpoint != "static":
        # Pages may show who holds what or reveal a credential: never keep them in any cache.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


# --- a form sent after the session expired ------------------------------------------------------

#: Where the session keeps the input of a form sent after the previous session had expired.
RESUME_KEY = "resume"
#: Fields never kept, by name: passwords, secret values, TOTP and recovery codes, tokens, seeds, keys
#: (``role_code`` names a role and is kept; ``code`` and ``totp_code`` are one-time codes and are not).
SECRET_FIELD = re.compile(r"pass|secret|token|seed|otp|key|^(code|recovery_code|value|value_lines|confirm)$",
                          re.IGNORECASE)
#: Bounds of what is kept: a form, not a dump.
RESUME_MAX_FIELDS = 50
RESUME_MAX_CHARS = 5000


def _same_site_path(url: str | None) -> str | None:
    """The path and query of ``url`` when it points at this site, else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return safe_next(target, "") or None


def resume_after_sign_in() -> WerkzeugResponse | None:
    """The answer to a POST whose CSRF check failed because the session had expired, or None.

    The user is sent to sign in and brought back to the form; when the form is the page that was
    posted to, its safe fields come back with it (never a password, secret value, code or token,
    nor a file). Forged or stale posts from a live or an absent session still get the 400 page.
    """
    if request.method != "POST" or not getattr(session, "expired", False):
        return None
    name = view_permission(current_app, request.endpoint)
    if name is None or name == PUBLIC or bearer_auth_of(name) is not None:
        return None
    rule = request.url_rule
    if rule is not None and "GET" in (rule.methods or ()):
        target = safe_next(request.full_path.rstrip("?"), url_for("home.index"))
        fields = [[key, value] for key, value in request.form.items(multi=True)
                  if not SECRET_FIELD.search(key) and len(key) < 100 and len(value) <= RESUME_MAX_CHARS]
        if fields:
            session[RESUME_KEY] = {"path": target, "user_id": getattr(session, "expired_user_id", None),
                                   "fields": fields[:RESUME_MAX_FIELDS]}
        flash("Your session ended before the form was sent. Sign in again: the form comes back with what you "
              "typed (passwords and codes excepted), to check and send again.", "info")
    else:
        target = _same_site_path(request.referrer) or url_for("home.index")
        flash("Your session ended before the form was sent, so nothing was done. Sign in again and send it again.",
              "info")
    return redirect(url_for("auth.login", next=target), 303)


def restore_resumed_form() -> None:
    """before_request: on the page of a form kept at an expired session, give the form its input back.

    Only for the user whose session it was, only on that page, once; any other page drops it.
    """
    kept = session.get(RESUME_KEY) if request.method == "GET" else None
    if not isinstance(kept, dict) or not getattr(current_user, "is_authenticated", False):
        return
    session.pop(RESUME_KEY, None)
    if kept.get("path") != request.full_path.rstrip("?") or kept.get("user_id") != current_user.id:
        return
    fields = [(str(k), str(v)) for k, v in kept.get("fields", []) if not SECRET_FIELD.search(str(k))]
    g.resumed_formdata = MultiDict(fields)
    flash("Here is the form as you left it. Check it and send it again.", "info")
