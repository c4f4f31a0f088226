"""Request plumbing shared by views: permissions, the fresh-MFA guard, safe redirects, headers."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, datetime
from functools import wraps
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup
from werkzeug.routing import IntegerConverter

from govern.audit.services import AuditContext, session_reference
from govern.db import utcnow

F = TypeVar("F", bound=Callable[..., Any])

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
    # The vault: object-level rules (govern.vault.services.refusal / can_see_secret) narrow
    # read and reveal to holders of a revealing role and IT; other ids answer 404.
    "vault.read": frozenset({"staff"}),
    "vault.reveal": frozenset({"staff"}),
    "vault.manage": frozenset({"admin", "it"}),
    "vault.reveal_seed": frozenset({"admin", "it"}),
    "jobs.read": frozenset({"admin"}),
    "jobs.manage": frozenset({"admin"}),
    # Vault tools: the password generator, its per-platform rules, and the import.
    "vault.generate": frozenset({"admin", "it"}),
    "vault.import": frozenset({"admin", "it"}),
    "vault.rules.read": frozenset({"admin", "it"}),
    "vault.rules.manage": frozenset({"admin"}),
    # Object-level rules narrow these further (a manager sees the offboardings of their reports).
    "offboarding.read": frozenset({"admin", "hr", "it", "manager", "auditor"}),
    "offboarding.manage": frozenset({"admin", "hr"}),
    "offboarding.work": frozenset({"admin", "hr", "it", "manager"}),
    "offboarding.skip": frozenset({"admin"}),
    "offboarding.evidence": frozenset({"admin", "hr", "auditor"}),
    "scim.tokens": frozenset({"admin"}),
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
    head, mark, tail = url_for(endpoint, **{name: _ID_MARK}).partition(str(_ID_MARK))
    if not mark:
        raise ValueError(f"{endpoint} does not put {name} in its URL")
    return lambda value: f"{head}{int(value)}{tail}"


#: Rendered navigations kept per app: a handful of role sets times the pages' endpoints.
NAV_CACHE_LIMIT = 4096


def main_nav() -> Markup:
    """The layout's main navigation for the signed-in user on this page (templates/_partials/nav.html).

    It depends only on the user's roles, the page's endpoint and where the app is mounted, so it is
    rendered once per such key and reused: rendering it took about 0.1 ms of every admin page (14 links,
    each a macro call and a url_for). A role change shows at once, since the roles are part of the key.
    """
    roles = roles_of(current_user)
    key = (roles, request.blueprint, request.endpoint, request.script_root)
    cache: dict[tuple[Any, ...], Markup] = current_app.extensions.setdefault("govern.nav_cache", {})
    html = cache.get(key)
    if html is None:
        if len(cache) >= NAV_CACHE_LIMIT:
            cache.clear()
        html = cache[key] = Markup(render_template(  # noqa: S704 - an autoescaped template's output
            "_partials/nav.html", nav_roles=roles, bp=request.blueprint, ep=request.endpoint,
            may=lambda name: roles_allow(roles, name)))
    return html


def minute_utc(moment: datetime | None) -> str:
    """Template filter: "2026-11-30 14:05 UTC", or a dash when there is no time."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "\u2014"


def day(moment: date | None) -> str:
    """Template filter: "2026-11-30", or a dash when there is no date."""
    return moment.strftime("%Y-%m-%d") if moment else "\u2014"


def view_permission(app: Flask, endpoint: str | None) -> str | None:
    """The permission declared by the view behind ``endpoint`` (None when undeclared)."""
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC
    view = app.view_functions.get(endpoint)
    return getattr(view, PERMISSION_ATTRIBUTE, None)


def enforce_permissions() -> Response | None:
    """before_request: refuse any endpoint without a declared permission, and anyone not allowed."""
    if request.endpoint is None:
        return None  # routing failed; the 404/405 handler answers
    name = view_permission(current_app, request.endpoint)
    if name is None:
        current_app.logger.error("endpoint %s declares no permission; refused", request.endpoint)
        abort(403)
    if name == PUBLIC:
        return None
    if name in BEARER_AUTH:
        return _enforce_bearer(name, BEARER_AUTH[name])
    if not current_user.is_authenticated:
        if request.method == "GET":
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        abort(401)
    if not may(current_user, name):
        from govern import audit
        from govern.db import get_session

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
    principal = auth.authenticate()
    if principal is None:
        return auth.refuse(401)
    if not may(principal, name):
        from govern import audit
        from govern.db import get_session

        db = get_session()
        audit.record(db, "authz.denied", actor=principal, outcome="denied",
                     details={"endpoint": request.endpoint, "permission": name})
        db.commit()
        return auth.refuse(403)
    g.principal = principal
    return None


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

    return wrapper  # type: ignore[return-value]


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
    from flask import has_request_context

    if not has_request_context():
        return AuditContext(actor_label=g.get("audit_actor_label", "system") if _has_app_context() else "system")
    user = current_user
    digest = getattr(session, "digest", None)
    return AuditContext(
        actor_label=user.email if getattr(user, "is_authenticated", False) else "anonymous",
        actor_user_id=user.id if getattr(user, "is_authenticated", False) else None,
        ip=client_ip(),
        session_ref=session_reference(current_app.secret_key, digest) if digest else None,  # type: ignore[arg-type]
        request_id=g.get("request_id"),
    )


def _has_app_context() -> bool:
    from flask import has_app_context

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
