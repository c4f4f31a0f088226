"""Rate limits shared by every worker: the database on the embedded default, Redis in production."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.orm import Session

from govern.api import ratelimit
from govern.app import create_app
from govern.db import Database
from govern.schema import upgrade
from tests.api.helpers import Api, personal_token
from tests.factories import make_user
from tests.support import app_config, require_service


def test_two_workers_share_one_count_in_the_database(tmp_path: Path, scratch_database_url: str) -> None:
    upgrade(scratch_database_url)
    first, second = Database(scratch_database_url), Database(scratch_database_url)
    store = ratelimit.DatabaseRateStore()
    counts = []
    for n in range(6):
        db = (first if n % 2 else second).sessionmaker()
        counts.append(ratelimit.check(store, db, "token:7", limit=4, now=600.0 + n).allowed)
        db.close()
    assert counts == [True] * 4 + [False] * 2
    db = first.sessionmaker()
    assert ratelimit.check(store, db, "token:7", limit=4, now=660.5).allowed  # the next window starts again
    db.close()
    first.engine.dispose()
    second.engine.dispose()


def test_workers_take_leases_of_places_and_never_pass_more_than_the_limit(scratch_database_url: str) -> None:
    """A limit of 1,000 a minute: each worker writes once per 10 requests; the window never admits 1,001."""
    from sqlalchemy import select

    from govern.api.models import RateCounter

    upgrade(scratch_database_url)
    database = Database(scratch_database_url)
    workers = [ratelimit.DatabaseRateStore() for _ in range(3)]
    assert ratelimit.lease_size(1000) == 10 and ratelimit.lease_size(150) == 1 and ratelimit.lease_size(10**8) == 20
    db = database.sessionmaker()
    places = [ratelimit.check(workers[0], db, "token:3", limit=1000, now=6000.0)]
    db.close()
    db = database.sessionmaker()
    assert db.scalar(select(RateCounter.count).where(RateCounter.key == "token:3")) == 10  # one write, ten places
    db.close()
    for n in range(1, 1100):
        db = database.sessionmaker()
        places.append(ratelimit.check(workers[n % 3], db, "token:3", limit=1000, now=6000.0 + n / 100))
        db.close()
    admitted = sum(v.allowed for v in places)
    # Never more than the limit; at most (workers x (lease - 1)) places left unused in the other workers' leases.
    assert 1000 - 3 * 9 <= admitted <= 1000
    assert not places[-1].allowed
    db = database.sessionmaker()
    assert ratelimit.check(workers[1], db, "token:3", limit=1000, now=6060.0).allowed  # a new window, a new lease
    db.close()
    database.engine.dispose()


def _redis() -> tuple[str, bool]:
    url = os.environ.get("GOVERN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, True
    except redis.RedisError:
        return url, False


def test_two_workers_share_one_count_in_redis() -> None:
    url, up = _redis()
    require_service("Redis", up, f"no Redis at {url}")
    first, second = ratelimit.RedisRateStore(url), ratelimit.RedisRateStore(url)
    first.prefix = second.prefix = f"govern-test:{secrets.token_hex(4)}:"
    session: Any = None
    verdicts = [ratelimit.check(first if n % 2 else second, session, "token:9", limit=3, now=1200.0 + n)
                for n in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert verdicts[-1].reset_in == 56 and verdicts[-1].remaining == 0
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(first.prefix + "*"):
        assert 0 < client.ttl(key) <= 120
        client.delete(key)


def test_the_api_fails_closed_when_redis_is_unreachable(tmp_path: Path, database_url: str, connection: Any) -> None:
    app = create_app(app_config(tmp_path, database_url, REDIS_URL="redis://127.0.0.1:1/0"))
    app.extensions["govern.db"].engine.dispose()
    app.extensions["govern.db"].sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    who = make_user(db, app.extensions["govern.auth"], roles=("hr",))
    db.commit()
    answer = Api(app, personal_token(db, who, "people:read")).get("/people")
    assert answer.status_code == 503 and answer.mimetype == "application/problem+json"
    assert answer.headers["Retry-After"] == "30"


def test_the_jobs_step_forgets_old_idempotent_answers_and_counters(app, db, company) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from govern.api import housekeeping
    from govern.api.models import IdempotentRequest, RateCounter
    from govern.db import utcnow

    company.add_staff("hr")
    company.commit()
    api = Api(app, personal_token(db, company.hr, "people:read", "people:write"))
    assert api.post("/people", {"full_name": "Ida Idem", "email": "ida@example.com"},
                    headers={"Idempotency-Key": "once"}).status_code == 201
    db.add(RateCounter(key="token:old", window_start=1, count=3))
    db.commit()
    # An hour on, the answer is kept; both counters (the token's, and the old one) are past.
    assert housekeeping.prune(db, now=utcnow() + timedelta(hours=1)) == {"idempotent_answers_deleted": 0,
                                                                         "rate_counters_deleted": 2}
    assert housekeeping.prune(db, now=utcnow() + timedelta(hours=25))["idempotent_answers_deleted"] == 1
    assert db.scalar(select(func.count()).select_from(IdempotentRequest)) == 0
