"""Rotation fixtures: the vault's keyring and world, a secret with an overdue task, and helpers to vault
secrets, age versions, open tasks, read tasks, version statuses and audit counts, and use the pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from govern.audit.models import AuditEvent
from govern.db import utcnow
from govern.rotation.models import RotationTask
from govern.rotation.tasks import open_task
from govern.vault.models import SecretVersion
from govern.vault.versions import create_secret
from tests.factories import csrf_token, login
from tests.vault.conftest import World, keyring, ring  # noqa: F401 - fixtures

__all__ = ["World", "keyring", "ring"]


@pytest.fixture
def app_overrides(keyring: Any) -> dict[str, Any]:  # noqa: F811
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def world(db: Any, kit: Any) -> World:
    return World(db, kit)


def vault_secret(db: Any, ring: Any, world: World, kind: str = "password", value: Any = "Old-Password-123!",  # noqa: F811
                 label: str | None = None, account: Any = None, **fields: Any) -> Any:
    """Vault a secret as IT and commit."""
    secret = create_secret(db, actor=world.it.user, keyring=ring, account=account or world.account, kind=kind,
                                 label=label or f"{kind} secret", value=value, **fields)
    db.commit()
    return secret


def age(db: Any, secret: Any, days: int) -> None:
    """Pretend the current version became current ``days`` ago."""
    moment = utcnow() - timedelta(days=days)
    db.execute(update(SecretVersion).where(SecretVersion.secret_id == secret.id, SecretVersion.status == "current")
               .values(confirmed_at=moment, created_at=moment))
    db.commit()


TOTP_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NEW_SEED = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"


@pytest.fixture
def setup(db: Any, ring: Any, world: World) -> tuple[Any, RotationTask]:  # noqa: F811
    """An Instagram login, 120 days old, with its scheduled task open."""
    secret = vault_secret(db, ring, world, label="Instagram login")
    age(db, secret, 120)
    task = open_task(db, actor=None, secret=secret, reason="scheduled", note="overdue").task
    db.commit()
    return secret, task


def all_tasks(db: Any, secret: Any = None) -> list[RotationTask]:
    """Every rotation task (of ``secret``), oldest first."""
    query = select(RotationTask).order_by(RotationTask.id)
    if secret is not None:
        query = query.where(RotationTask.secret_id == secret.id)
    return list(db.scalars(query).unique())


def count_events(db: Any, action: str) -> int:
    """How many audit events of ``action`` there are."""
    return db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0


def version_statuses(db: Any, secret: Any) -> dict[int, str]:
    """The status of each version of ``secret``, read afresh."""
    db.expire_all()
    return {v.version: v.status for v in db.scalars(select(SecretVersion).where(SecretVersion.secret_id == secret.id))}


def open_manual_task(db: Any, world: World, secret: Any, reason: str = "manual") -> RotationTask:
    """IT opens a task for ``secret``, committed."""
    task = open_task(db, actor=world.it.user, secret=secret, reason=reason, note="test").task
    db.commit()
    return task


def client_for(app: Any, db: Any, who: Any) -> Any:
    """A test client signed in as ``who``."""
    client = app.test_client()
    login(client, db, who)
    return client


def post_form(client: Any, path: str, data: dict[str, Any] | None = None, token_page: str = "/rotation/") -> Any:
    """POST ``data`` to ``path`` with a CSRF token read from ``token_page``."""
    return client.post(path, data={"csrf_token": csrf_token(client, token_page), **(data or {})})


#: (app roles, may read, may write) for the pages of rotation and incidents: IT changes, admins and
#: auditors read, others are refused.
ROLE_CASES = [
    (("it",), True, True), (("admin",), True, False), (("auditor",), True, False),
    (("manager",), False, False), (("hr",), False, False), ((), False, False),
]


def check_endpoints(client: Any, reads: list[str], writes: list[str], ids: dict[str, int], *, may_read: bool,
                    may_write: bool) -> None:
    """Each page of ``reads`` answers 200 (readers) or 403; each POST of ``writes`` gets past the
    permission check (302, 400, 401: writers) or answers 403. Paths are formatted with ``ids``."""
    token = csrf_token(client, "/account")
    for path in reads:
        status = client.get(path.format(**ids)).status_code
        assert (status == 200) == may_read, (path, status)
        if not may_read:
            assert status == 403
    for path in writes:
        response = client.post(path.format(**ids), data={"csrf_token": token})
        if may_write:
            assert response.status_code in (302, 400, 401), (path, response.status_code)
        else:
            assert response.status_code == 403, (path, response.status_code)
