"""gunicorn settings for govern: its own error and access logs as JSON lines too (`-c python:govern.gunicorn_conf`).

A request line or header with control characters then cannot forge a log line (checklist 37).
"""

from __future__ import annotations

from typing import Any

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
