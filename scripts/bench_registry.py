"""Time the registry's main pages and exports at the issue's scale: 10,000 people, 2,000 accounts,
40,000 grants (SQLite file by default, or GOVERN_BENCH_DATABASE_URL for an empty PostgreSQL database).

    .venv/bin/python scripts/bench_registry.py

Prints, per page, the status, the milliseconds of a warm request (best of three) and the number
of SQL statements it ran. A measurement tool, not a test: no timing is asserted anywhere.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
from sqlalchemy import event, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from govern.accounts.models import Account  # noqa: E402
from govern.app import create_app  # noqa: E402
from govern.auth.models import User, UserRole  # noqa: E402
from govern.crypto import totp  # noqa: E402
from govern.db import database, utcnow  # noqa: E402
from govern.directory.models import Person  # noqa: E402
from govern.grants.models import Grant  # noqa: E402
from govern.schema import upgrade  # noqa: E402

PEOPLE, ACCOUNTS, GRANTS = 10_000, 2_000, 40_000
DEPARTMENTS = ("Marketing", "Communications", "Customer Support", "HR", "IT", "Sales", "Product", "Legal")
PLATFORMS = ("instagram", "facebook", "x", "linkedin", "tiktok", "youtube")
ROLES = ("owner", "admin", "publisher", "moderator", "advertiser", "analyst")
PASSWORD = "bench marks are not secrets 2026"  # noqa: S105 - a throwaway database
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def fill(session: Any) -> None:
    """Bulk-insert the directory, the registry and the grants (rules are not the point here)."""
    now = utcnow()
    session.execute(insert(Person), [
        {"employee_id": f"B{i:05d}", "full_name": f"Person {i:05d}", "email": f"person{i:05d}@bench.example",
         "department": DEPARTMENTS[i % len(DEPARTMENTS)], "status": "active", "source": "csv",
         "created_at": now, "updated_at": now} for i in range(PEOPLE)
    ])
    ids = list(session.scalars(select(Person.id).order_by(Person.id)))
    session.execute(insert(Account), [
        {"platform": PLATFORMS[i % len(PLATFORMS)], "handle": f"bench{i:04d}", "url": f"https://example.com/{i}",
         "display_name": f"Bench account {i:04d}", "business_owner_id": ids[i % 500], "crisis_contact_id": ids[(i + 1) % 500],
         "tier": "standard", "status": "active", "rotation_interval_days": 90, "max_credential_holders": 30,
         "min_admins": 2, "created_at": now, "updated_at": now} for i in range(ACCOUNTS)
    ])
    account_ids = list(session.scalars(select(Account.id).order_by(Account.id)))
    session.execute(insert(Grant), [
        {"person_id": ids[(i * 7) % PEOPLE], "account_id": account_ids[i % ACCOUNTS], "role_code": ROLES[(i // ACCOUNTS) % len(ROLES)],
         "status": "active" if i % 10 else "revoked", "reason": "bench", "requested_at": now, "starts_at": now - timedelta(days=i % 300),
         "expires_at": now + timedelta(days=30) if i % 4 == 0 else None} for i in range(GRANTS)
    ])
    session.commit()


def admin_user(session: Any, kit: Any) -> tuple[str, str]:
    person = Person(full_name="Bench Admin", email="admin@bench.example", status="active")
    session.add(person)
    session.flush()
    seed = totp.new_seed()
    user = User(person=person, email=person.email, password_hash=kit.hashing.hash(PASSWORD), password_changed_at=utcnow())
    session.add(user)
    session.flush()
    user.mfa_seed_sealed = kit.mfa_box.seal(seed.encode(), f"govern:users.mfa_seed:{user.id}".encode())
    user.mfa_enabled_at = utcnow()
    session.add(UserRole(user_id=user.id, role="admin"))
    session.commit()
    return person.email, seed


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="govern-bench-"))
    url = os.environ.get("GOVERN_BENCH_DATABASE_URL") or f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    app = create_app({"ENV": "testing", "INSTANCE_PATH": folder, "DATABASE_URL": url, "SECRET_KEY": "b" * 40,
                      "VAULT_KEY_FILE": folder / "vault.key", "BASE_URL": "http://localhost",
                      "ARGON2_TIME_COST": 2, "ARGON2_MEMORY_KIB": 19456})
    kit = app.extensions["govern.auth"]
    with app.app_context(), database(app).session_scope() as session:
        started = time.perf_counter()
        fill(session)
        print(f"filled {PEOPLE} people, {ACCOUNTS} accounts, {GRANTS} grants in {time.perf_counter() - started:.1f} s")
        email, seed = admin_user(session, kit)
        some_account = session.scalar(select(Account.id).order_by(Account.id).limit(1))
        busy_person = session.scalar(select(Person.id).where(Person.email == "person00007@bench.example"))

    client = app.test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    token = CSRF.search(client.get("/login/code").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert client.post("/login/code", data={"csrf_token": token, "code": pyotp.TOTP(seed).now()}).status_code == 302
    token = CSRF.search(client.get("/account").get_data(as_text=True)).group(1)  # type: ignore[union-attr]

    engine = database(app).engine
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    pages: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "/people/", None), ("GET", "/people/?department=Sales&page=20", None),
        ("GET", f"/people/{busy_person}", None),
        ("GET", "/accounts/", None), ("GET", "/accounts/?risk=few_admins", None),
        ("GET", f"/accounts/{some_account}", None),
        ("GET", "/reports/access", None), ("GET", "/reports/access?department=Sales&platform=x&page=10", None),
        ("GET", f"/reports/accounts/{some_account}", None), ("GET", f"/reports/people/{busy_person}", None),
        ("POST", "/reports/access.csv", {"csrf_token": token}), ("POST", "/reports/access.json", {"csrf_token": token}),
        ("GET", "/policies/report", None), ("GET", "/grants/", None),
    ]
    print(f"{'request':<58} {'status':>6} {'ms':>8} {'SQL':>5} {'bytes':>10}")
    for method, path, data in pages:
        best, count, size, status = float("inf"), 0, 0, 0
        for _ in range(3):
            statements.clear()
            started = time.perf_counter()
            response = client.open(path, method=method, data=data)
            body = response.get_data()  # streamed exports are consumed here
            response.close()  # as a WSGI server does: ends the request's database session
            best = min(best, time.perf_counter() - started)
            count, size, status = len(statements), len(body), response.status_code
            if os.environ.get("BENCH_DEBUG"):
                print("   ", status, f"{time.perf_counter() - started:.2f}s", body[:200])
        print(f"{method + ' ' + path:<58} {status:>6} {best * 1000:>8.0f} {count:>5} {size:>10}")


if __name__ == "__main__":
    main()
