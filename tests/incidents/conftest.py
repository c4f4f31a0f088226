"""Incident fixtures: rotation's (the vault's keyring and world, a secret with an overdue task)."""

from __future__ import annotations

from tests.rotation.conftest import app_overrides, keyring, ring, setup, world  # noqa: F401 - fixtures
