#!/usr/bin/env python3
"""Measure the audit trail at scale: fill a database with N chained events, then time the list
page (first and a deep keyset page) for each filter, the CSV stream and `verify`, and print the
query plans. Usage:

    .venv/bin/python scripts/bench_audit.py sqlite:////tmp/bench.db 1000000
    .venv/bin/python scripts/bench_audit.py postgresql+psycopg://postgres@127.0.0.1:5432/govern_bench 1000000

The database must be empty (or at the latest migration with only bench events); it is upgraded first.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select, text, update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from govern.audit.models import AuditChainHead, AuditEvent  # noqa: E402
from govern.audit.services import AuditFilter, chain_hash, event_content, iter_events, list_events, verify_chain  # noqa: E402
from govern.db import make_engine  # noqa: E402
from govern.schema import upgrade  # noqa: E402

ACTIONS = ["auth.login.succeeded", "auth.login.password_failed", "auth.logout", "grants.granted", "accounts.updated",
           "directory.person.updated", "auth.session.expired", "vault.revealed"]


def fill(session: Session, total: int, batch: int = 20_000) -> None:
    """Append ``total`` correctly chained events in bulk (actors, actions and targets vary)."""
    head = session.execute(select(AuditChainHead.last_event_id, AuditChainHead.last_hash)).one()
    last_id, prev = head
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for n in range(1, total + 1):
        event_id = last_id + n
        row = {"occurred_at": start + timedelta(seconds=30 * n), "actor_user_id": n % 500 + 1,
               "actor_label": f"user{n % 500 + 1}@example.com", "ip": f"10.0.{n % 250}.{n % 200}", "session_ref": None,
               "request_id": None, "action": ACTIONS[n % 7] if n % 10_000 else ACTIONS[7],
               "target_type": "account" if n % 3 else "user", "target_id": str(n % 2000), "outcome": "success",
               "details_json": f'{{"n":{n}}}'}
        content = event_content(event_id=event_id, **row)
        row.update(id=event_id, prev_hash=prev, hash=chain_hash(prev, content))
        prev = row["hash"]
        rows.append(row)
        if len(rows) == batch:
            session.execute(insert(AuditEvent.__table__), rows)
            rows.clear()
    if rows:
        session.execute(insert(AuditEvent.__table__), rows)
    session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_event_id=last_id + total, last_hash=prev))
    session.commit()


def timed(label: str, fn, repeat: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Print the best of ``repeat`` runs in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<58} {best * 1000:9.1f} ms")


def main() -> None:
    """Fill (if asked) and measure."""
    url, total = sys.argv[1], int(sys.argv[2])
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        if have < total:
            started = time.perf_counter()
            fill(session, total - have)
            print(f"filled {total - have} events in {time.perf_counter() - started:.1f} s")
            if engine.dialect.name == "postgresql":
                session.execute(text("ANALYZE audit_events"))
                session.commit()
        count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        print(f"{engine.dialect.name}: {count} events")
        middle = count // 2
        filters = {
            "no filter": AuditFilter(),
            "actor email": AuditFilter(actor="user7@example.com"),
            "actor id": AuditFilter(actor="7"),
            "action prefix (common)": AuditFilter(action="auth.login"),
            "action exact (rare, 1 in 10,000)": AuditFilter(action="vault.revealed"),
            "target": AuditFilter(target_type="account", target_id="42"),
            "date range (one day, a year back)": AuditFilter(since=datetime(2025, 3, 1, tzinfo=UTC),
                                                             until=datetime(2025, 3, 2, tzinfo=UTC)),
            "date since (recent)": AuditFilter(since=datetime(2025, 12, 1, tzinfo=UTC)),
            "actor + date range": AuditFilter(actor="user7@example.com", since=datetime(2025, 3, 1, tzinfo=UTC),
                                              until=datetime(2025, 4, 1, tzinfo=UTC)),
        }
        for label, flt in filters.items():
            timed(f"page 1, {label}", lambda flt=flt: list_events(session, flt, limit=50))
            timed(f"deep page (before id {middle}), {label}", lambda flt=flt: list_events(session, flt, before_id=middle, limit=50))
        timed("CSV stream of one actor (all their events)", lambda: sum(1 for _ in iter_events(session, AuditFilter(actor="7"))), repeat=1)
        if "--plans" in sys.argv:
            for label, flt in filters.items():
                from govern.audit.services import filtered_query

                query = filtered_query(flt, action_range=engine.dialect.name == "postgresql").order_by(AuditEvent.id.desc()).limit(51)
                sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
                prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
                plan = [" ".join(str(c) for c in row) for row in session.execute(text(prefix + sql))]
                print(f"-- {label}\n   " + "\n   ".join(plan))
        if "--verify" in sys.argv:
            timed("verify whole chain", lambda: verify_chain(session), repeat=1)
    engine.dispose()


if __name__ == "__main__":
    main()
