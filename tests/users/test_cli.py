"""`govern init` and `govern users create-admin` in a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GOVERN = str(Path(sys.executable).parent / "govern")


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path / "instance"), "GOVERN_DATABASE_URL": url,
                "GOVERN_ARGON2_TIME_COST": "2", "GOVERN_ARGON2_MEMORY_KIB": "19456"})
    return env


def test_init_creates_instance_keys_database_and_first_admin_once(tmp_path, scratch_database_url):
    env = _env(tmp_path, scratch_database_url)
    first = subprocess.run([GOVERN, "init", "--admin-email", "Boss@Example.com"], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    secret = re.search(r"^    (\S{40,})$", first.stdout, re.M).group(1)
    assert f"/setup#token={secret}" in first.stdout
    instance = tmp_path / "instance"
    assert (instance / "vault.key").stat().st_mode & 0o777 == 0o600
    assert (instance / "secret_key").stat().st_mode & 0o777 == 0o600
    current = subprocess.run([GOVERN, "db", "current"], capture_output=True, text=True, env=env, timeout=60)
    assert current.returncode == 0 and "current: " in current.stdout
    second = subprocess.run([GOVERN, "init"], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0 and "users exist already" in second.stdout and secret not in second.stdout


def test_create_admin_bootstraps_and_recovers(tmp_path, scratch_database_url):
    env = _env(tmp_path, scratch_database_url)
    subprocess.run([GOVERN, "db", "upgrade"], check=True, capture_output=True, env=env, timeout=120)
    created = subprocess.run([GOVERN, "users", "create-admin", "ops@example.com"], capture_output=True, text=True, env=env, timeout=120)
    assert created.returncode == 0 and "Admin created." in created.stdout
    recovered = subprocess.run([GOVERN, "users", "create-admin", "ops@example.com"], capture_output=True, text=True, env=env, timeout=120)
    assert recovered.returncode == 0 and "Admin recovered" in recovered.stdout
    bad = subprocess.run([GOVERN, "users", "create-admin", "not an email"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "valid email" in bad.stderr
    verify = subprocess.run([GOVERN, "audit", "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_keys_init_never_overwrites(tmp_path, scratch_database_url):
    env = _env(tmp_path, scratch_database_url)
    first = subprocess.run([GOVERN, "keys", "init"], capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "instance" / "vault.key").read_text()
    second = subprocess.run([GOVERN, "keys", "init"], capture_output=True, text=True, env=env, timeout=60)
    assert second.returncode != 0 and "never overwrites" in second.stderr
    assert (tmp_path / "instance" / "vault.key").read_text() == before


def test_init_creates_the_sqlite_database_and_its_companions_private(tmp_path):
    """A fresh SQLite instance: the database file and its -wal/-shm files are 0600, not 0644."""
    database = tmp_path / "instance" / "govern.db"
    env = _env(tmp_path, f"sqlite:///{database}")
    env["GOVERN_VAULT_KEY_FILE"] = str(tmp_path / "instance" / "vault.key")
    result = subprocess.run([GOVERN, "init", "--admin-email", "boss@example.com"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", "-journal"))]
    present = [f for f in files if f.exists()]
    assert database in present
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in present} == {f.name: oct(0o600) for f in present}
    # A file copied in with a loose mode is made private at the next connection.
    database.chmod(0o644)
    subprocess.run([GOVERN, "db", "current"], check=True, capture_output=True, env=env, timeout=60)
    assert database.stat().st_mode & 0o777 == 0o600


def test_the_setup_link_follows_govern_bind_and_a_first_start_warns_of_nothing(tmp_path):
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'instance' / 'govern.db'}")
    env["GOVERN_BIND"] = "127.0.0.1:5101"
    first = subprocess.run([GOVERN, "init", "--admin-email", "boss@example.com"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "open http://127.0.0.1:5101/setup and enter" in first.stdout and "5000" not in first.stdout
    assert "Created the vault key file" in first.stdout
    # A healthy first start: the key file is created before the app starts, so nothing says "sealed".
    assert "sealed" not in first.stdout + first.stderr and "warning" not in first.stderr
    env["GOVERN_BASE_URL"] = "https://govern.example.com"
    recovered = subprocess.run([GOVERN, "users", "create-admin", "boss@example.com"], capture_output=True, text=True,
                               env=env, timeout=120)
    assert recovered.returncode == 0 and "https://govern.example.com/setup" in recovered.stdout
    keys = subprocess.run([GOVERN, "keys", "init"], capture_output=True, text=True,
                          env={**env, "GOVERN_VAULT_KEY_FILE": str(tmp_path / "other.key")}, timeout=60)
    assert keys.returncode == 0 and "sealed" not in keys.stdout + keys.stderr


def test_gunicorn_listens_where_govern_bind_says_and_prints_that_address(tmp_path):
    """What scripts/serve runs: the address and workers come from GOVERN_BIND / GOVERN_WORKERS."""
    import socket
    import threading

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'instance' / 'govern.db'}")
    subprocess.run([GOVERN, "init"], check=True, capture_output=True, env=env, timeout=120)
    env.update({"GOVERN_BIND": f"127.0.0.1:{port}", "GOVERN_WORKERS": "1"})
    server = subprocess.Popen([str(Path(GOVERN).parent / "gunicorn"), "--config", "python:govern.gunicorn_conf", "govern.wsgi:app"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    watchdog = threading.Timer(60, server.kill)  # a server that never says where it listens fails the test
    watchdog.start()
    try:
        line = server.stdout.readline()
        assert line.strip() == (f"govern is listening on http://127.0.0.1:{port} with 1 worker(s); "
                                f"open http://127.0.0.1:{port} (Ctrl-C stops it)")
    finally:
        watchdog.cancel()
        server.terminate()
        server.wait(timeout=30)
