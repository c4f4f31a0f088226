"""gunicorn settings for govern: its own error and access logs as JSON lines too (`-c python:govern.gunicorn_conf`).

A request line or header with control characters then cannot forge a log line (checklist 37).
"""

from __future__ import annotations

import os
from typing import Any

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


def when_ready(server: Any) -> None:
    """Say where govern answers, from the sockets gunicorn actually opened."""
    addresses = ", ".join(str(listener) for listener in server.LISTENERS)
    base_url = (os.environ.get("GOVERN_BASE_URL") or base_url_for_bind(str(server.cfg.bind[0]))).rstrip("/")
    print(f"govern is listening on {addresses} with {server.cfg.workers} worker(s); open {base_url} "
          "(Ctrl-C stops it)", flush=True)
