"""Create or drop a PostgreSQL database for a test run: pgdb.py create|drop ADMIN_URL NAME."""

from __future__ import annotations

import re
import sys

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in {"create", "drop"}:
        print("usage: pgdb.py create|drop ADMIN_URL NAME", file=sys.stderr)
        return 2
    action, admin_url, name = sys.argv[1:]
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        print(f"pgdb: refusing database name {name!r}", file=sys.stderr)
        return 2
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if action == "create":
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except OperationalError as exc:
        print(f"pgdb: PostgreSQL is unreachable at {admin_url.split('@')[-1]}: {exc.orig}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"pgdb: {'created' if action == 'create' else 'dropped'} database {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
