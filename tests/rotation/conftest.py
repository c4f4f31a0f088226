"""Rotation fixtures: the vault's keyring and world, plus helpers to age versions and vault secrets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from govern.db import utcnow
from govern.vault.models import SecretVersion
from govern.vault.versions import create_secret
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
