"""A committed govern database with a company and vaulted secrets, and an empty database to restore into."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from govern.app import create_app
from govern.backup.snapshot import scratch_postgresql
from govern.crypto.keyring import Keyring
from govern.db import database, get_session
from govern.schema import upgrade
from tests.factories import Company
from tests.support import app_config


@pytest.fixture
def source(tmp_path: Path, scratch_database_url: str) -> Iterator[Flask]:
    """An app on a committed scratch database at head, unsealed, with an account team and three secrets."""
    upgrade(scratch_database_url)
    instance = tmp_path / "source"
    instance.mkdir()
    Keyring.generate().save(instance / "vault.key")
    app = create_app(app_config(instance, scratch_database_url))
    with app.app_context():
        session = get_session()
        company = Company(app, session).account_team()
        ring = app.extensions["govern.keyring"]
        for index, kind in enumerate(("password", "totp", "recovery_codes")):
            value: Any = ["ABCD-1234", "EFGH-5678"] if kind == "recovery_codes" else (
                "JBSWY3DPEHPK3PXP" if kind == "totp" else f"Backup-Pw-{index}!x")
            company.add_secret(f"secret_{index}", ring, kind=kind, value=value)
        company.commit()
    yield app
    database(app).engine.dispose()


@pytest.fixture
def target_url(tmp_path: Path, scratch_database_url: str) -> Iterator[str]:
    """An empty database of the same kind as the source, to restore into."""
    if scratch_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'govern.db'}"
        return
    with scratch_postgresql(scratch_database_url, f"govern_restore_{secrets.token_hex(6)}") as url:
        yield url
