"""Configuration: production refusals, the schema check, settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from govern.app import create_app
from govern.config import ConfigError, load_config
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.keyring import Keyring
from govern.schema import SchemaNotCurrentError, downgrade, upgrade

GOVERN = str(Path(sys.executable).parent / "govern")
STRONG_KEY = "k" * 20 + "Zq9" + "m" * 20


def _run(env_extra: dict[str, str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVERN_", "FLASK_"))}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path / "instance"),
                "GOVERN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"})
    env.update(env_extra)
    return subprocess.run([GOVERN, *args], capture_output=True, text=True, env=env, timeout=60)


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    key_file, audit_key_file = tmp_path / "vault.key", tmp_path / "audit.key"
    if not key_file.exists():
        Keyring.generate().save(key_file)
    if not audit_key_file.exists():
        AuditKeys.generate().save(audit_key_file)
    return {"GOVERN_ENV": "production", "GOVERN_SECRET_KEY": STRONG_KEY, "GOVERN_VAULT_KEY_FILE": str(key_file),
            "GOVERN_AUDIT_KEY_FILE": str(audit_key_file), **extra}


@pytest.mark.parametrize("change,reason", [
    ({"GOVERN_DEBUG": "1"}, "debug on"),
    ({"FLASK_DEBUG": "1"}, "debug on"),
    ({"GOVERN_SECRET_KEY": "dev"}, "development secret key"),
    ({"GOVERN_SECRET_KEY": "short-key"}, "development secret key"),
    ({"GOVERN_VAULT_KEY_FILE": "/nonexistent/vault.key"}, "vault key file"),
    ({"GOVERN_AUDIT_KEY_FILE": "/nonexistent/audit.key"}, "audit key file"),
])
def test_production_refuses_to_start_with_a_one_line_reason(tmp_path, change, reason):
    result = _run({**_production_env(tmp_path), **change}, "db", "current", tmp_path=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("govern: ") and reason in lines[0], result.stderr


def test_production_does_not_create_a_secret_key_by_itself(tmp_path):
    env = _production_env(tmp_path)
    env.pop("GOVERN_SECRET_KEY")
    result = _run(env, "db", "current", tmp_path=tmp_path)
    assert result.returncode != 0 and "secret key" in result.stderr
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_production_starts_with_good_settings(tmp_path):
    result = _run(_production_env(tmp_path), "db", "upgrade", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_bad_numbers_in_the_environment_are_explained(monkeypatch):
    monkeypatch.setenv("GOVERN_SESSION_IDLE_MINUTES", "thirty")
    with pytest.raises(ConfigError, match="GOVERN_SESSION_IDLE_MINUTES must be a whole number"):
        load_config({"ENV": "testing", "SECRET_KEY": STRONG_KEY})


def test_argon2_below_the_floor_is_refused():
    with pytest.raises(ConfigError, match="ASVS floor"):
        load_config({"ENV": "testing", "SECRET_KEY": STRONG_KEY, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 8192})


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GOVERN_SESSION_IDLE_MINUTES", "15")
    monkeypatch.setenv("GOVERN_PROXY_HOPS", "2")
    monkeypatch.setenv("GOVERN_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("GOVERN_SMTP_HOST", "mail.example")
    config = load_config({"ENV": "testing", "SECRET_KEY": STRONG_KEY, "INSTANCE_PATH": tmp_path})
    assert config["SESSION_IDLE_TIMEOUT"].total_seconds() == 900
    assert config["PROXY_HOPS"] == 2 and config["REDIS_URL"].endswith("/3") and config["SMTP_HOST"] == "mail.example"


def test_development_creates_a_private_secret_key_file(tmp_path):
    config = load_config({"ENV": "development", "INSTANCE_PATH": tmp_path})
    key_file = tmp_path / "secret_key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert config["SECRET_KEY"] == key_file.read_text().strip() and len(config["SECRET_KEY"]) >= 32


def test_the_app_refuses_a_database_that_is_not_at_the_latest_migration(tmp_path, scratch_database_url):
    config = {"ENV": "testing", "INSTANCE_PATH": tmp_path, "DATABASE_URL": scratch_database_url, "SECRET_KEY": STRONG_KEY}
    with pytest.raises(SchemaNotCurrentError, match="run `govern db upgrade`"):
        create_app(config)
    upgrade(scratch_database_url)
    create_app(config).extensions["govern.db"].engine.dispose()
    downgrade(scratch_database_url, "base")
    with pytest.raises(SchemaNotCurrentError, match="govern db upgrade"):
        create_app(config)


def test_the_wsgi_entry_point_explains_an_old_schema_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path), "GOVERN_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"})
    result = subprocess.run([sys.executable, "-c", "import govern.wsgi"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("govern: the database is at migration (empty)")
    assert "govern db upgrade" in result.stderr


def test_vault_keyring_file_must_be_private(tmp_path):
    from govern.crypto.keyring import KeyringError

    path = tmp_path / "vault.key"
    Keyring.generate().save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(KeyringError, match="readable by others"):
        Keyring.load(path)


def test_a_missing_keyring_leaves_the_app_sealed_but_working(app):
    assert app.extensions["govern.keyring"] is None
    assert app.test_client().get("/login").status_code == 200


def test_the_secret_key_and_the_vault_keyring_must_differ():
    ring = Keyring.generate()
    text = ring.to_json()
    import base64

    key_b64 = base64.b64encode(next(iter(ring.keys.values()))).decode()
    with pytest.raises(ConfigError, match="different"):
        load_config({"ENV": "testing", "SECRET_KEY": key_b64, "VAULT_KEYRING_JSON": text})


@pytest.mark.parametrize(("bind", "url"), [
    ("127.0.0.1:5101", "http://127.0.0.1:5101"),
    ("0.0.0.0:8080", "http://127.0.0.1:8080"),
    ("govern.internal:5000", "http://govern.internal:5000"),
    ("[::1]:5002", "http://[::1]:5002"),
    ("[::]:5003", "http://[::1]:5003"),
])
def test_the_base_url_follows_the_bind_address_unless_set(monkeypatch, tmp_path, bind, url):
    monkeypatch.setenv("GOVERN_BIND", bind)
    monkeypatch.delenv("GOVERN_BASE_URL", raising=False)
    assert load_config({"INSTANCE_PATH": tmp_path})["BASE_URL"] == url
    monkeypatch.setenv("GOVERN_BASE_URL", "https://govern.example.com/")
    assert load_config({"INSTANCE_PATH": tmp_path})["BASE_URL"] == "https://govern.example.com"


@pytest.mark.parametrize("bind", ["5101", "localhost", "127.0.0.1:http", "127.0.0.1:70000", ":5000"])
def test_a_malformed_bind_address_stops_the_start_with_a_reason(monkeypatch, tmp_path, bind):
    monkeypatch.setenv("GOVERN_BIND", bind)
    with pytest.raises(ConfigError, match="GOVERN_BIND must be HOST:PORT"):
        load_config({"INSTANCE_PATH": tmp_path})


def test_outbox_claim_lease_is_a_setting_of_at_least_a_minute(monkeypatch):
    assert load_config({"ENV": "testing"})["OUTBOX_CLAIM_SECONDS"] == 600
    monkeypatch.setenv("GOVERN_OUTBOX_CLAIM_SECONDS", "90")
    assert load_config({"ENV": "testing"})["OUTBOX_CLAIM_SECONDS"] == 90
    monkeypatch.setenv("GOVERN_OUTBOX_CLAIM_SECONDS", "5")
    with pytest.raises(ConfigError, match="GOVERN_OUTBOX_CLAIM_SECONDS must be at least 60"):
        load_config({"ENV": "testing"})
