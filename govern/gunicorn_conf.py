"""gunicorn settings for govern: its own error and access logs as JSON lines too (`-c python:govern.gunicorn_conf`).

A request line or header with control characters then cannot forge a log line (checklist 37).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from govern.config import ConfigError, base_url_for_bind, bind_address, worker_count

#: gunicorn reads this with --config python:govern.gunicorn_conf; handlers write to stderr.
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "govern.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

# A request line up to gunicorn's maximum (4094 by default): an API list's filters, percent-encoded, fit.
limit_request_line = 8190

# The address and the number of workers come from GOVERN_BIND and GOVERN_WORKERS (--bind and
# --workers on the command line still win), so scripts/serve and the printed address agree.
try:
    bind = [bind_address()]
    workers = worker_count()
except ConfigError as exc:
    raise SystemExit(str(exc)) from None


#: Paths whose query string carries one-time protocol values (the OpenID callback's code and state).
SECRET_QUERY_PATHS = ("/login/sso/",)


class RedactingLogger(Logger):
    """gunicorn's logger, but the access line of an SSO callback keeps no code or state (in the
    request line, the query or a referrer that points at such a callback)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        secrets: list[str] = []
        query = str(environ.get("QUERY_STRING", ""))
        if str(environ.get("PATH_INFO", "")).startswith(SECRET_QUERY_PATHS) and query:
            secrets.append(query)
        referer = str(environ.get("HTTP_REFERER", ""))
        if any(p in referer for p in SECRET_QUERY_PATHS) and "?" in referer:
            secrets.append(referer.split("?", 1)[1])
        for secret in secrets:
            # Every atom: the request line, the query, the referrer, the environ atoms ({raw_uri}e...).
            atoms = {key: value.replace(secret, "[redacted]") if isinstance(value, str) else value
                     for key, value in atoms.items()}
        return atoms


logger_class = RedactingLogger


def when_ready(server: Any) -> None:
    """Say where govern answers, from the sockets gunicorn actually opened."""
    addresses = ", ".join(str(listener) for listener in server.LISTENERS)
    base_url = (os.environ.get("GOVERN_BASE_URL") or base_url_for_bind(str(server.cfg.bind[0]))).rstrip("/")
    print(f"govern is listening on {addresses} with {server.cfg.workers} worker(s); open {base_url} "
          "(Ctrl-C stops it)", flush=True)
