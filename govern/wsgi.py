"""WSGI entry point for gunicorn: `gunicorn 'govern.wsgi:app'`."""

from __future__ import annotations

import sys

from govern.app import create_app
from govern.config import ConfigError
from govern.schema import SchemaNotCurrentError

try:
    app = create_app()
except (ConfigError, SchemaNotCurrentError) as exc:
    print(f"govern: {exc}", file=sys.stderr)
    sys.exit(2)
