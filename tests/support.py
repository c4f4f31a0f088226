"""Test plumbing shared by conftest and the tests that build their own app: its configuration, and services it needs."""

from __future__ import annotations

import os
import pty
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

#: The cheapest argon2id parameters the ASVS allows: the tests use them for speed.
FAST_ARGON2 = {"ARGON2_TIME_COST": 2, "ARGON2_MEMORY_KIB": 19456}
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
#: The audit keys of every test app and `govern` subprocess, so that they chain and verify alike.
TEST_AUDIT_KEYS = (
    '{"format":1,"hmac":{"primary":"ak-7e570001","keys":{"ak-7e570001":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}},"signing":{"primary":"sk-7e570001","keys":{"sk-7e570001":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="}}}'
)


def app_config(instance: Path, database_url: str, **overrides: Any) -> dict[str, Any]:
    """Configuration of a test app."""
    config: dict[str, Any] = {
        "ENV": "testing",
        "INSTANCE_PATH": instance,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "AUDIT_KEYS_JSON": TEST_AUDIT_KEYS,
        "VAULT_KEY_FILE": instance / "vault.key",
        "BASE_URL": "http://localhost",
        # The session fixture migrated the database; the refusal itself has its own test.
        "REQUIRE_CURRENT_SCHEMA": False,
        **FAST_ARGON2,
    }
    config.update(overrides)
    return config


def cli_env(instance_parent: Path, database_url: str) -> dict[str, str]:
    """The environment of a `govern` subprocess: this one's without any GOVERN_* setting, plus an
    instance folder under ``instance_parent``, the database and a fresh secret key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(instance_parent / "instance"), "GOVERN_DATABASE_URL": database_url,
                "GOVERN_SECRET_KEY": secrets.token_urlsafe(30), "GOVERN_AUDIT_KEYS": TEST_AUDIT_KEYS})
    return env


def require_service(kind: str, reachable: bool, how: str) -> None:
    """Skip when a service is missing outside CI; fail in CI, where every leg must run."""
    if reachable:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{kind} is required in CI but is not available: {how}")
    pytest.skip(f"{kind} not available: {how}")


def run_with_terminal_stderr(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a command whose stderr is a terminal (a pty) and stdout a pipe: (the result, what the terminal showed)."""
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, text=True, env=env, timeout=120)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the follower side is closed: everything is read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    return result, b"".join(chunks).decode(errors="replace")
