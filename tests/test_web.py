"""Headers, CSRF, error pages, bad input, safe redirects and failing closed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from govern import web
from govern.auth.models import User
from govern.errors import ConflictError, InvalidError
from tests.factories import csrf_token, login, make_user, signed_in

REQUIRED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _assert_security_headers(response, path):
    csp = response.headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'", "style-src 'self'"):
        assert directive in csp, (path, directive)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    for name, value in REQUIRED_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)


def _get_paths(app):
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or ()) and "<" not in rule.rule and rule.endpoint != "static":
            paths.append(rule.rule)
    return paths


def test_every_page_and_error_carries_the_security_headers(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))

    @app.route("/boom")
    @web.permission(web.PUBLIC)
    def boom():
        raise RuntimeError("internal detail SELECT * FROM users /srv/secret/path")

    anonymous, signed_in = app.test_client(), app.test_client()
    login(signed_in, db, admin)
    for client in (anonymous, signed_in):
        for path in _get_paths(app) + ["/no-such-page", "/boom", "/static/govern.css", f"/admin/users/{admin.id}"]:
            response = client.get(path)
            _assert_security_headers(response, path)
    assert anonymous.post("/healthz").status_code == 405
    _assert_security_headers(anonymous.post("/healthz"), "405")


def test_authenticated_pages_are_never_cached(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    client = app.test_client()
    login(client, db, admin)
    for path in _get_paths(app):
        response = client.get(path)
        assert response.headers.get("Cache-Control") == "no-store", path


def test_error_pages_reveal_nothing_internal(app):
    @app.route("/boom")
    @web.permission(web.PUBLIC)
    def boom():
        raise RuntimeError("internal detail SELECT * FROM users /srv/secret/path")

    response = app.test_client().get("/boom")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    for leak in ("Traceback", "SELECT", "/srv/secret", "RuntimeError", "internal detail"):
        assert leak not in body
    assert "Something went wrong" in body


@pytest.mark.parametrize("status,path,method", [(404, "/nope", "GET"), (405, "/logout", "GET")])
def test_error_pages_use_the_layout(app, status, path, method):
    response = app.test_client().open(path, method=method)
    assert response.status_code == status
    body = response.get_data(as_text=True)
    assert "govern.css" in body and f">{status}<" in body


def test_csrf_is_enforced_on_state_changes(app, db, kit):
    admin, other = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    client = app.test_client()
    login(client, db, admin)
    assert client.post(f"/admin/users/{other.id}/deactivate").status_code == 400
    assert client.post(f"/admin/users/{other.id}/deactivate", data={"csrf_token": "forged"}).status_code == 400
    # A token from another session is no good either.
    stranger = app.test_client()
    foreign = csrf_token(stranger, "/login")
    assert client.post(f"/admin/users/{other.id}/deactivate", data={"csrf_token": foreign}).status_code == 400
    db.refresh(other.user)
    assert other.user.is_active


def test_state_changes_only_by_post(app):
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        if rule.endpoint.split(".")[-1] in {"logout", "deactivate", "reactivate", "reset_mfa", "unlock", "end_all_sessions", "end_session", "end_own_session", "set_roles", "export", "regenerate_recovery_codes"}:
            assert methods == {"POST"}, rule


# Junk on every POST endpoint: tests/test_post_walk.py walks the URL map.


def test_malformed_requests_do_not_500(app):
    client = app.test_client()
    assert client.post("/login", data=b"\xff\xfe\x00garbage", content_type="application/x-www-form-urlencoded").status_code < 500
    assert client.post("/login", data="{not json", content_type="application/json").status_code < 500
    assert client.get("/audit/?before=abc&since=%ff").status_code < 500
    assert client.get("/login?next=%0d%0aSet-Cookie:x").status_code == 200
    assert client.post("/login", data={"x": "y" * 100}, content_type="multipart/form-data").status_code < 500


@pytest.mark.parametrize("target,expected", [
    ("/audit/", "/audit/"), ("/admin/users/?page=2", "/admin/users/?page=2"),
    ("https://evil.example/", "/"), ("//evil.example", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("", "/"), (None, "/"), ("/ok\r\nx", "/"), ("evil.example", "/"),
])
def test_safe_next(target, expected):
    assert web.safe_next(target) == expected


def test_a_change_whose_audit_event_cannot_be_written_does_not_happen(app, db, kit, monkeypatch):
    from govern.errors import AuditWriteError

    admin, other = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    client = app.test_client()
    login(client, db, admin)
    token = csrf_token(client, "/account")

    import govern.auth.users as auth_users

    real_record = auth_users.audit.record

    def failing(session, action, **kwargs):
        if action == "users.deactivated":
            raise AuditWriteError("disk full")
        return real_record(session, action, **kwargs)

    monkeypatch.setattr(auth_users.audit, "record", failing)
    response = client.post(f"/admin/users/{other.id}/deactivate", data={"csrf_token": token})
    assert response.status_code == 503
    assert "did not do it" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(User, other.id).is_active  # nothing changed: not the flag, not the sessions


def test_database_unavailable_gives_503_not_success(app, db, kit, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import govern.auth.login as auth_login

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(auth_login, "check_password_login", down)
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token, "email": "a@example.com", "password": "p" * 20})
    assert response.status_code == 503
    assert "connection refused" not in response.get_data(as_text=True)


def test_the_database_down_page_touches_no_database(app, db, kit, monkeypatch):
    """A signed-in page whose database dies mid-request: the 503 page must not query again (the layout reads the
    user's unread notifications) or the server answers a bare 500 (found by scripts/soak killing PostgreSQL)."""
    from sqlalchemy.exc import OperationalError

    import govern.notifications.views as notification_views
    from govern.home import views as home_views

    _who, client = signed_in(app, db, kit, "admin")

    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(home_views.reviews, "open_items_for", down)  # the view's query fails...
    monkeypatch.setattr(notification_views, "unread_for_current_user", down)  # ...and so would the layout's
    response = client.get("/")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "govern cannot reach its database" in body and "server closed" not in body


@pytest.mark.parametrize("failure", ["operational", "audit_write"])
def test_after_the_database_failed_nothing_touches_the_broken_transaction_again(app, db, kit, monkeypatch, failure):
    """scripts/soak: at the instant PostgreSQL died the view's error was answered with a 503, then the
    after-request rollback of uncommitted work met the broken transaction (PendingRollbackError) and the
    answer became gunicorn's 500."""
    from sqlalchemy.exc import OperationalError, PendingRollbackError

    import govern.app as app_module
    from govern.errors import AuditWriteError
    from govern.home import views as home_views

    _who, client = signed_in(app, db, kit, "admin")

    def failing(*args, **kwargs):
        if failure == "operational":
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        raise AuditWriteError("the audit event could not be written; nothing was changed")

    def broken_transaction(session):
        raise PendingRollbackError("This Session's transaction has been rolled back due to a previous exception")

    monkeypatch.setattr(home_views.reviews, "open_items_for", failing)
    monkeypatch.setattr(app_module, "discard_uncommitted", broken_transaction)
    response = client.get("/")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "rolled back" not in body and "server closed" not in body and "<h1>" in body


def test_static_assets_are_local_files(app):
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html
    assert client.get("/static/govern.css").status_code == 200
    assert client.get("/static/govern.js").status_code == 200


def test_logs_are_single_json_lines_even_with_crlf_in_input():
    import json
    import logging

    from govern.logs import JsonFormatter

    record = logging.LogRecord("govern", logging.INFO, __file__, 1, "user %s", ("bob\n{\"action\":\"admin\"}",), None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "user bob\n{\"action\":\"admin\"}"


def test_gunicorn_logs_are_json_lines_too(capsys):
    """scripts/serve runs gunicorn with govern.gunicorn_conf: its access and error lines are JSON."""
    import json
    import logging
    import logging.config

    from govern.gunicorn_conf import logconfig_dict

    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
             for name in ("gunicorn.access", "gunicorn.error")}
    try:
        logging.config.dictConfig(logconfig_dict)
        logging.getLogger("gunicorn.access").info('%s "%s"', "10.0.0.1", "GET /x\r\n{\"action\":\"admin\"} HTTP/1.1")
        logging.getLogger("gunicorn.error").warning("bad request line\nforged")
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    entries = [json.loads(line) for line in lines]
    assert entries[0]["logger"] == "gunicorn.access" and "\r\n" in entries[0]["message"]
    assert entries[1]["message"] == "bad request line\nforged"


def test_health_check(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "ok\n"


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-dir/govern/none.db", "postgresql+psycopg://postgres@127.0.0.1:1/none"],
                         ids=["sqlite", "postgresql"])
def test_an_unreachable_database_gives_generic_503_pages(tmp_path, url):
    """R6: a real unreachable database (not a mock): 503 in the layout, health check red, no fail-open."""
    from govern.app import create_app
    from tests.support import app_config

    app = create_app(app_config(tmp_path, url))
    client = app.test_client()
    for path in ("/login", "/setup", "/healthz"):
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert response.status_code == 503, (path, response.status_code)
        assert "govern.css" in body and "cannot reach its database" in body, path
        for leak in ("Traceback", "OperationalError", "nonexistent-dir", "127.0.0.1:1", "connection"):
            assert leak not in body, (path, leak)
        _assert_security_headers(response, path)
    # A session cookie cannot be checked, so it identifies no one: protected pages go to sign-in.
    client.set_cookie("govern_session", "x" * 43)
    assert client.get("/admin/users/").status_code == 302
    assert client.post("/login", data={"email": "a@example.com", "password": "p" * 20}).status_code in (400, 503)
    assert client.get("/static/govern.css").status_code == 200


def test_every_error_status_has_a_page_in_the_layout(app, db, kit):
    """400, 403, 404, 405, 429 and 500: the same layout, the security headers, nothing internal."""
    who = make_user(db, kit)  # plain staff

    @app.route("/boom-layout")
    @web.permission(web.PUBLIC)
    def boom_layout():
        raise RuntimeError("internal detail")

    client = app.test_client()
    login(client, db, who)
    stranger = app.test_client()
    token = csrf_token(stranger, "/login")
    for _ in range(5):
        stranger.post("/login", data={"csrf_token": token, "email": "nobody@example.com", "password": "wrong " * 4})
    cases = {
        400: lambda: client.post("/account/password", data={}),
        403: lambda: client.get("/admin/users/"),
        404: lambda: client.get("/no-such-page"),
        405: lambda: client.get("/logout"),
        429: lambda: stranger.post("/login", data={"csrf_token": token, "email": "nobody@example.com", "password": "x" * 20}),
        500: lambda: client.get("/boom-layout"),
    }
    for status, request in cases.items():
        response = request()
        body = response.get_data(as_text=True)
        assert response.status_code == status, (status, response.status_code)
        assert "govern.css" in body and f">{status}<" in body, status
        assert "internal detail" not in body and "Traceback" not in body
        _assert_security_headers(response, str(status))


def test_date_filters_print_times_with_their_zone_days_and_a_dash_for_nothing(app):
    from datetime import UTC, date, datetime

    template = app.jinja_env.from_string("{{ t|when }}|{{ t|day }}|{{ none|when }}|{{ none|day }}|{{ d|day }}")
    with app.test_request_context():
        assert template.render(t=datetime(2026, 11, 30, 9, 5, 59, tzinfo=UTC), none=None, d=date(2027, 1, 2)) == (
            '<time datetime="2026-11-30T09:05:59Z">30 Nov 2026, 09:05 UTC</time>|'
            '<time datetime="2026-11-30T09:05:59Z" title="30 Nov 2026, 09:05 UTC">30 Nov 2026</time>|'
            "\u2014|\u2014|2 Jan 2027")


def test_form_errors_puts_reasons_on_their_fields_and_the_rest_on_the_default():
    def fresh_form():
        return SimpleNamespace(name=SimpleNamespace(errors=[]), due_on=SimpleNamespace(errors=[]))

    form = fresh_form()
    web.form_errors(form, InvalidError("Bad.", {"due_at": "In the future.", "nowhere": "Odd."}), default=form.name,
                fields={"due_at": "due_on"})
    assert form.due_on.errors == ["In the future."] and form.name.errors == ["Odd."]
    form = fresh_form()
    web.form_errors(form, ConflictError("Taken."), default=form.name)
    assert form.name.errors == ["Taken."] and form.due_on.errors == []
    form = fresh_form()
    web.form_errors(form, InvalidError("Choose a day after today.", {"due_at": "Later.", "name": "Odd."}), default=form.name,
                    fields={"due_at": "due_on"}, whole=True)
    assert form.due_on.errors == ["Choose a day after today."] and form.name.errors == []
    form = fresh_form()
    web.form_errors(form, ConflictError("Taken."), default=form.name, whole=True)
    assert form.name.errors == ["Taken."] and form.due_on.errors == []


def test_the_503_page_is_served_even_when_its_layout_needs_the_dead_database(tmp_path, monkeypatch):
    """scripts/soak: PostgreSQL killed mid-request, the error page's layout queried it again -> a bare 500."""
    from sqlalchemy.exc import OperationalError

    import govern.app as app_module
    from govern.app import create_app
    from tests.support import app_config

    real = app_module.render_template

    def render(name, **context):
        if name == "errors/error.html":
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return real(name, **context)

    monkeypatch.setattr(app_module, "render_template", render)
    app = create_app(app_config(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/none"))
    response = app.test_client().get("/login")
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "cannot reach its database" in body and "govern.css" in body
    for leak in ("Traceback", "OperationalError", "server closed", "127.0.0.1:1"):
        assert leak not in body, leak


def test_scim_answers_503_when_the_database_is_unreachable(tmp_path):
    """scripts/soak: SCIM answered 500 while PostgreSQL was down; an identity provider retries a 503."""
    from govern.app import create_app
    from tests.support import app_config

    app = create_app(app_config(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/none"))
    response = app.test_client().get("/scim/v2/Users", headers={"Authorization": "Bearer gscim_" + "x" * 43})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert "cannot reach its database" in response.get_data(as_text=True)
