"""The composition root: `create_app` builds the application from small register_* helpers.

Only this module (with the CLI and the WSGI entry point) imports views.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from flask import Flask, Response, g, render_template, request, session
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import DataError, InterfaceError, OperationalError, PendingRollbackError, SQLAlchemyError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from govern import audit, timezones, web
from govern.accounts.views import bp as accounts_bp
from govern.api.blueprint import down_problem, http_problem, is_api_request
from govern.api.problems import problem as api_problem
from govern.api.ratelimit import DatabaseRateStore, RedisRateStore
from govern.api.routes import bp as api_bp
from govern.api.token_views import bp as api_tokens_bp
from govern.audit import services as audit_services
from govern.audit.services import lock_chain_head
from govern.audit.views import bp as audit_bp
from govern.auth.kit import AuthKit
from govern.auth.models import User
from govern.auth.passkey_views import bp as passkeys_bp
from govern.auth.passwords import PasswordHashing
from govern.auth.sessions import ServerSessionInterface
from govern.auth.throttle import (
    DatabaseThrottleStore,
    RedisThrottleStore,
    ThrottlePolicy,
    ThrottleStore,
    ThrottleUnavailableError,
)
from govern.auth.views import bp as auth_bp
from govern.config import ConfigError, load_config
from govern.connectors.views import bp as connectors_bp
from govern.crypto.auditkeys import AuditKeyError, AuditKeys
from govern.crypto.keyring import Keyring, KeyringError
from govern.crypto.secretbox import SecretBox, derive_key
from govern.db import Database, database, get_session
from govern.db_tuning import READ_METHODS, discard_uncommitted, enter_view
from govern.directory.views import bp as directory_bp
from govern.errors import AuditWriteError, GovernError, ThrottledError
from govern.grants.views import bp as grants_bp
from govern.groups.views import bp as groups_bp
from govern.home.views import bp as home_bp
from govern.incidents.views import bp as incidents_bp
from govern.jobs.views import bp as jobs_bp
from govern.logs import configure_logging
from govern.notifications.views import bp as notifications_bp
from govern.offboarding.views import bp as offboarding_bp
from govern.policies.views import bp as policies_bp
from govern.reports.views import bp as reports_bp
from govern.reviews.views import bp as reviews_bp
from govern.rotation.views import bp as rotation_bp
from govern.schema import ensure_current
from govern.scim.views import admin_bp as scim_admin_bp
from govern.scim.views import bp as scim_bp
from govern.shipping.views import bp as sinks_bp
from govern.sso.services import SsoKit
from govern.sso.views import bp as sso_bp
from govern.subscribers import connect_all
from govern.uploads import InMemoryUploadsRequest
from govern.users.views import bp as users_bp
from govern.vault.keys import keyring_problem_at_start
from govern.vault.tool_views import bp as vault_tools_bp
from govern.vault.views import bp as vault_bp
from govern.web import BoundedIntConverter
from govern.webhooks.views import account_bp as notification_settings_bp
from govern.webhooks.views import bp as webhooks_bp

__all__ = ["create_app"]

log = logging.getLogger("govern")
csrf = CSRFProtect()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the govern application (the composition root)."""
    settings = load_config(config)
    app = Flask(
        "govern",  # the package, not this module: app.name and app.logger stay "govern"
        template_folder="../templates",
        static_folder="../static",
        instance_path=str(settings["INSTANCE_PATH"]),
    )
    app.config.update(settings)
    register_proxy(app)
    register_database(app)
    register_sessions(app)
    register_security(app)
    register_auth(app)
    register_keyring(app)
    register_audit_keys(app)
    register_blueprints(app)
    register_errors(app)
    register_templates(app)
    # Every entry point (web, SCIM, CLI, jobs, tests) builds the app, so every one reacts to the events.
    connect_all()
    # Last of the before_request hooks: see govern.db_tuning.enter_view.
    app.before_request(enter_view)
    app.before_request(_audit_head_first)
    return app


def register_proxy(app: Flask) -> None:
    """Trust exactly the configured number of reverse proxies for client IP and scheme."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]  # Flask's documented way to wrap the WSGI app


def register_database(app: Flask) -> None:
    """Engine, per-context session, and the refusal to serve an out-of-date schema."""
    db = Database(app.config["DATABASE_URL"], lock_timeout_seconds=app.config["DB_LOCK_TIMEOUT_SECONDS"],
                  statement_timeout_seconds=app.config["DB_STATEMENT_TIMEOUT_SECONDS"])
    db.init_app(app)
    if app.config["REQUIRE_CURRENT_SCHEMA"]:
        ensure_current(db.engine)


def register_sessions(app: Flask) -> None:
    """Server-side sessions; uncommitted work of a request never rides along with the session save."""
    app.session_interface = ServerSessionInterface()

    @app.after_request
    def _discard_uncommitted(response: Response) -> Response:
        # Registered first, so it runs last among after_request hooks, just before the session
        # is saved: whatever a view flushed but did not commit is rolled back, not saved.
        if "db_session" in g and not g.get("database_down"):
            try:
                discard_uncommitted(g.db_session)
            except SQLAlchemyError:  # a transaction the database broke: it can only be rolled back
                g.database_down = True
                _rollback_quietly(g.db_session)
        return response


def _audit_head_first() -> None:
    """PostgreSQL: a request that may change state takes the audit chain head's lock before anything else.

    Every change writes an audit event, and the head stays locked from a transaction's first event to its
    commit; a view that updated other rows (a rotation task) before its first event could wait for one
    holding the head that wanted those rows: a deadlock, which scripts/soak met under load. Taking the
    head first gives every writer one lock order. It costs no concurrency the audit trail did not already
    take: writers were serialised from their first event on. SQLite's BEGIN IMMEDIATE orders writers already.
    """
    if request.method in READ_METHODS:
        return
    session = get_session()
    if session.get_bind().dialect.name == "postgresql":
        lock_chain_head(session)


def _rollback_quietly(session: Any) -> None:
    """End a transaction the database broke; a dead connection may refuse even that, which is fine here."""
    with contextlib.suppress(SQLAlchemyError):
        session.rollback()


#: Errors that mean the database cannot be used right now: a dead or refused connection, or a
#: transaction it broke that something tried to use again. Each is a 503, never a 500.
DATABASE_DOWN = (OperationalError, InterfaceError, PendingRollbackError)


def register_security(app: Flask) -> None:
    """CSRF on every state-changing request, request ids, permissions, headers."""
    csrf.init_app(app)
    app.request_class = InMemoryUploadsRequest
    audit_services.context_provider = web.current_audit_context
    # Set once the keys are loaded (register_audit_keys, below in create_app).
    app.before_request(web.assign_request_id)
    app.before_request(web.reject_nul_bytes)
    app.before_request(web.enforce_permissions)
    app.before_request(web.restore_resumed_form)
    app.after_request(web.set_security_headers)
    if not app.testing:
        configure_logging()


def register_auth(app: Flask) -> None:
    """Flask-Login over the server-side session, and the auth services' injected kit."""
    login_manager = LoginManager()
    login_manager.session_protection = None  # the server-side session table does this job
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    login_manager.init_app(app)

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        # Only a live server-side session that completed both factors identifies a user; this
        # also shuts Flask-Login's remember-me cookie path, which govern does not use.
        row = getattr(session, "row", None)
        if not user_id.isdigit() or row is None or row.authenticated_at is None or row.user_id != int(user_id):
            return None
        # Read with the session row, in the same statement (see ServerSessionInterface.open_session).
        user = getattr(session, "user", None)
        if user is None or user.id != int(user_id):
            user = get_session().get(User, int(user_id), options=[joinedload(User.role_rows)])
        # Authorisation is re-read from the database on every request.
        # A single sign-on session needs no TOTP enrolment: the identity provider vouched for the person.
        return user if user is not None and user.is_active and (user.has_mfa or bool(session.get("sso_provider_id"))) else None

    keys = [app.config["SECRET_KEY"], *app.config["SECRET_KEY_FALLBACKS"]]
    throttle: ThrottleStore = (
        RedisThrottleStore(app.config["REDIS_URL"]) if app.config["REDIS_URL"] else DatabaseThrottleStore()
    )
    app.extensions["govern.sso"] = SsoKit()
    app.extensions["govern.auth"] = AuthKit(
        hashing=PasswordHashing(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_KIB"]),
        mfa_box=SecretBox([derive_key(k.encode(), "govern/users.mfa_seed/v1") for k in keys]),
        throttle=throttle,
        account_policy=ThrottlePolicy(
            app.config["LOGIN_MAX_FAILURES"], app.config["LOGIN_LOCKOUT_SECONDS"], app.config["LOGIN_LOCKOUT_MAX_SECONDS"]
        ),
        ip_policy=ThrottlePolicy(
            app.config["LOGIN_IP_MAX_FAILURES"], app.config["LOGIN_LOCKOUT_SECONDS"], app.config["LOGIN_LOCKOUT_MAX_SECONDS"]
        ),
        setup_token_ttl=app.config["SETUP_TOKEN_TTL"] if isinstance(app.config["SETUP_TOKEN_TTL"], timedelta) else timedelta(hours=72),
        issuer=f"govern ({app.config['ORGANISATION_NAME']})" if app.config["ORGANISATION_NAME"] else "govern",
        organisation_name=app.config["ORGANISATION_NAME"] or "",
    )


def register_keyring(app: Flask) -> None:
    """Load the vault keyring from outside the database; without one the vault stays sealed."""
    app.extensions["govern.keyring"] = None
    app.extensions["govern.keyring_problem"] = None
    try:
        if app.config["VAULT_KEYRING_JSON"]:
            app.extensions["govern.keyring"] = Keyring.from_json(app.config["VAULT_KEYRING_JSON"])
        else:
            key_file = app.config["VAULT_KEY_FILE"]
            # `govern keys rotate` and `rewrap` run in another process: a worker that meets a data
            # key wrapped by a KEK it does not know reads the key file again (once per id in a
            # while) instead of answering 409 until a restart. A keyring from the environment has
            # nothing to reload: the variable cannot change under a running process.
            app.extensions["govern.keyring"] = Keyring.load(key_file)
            app.extensions["govern.keyring"].source = lambda: Keyring.load(key_file)
    except (KeyringError, OSError, json.JSONDecodeError) as exc:
        app.extensions["govern.keyring_problem"] = str(exc)
        log.warning("vault sealed: %s", exc)
    keyring = app.extensions["govern.keyring"]
    if keyring is not None and "govern.db" in app.extensions:
        # A keyring whose key check values differ from what the database recorded is the wrong one.
        problem = keyring_problem_at_start(database(app).url, keyring)
        if problem:
            app.extensions["govern.keyring"] = None
            app.extensions["govern.keyring_problem"] = problem
            log.warning("vault sealed: %s", problem)


def register_audit_keys(app: Flask) -> None:
    """Load the audit trail's keys (created outside production on the first start); a bad file stops the start."""
    try:
        if app.config["AUDIT_KEYS_JSON"]:
            keys = AuditKeys.from_json(app.config["AUDIT_KEYS_JSON"])
        elif app.config["IS_PRODUCTION"]:
            keys = AuditKeys.load(app.config["AUDIT_KEY_FILE"])
        else:
            keys = AuditKeys.load_or_create(app.config["AUDIT_KEY_FILE"])
    except (AuditKeyError, OSError) as exc:
        raise ConfigError(f"the audit keys cannot be loaded: {exc}") from None
    app.extensions["govern.audit_keys"] = keys
    # One audit key per process: outside an app context (a service called from a script) this app's.
    audit_services.chain_key_provider = partial(web.current_chain_key, fallback=keys)


def register_blueprints(app: Flask) -> None:
    """Only the composition root imports views."""
    # Ids in URLs fit the database's integer columns; larger numbers are a plain 404.
    app.url_map.converters["int"] = BoundedIntConverter
    for bp in (home_bp, auth_bp, users_bp, audit_bp, directory_bp, accounts_bp, grants_bp, policies_bp,
               reviews_bp, reports_bp, jobs_bp, notifications_bp, vault_bp, vault_tools_bp,
               rotation_bp, incidents_bp, offboarding_bp, scim_bp, scim_admin_bp, sinks_bp,
               webhooks_bp, notification_settings_bp, api_bp, api_tokens_bp, connectors_bp, sso_bp, passkeys_bp, groups_bp):
        app.register_blueprint(bp)
    # The SCIM API and the API authenticate by bearer token, never by the session cookie, so CSRF cannot apply.
    csrf.exempt(scim_bp)
    csrf.exempt(api_bp)
    app.extensions["govern.api_rate_store"] = (
        RedisRateStore(app.config["REDIS_URL"]) if app.config["REDIS_URL"] else DatabaseRateStore())


def register_errors(app: Flask) -> None:
    """Every error gets a page in the layout that reveals nothing internal."""
    def page(status: int, title: str, message: str) -> Any:
        if is_api_request():  # the API answers problem details, never a page
            return api_problem(status, message)
        return render_template("errors/error.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> Any:
        resumed = web.resume_after_sign_in()
        if resumed is not None:
            return resumed
        return page(400, "The form expired", "This form is out of date or was not sent from govern. Go back, reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        original = getattr(exc, "original_exception", None)  # set on the 500 of an unhandled error
        if isinstance(original, DATABASE_DOWN):
            # The database failed after the view (saving the session): still a 503, not a 500.
            return _db_down(original)
        if is_api_request():
            return http_problem(exc)
        status = exc.code or 500
        messages = {
            400: ("Bad request", "The request could not be understood. Check what you entered and try again."),
            401: ("Sign-in needed", "Sign in again to continue; for sensitive actions, confirm a code from your authenticator."),
            403: ("Not allowed", "You do not have permission to do this. Ask an administrator if you need it."),
            404: ("Not found", "There is nothing here, or you may not see it."),
            405: ("Not allowed this way", "This address does not accept that kind of request."),
            413: ("Too large", "What you sent is too large."),
            429: ("Too many attempts", "Too many attempts. Wait a moment and try again."),
        }
        title, message = messages.get(status, (exc.name, "The request could not be completed."))
        return page(status, title, message)

    @app.errorhandler(ThrottledError)
    def _throttled(exc: ThrottledError) -> Any:
        db = get_session()
        db.rollback()
        audit.record(db, "auth.throttled", outcome="denied",
                     details={"retry_after_seconds": exc.retry_after, "endpoint": request.endpoint})
        db.commit()
        body, status = page(429, "Too many attempts", exc.message)
        return body, status, {"Retry-After": str(exc.retry_after)}

    def unavailable(title: str, message: str) -> tuple[str, int]:
        """A 503 that touches no database: its own template rendered without the context processors (which
        read the signed-in user and their notifications), no session save, and plain text as the last resort.
        Without it a request whose database died answered gunicorn's bare 500 (found by scripts/soak)."""
        g.database_down = True
        if "db_session" in g:
            _rollback_quietly(g.db_session)
        if is_api_request():
            return down_problem()  # type: ignore[return-value]  # a Response, as Flask accepts
        try:
            template = app.jinja_env.get_template("errors/unavailable.html")
            return template.render(status=503, title=title, message=message), 503
        except Exception:  # noqa: BLE001 (the last resort: a 503 in plain text rather than the server's 500)
            log.exception("the database-down page failed to render")
            return f"503 {title}: {message}\n", 503

    @app.errorhandler(AuditWriteError)
    def _audit_failed(exc: AuditWriteError) -> tuple[str, int]:
        log.error("audit write failed; change refused: %s", exc.message)
        return unavailable("Not recorded, not done", "govern could not record this action in the audit trail, so it did not do it. Try again; if it keeps failing, tell IT.")

    @app.errorhandler(ThrottleUnavailableError)
    def _throttle_down(_exc: ThrottleUnavailableError) -> tuple[str, int]:
        log.error("throttle store unreachable; sign-in refused")
        return page(503, "Sign-in unavailable", "Sign-in is paused because a safety service is unreachable. Try again in a few minutes.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PendingRollbackError)
    def _db_down(_exc: Exception) -> tuple[str, int]:
        log.error("database unavailable", exc_info=True)
        return unavailable("Temporarily unavailable",
                           "govern cannot reach its database. Nothing was changed. Try again in a few minutes.")

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _unstorable_value(_exc: Exception) -> tuple[str, int]:
        # A value no column can hold (a 30-digit id, say) reached the database: the input is at
        # fault, and the transaction is rolled back before anything is saved.
        log.warning("refused a value the database cannot hold on %s", request.endpoint)
        return page(400, "Bad request", "A value you sent is out of range or malformed. Check what you entered and try again.")

    @app.errorhandler(GovernError)
    def _domain(exc: GovernError) -> tuple[str, int]:
        titles = {403: "Not allowed", 404: "Not found", 409: "Could not be done", 400: "Could not be done"}
        return page(exc.status_code, titles.get(exc.status_code, "Could not be done"), exc.message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[str, int]:
        log.error("unexpected error on %s %s", request.method, request.endpoint, exc_info=exc)
        return page(500, "Something went wrong", "govern hit an unexpected problem and did not finish. Nothing was half-done. Try again; if it keeps happening, tell IT.")


def register_templates(app: Flask) -> None:
    """Helpers every template may use."""
    app.add_template_filter(web.when, "when")
    app.add_template_filter(web.day, "day")
    app.add_template_global(web.id_url, "id_url")
    app.add_template_global(web.main_nav, "main_nav")
    app.add_template_global(lambda: timezones.zone_key(web.current_zone()), "time_zone_name")

    @app.context_processor
    def _inject() -> dict[str, Any]:
        # Roles are read once per page, not at each of its dozens of may() calls.
        roles = web.roles_of(current_user)
        return {
            "may": lambda name: web.roles_allow(roles, name),
            "organisation_name": app.config["ORGANISATION_NAME"] or "your company",
            "vault_sealed": app.extensions.get("govern.keyring") is None,
        }
