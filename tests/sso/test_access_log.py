"""gunicorn's access line of an SSO callback keeps no authorization code or state."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

from govern.gunicorn_conf import RedactingLogger


def _atoms(path: str, query: str, referer: str = "-") -> dict[str, str]:
    logger = RedactingLogger(Config())
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
               "RAW_URI": f"{path}?{query}", "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": referer}
    response = SimpleNamespace(status="302 FOUND", headers=[], response_length=0, sent=0)
    request = SimpleNamespace(headers=[("REFERER", referer)])
    return logger.atoms(response, request, environ, timedelta(seconds=0.01))


def test_the_callbacks_code_and_state_stay_out_of_the_access_log():
    atoms = _atoms("/login/sso/okta/callback", "code=SECRETCODE&state=SECRETSTATE")
    line = " ".join(str(v) for v in atoms.values())
    assert "SECRETCODE" not in line and "SECRETSTATE" not in line
    assert atoms["r"] == "GET /login/sso/okta/callback?[redacted] HTTP/1.1"
    page = _atoms("/static/app.css", "", referer="http://govern/login/sso/okta/callback?code=SECRETCODE&state=S")
    assert "SECRETCODE" not in " ".join(str(v) for v in page.values())


def test_other_requests_are_logged_as_they_are():
    atoms = _atoms("/accounts", "page=2")
    assert atoms["r"] == "GET /accounts?page=2 HTTP/1.1" and atoms["q"] == "page=2"
