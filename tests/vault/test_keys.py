"""Key rotation: `govern keys rotate|rewrap|retire|status`, interrupted rewraps (failpoints and a real
SIGKILL) that lose nothing, the key check value that spots a wrong keyring, and `govern vault purge`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from govern import failpoints
from govern.accounts.models import Account
from govern.app import create_app
from govern.audit.models import AuditEvent
from govern.cli import cli
from govern.crypto import envelope
from govern.crypto.envelope import Binding, Sealed
from govern.crypto.keyring import Keyring
from govern.db import Database, utcnow
from govern.schema import upgrade
from govern.vault.errors import VaultSealedError
from govern.vault.keys import count_stale, ensure_key_check, rewrap_all, rotate_keyring
from govern.vault.models import KeyCheck, Secret, SecretVersion
from govern.vault.versions import create_secret
from tests.support import app_config

GOVERN = str(Path(sys.executable).parent / "govern")


class Installation:
    """A committed scratch database, an instance folder with a key file, and fresh apps on demand."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path, self.url = tmp_path, url
        self.instance = tmp_path / "instance"
        self.key_file = self.instance / "vault.key"
        Keyring.generate().save(self.key_file)
        upgrade(url)
        self.db = Database(url)

    def app(self) -> Any:
        """A new app, as a new process would build it (reads the key file again)."""
        return create_app(app_config(self.instance, self.url))

    def keyring(self) -> Keyring:
        return Keyring.load(self.key_file)

    def run(self, *args: str) -> Any:
        return self.app().test_cli_runner().invoke(cli, list(args), catch_exceptions=False)

    def seed(self, count: int, *, plaintext: bytes = b"canary-value") -> dict[int, bytes]:
        """``count`` secret versions sealed under the current primary, inserted in bulk; {version id: plaintext}."""
        keyring = self.keyring()
        with self.db.session_scope() as session:
            account = Account(platform="other", handle=f"bulk{time.time_ns()}", url="https://example.com",
                              display_name="Bulk")
            session.add(account)
            session.flush()
            start = (session.scalar(select(func.max(Secret.id))) or 0) + 1
            now = utcnow()
            session.execute(insert(Secret), [
                {"id": start + i, "account_id": account.id, "kind": "password", "label": f"s{start + i}",
                 "created_at": now, "updated_at": now} for i in range(count)])
            rows, expected = [], {}
            first_version = (session.scalar(select(func.max(SecretVersion.id))) or 0) + 1
            for i in range(count):
                secret_id = start + i
                value = plaintext + b"-" + str(secret_id).encode()
                sealed = envelope.seal(keyring, value, Binding(secret_id, 1, "password"))
                rows.append({"id": first_version + i, "secret_id": secret_id, "version": 1, "status": "current",
                             "ciphertext": sealed.ciphertext, "wrapped_key": sealed.wrapped_key, "kek_id": sealed.kek_id,
                             "created_at": now})
                expected[first_version + i] = value
            session.execute(insert(SecretVersion), rows)
            ensure_key_check(session, keyring)
            session.commit()
        return expected

    def assert_all_decrypt(self, expected: dict[int, bytes], keyring: Keyring | None = None) -> None:
        """Every seeded version still opens to its plaintext: none lost, none garbled."""
        keyring = keyring or self.keyring()
        with self.db.session_scope() as session:
            rows = session.execute(select(SecretVersion.id, SecretVersion.secret_id, SecretVersion.version,
                                          SecretVersion.ciphertext, SecretVersion.wrapped_key, SecretVersion.kek_id)
                                   .where(SecretVersion.id.in_(list(expected)))).all()
        assert len(rows) == len(expected)
        for version_id, secret_id, number, ciphertext, wrapped, kek_id in rows:
            opened = envelope.open_sealed(keyring, Sealed(ciphertext, wrapped, kek_id), Binding(secret_id, number, "password"))
            assert opened == expected[version_id]

    def stale(self) -> int:
        with self.db.session_scope() as session:
            return count_stale(session, self.keyring())

    def actions(self) -> list[str]:
        with self.db.session_scope() as session:
            return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.fixture
def inst(tmp_path: Path, scratch_database_url: str) -> Any:
    installation = Installation(tmp_path, scratch_database_url)
    yield installation
    installation.db.engine.dispose()


def test_rotate_rewrap_retire_and_status(inst):
    expected = inst.seed(50)
    old = inst.keyring().primary_id
    result = inst.run("keys", "rotate")
    assert result.exit_code == 0, result.output
    new = inst.keyring()
    assert new.primary_id != old and set(new.keys) == {old, new.primary_id}
    assert inst.key_file.stat().st_mode & 0o777 == 0o600
    status = inst.run("keys", "status")
    assert "50 data key(s) are not yet under the primary key" in status.output
    refused = inst.run("keys", "retire", old)
    assert refused.exit_code != 0 and "still wraps 50 data key(s)" in refused.output
    assert old in inst.keyring().keys
    with inst.db.session_scope() as session:
        ciphertexts_before = {r[0]: r[1] for r in session.execute(select(SecretVersion.id, SecretVersion.ciphertext))}
    result = inst.run("keys", "rewrap", "--batch-size", "7")
    assert result.exit_code == 0 and "rewrapped 50 data key(s)" in result.output, result.output
    with inst.db.session_scope() as session:
        assert {r[0]: r[1] for r in session.execute(select(SecretVersion.id, SecretVersion.ciphertext))} == ciphertexts_before
    assert inst.stale() == 0
    result = inst.run("keys", "retire", old)
    assert result.exit_code == 0, result.output
    assert set(inst.keyring().keys) == {new.primary_id}
    inst.assert_all_decrypt(expected)
    actions = inst.actions()
    assert {"vault.keys_rotated", "vault.rewrap_started", "vault.rewrap_batch", "vault.rewrap_finished",
            "vault.kek_retired"} <= set(actions)
    assert actions.count("vault.rewrap_batch") == 8  # ceil(50 / 7)
    assert inst.run("keys", "retire", new.primary_id).exit_code != 0  # never the primary


@pytest.mark.parametrize("failpoint", ["vault.rewrap.after_batch", "vault.rewrap.before_commit"])
@pytest.mark.parametrize("kill_after", [1, 2, 3, 5, 8])
def test_rewrap_interrupted_after_any_batch_loses_nothing_and_a_rerun_finishes(inst, failpoint, kill_after):
    expected = inst.seed(40)
    assert inst.run("keys", "rotate").exit_code == 0
    keyring = inst.keyring()

    def crash(step: int) -> None:
        if step == kill_after:
            raise KeyboardInterrupt("killed by the test")

    with failpoints.armed(failpoint, crash), pytest.raises(KeyboardInterrupt):
        rewrap_all(inst.db.sessionmaker, keyring, batch_size=5)
    committed = kill_after if failpoint == "vault.rewrap.after_batch" else kill_after - 1
    assert inst.stale() == 40 - committed * 5
    inst.assert_all_decrypt(expected)  # mid-way: both keys in the ring open everything
    result = rewrap_all(inst.db.sessionmaker, keyring, batch_size=5)
    assert result.rewrapped == 40 - committed * 5 and result.failed == []
    assert inst.stale() == 0
    inst.assert_all_decrypt(expected)


def test_rewrap_killed_with_sigkill_in_a_real_process(inst):
    expected = inst.seed(1500)
    assert inst.run("keys", "rotate").exit_code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVERN_", "FLASK_"))}
    env.update({"GOVERN_INSTANCE_PATH": str(inst.instance), "GOVERN_DATABASE_URL": inst.url,
                "GOVERN_ARGON2_TIME_COST": "2", "GOVERN_ARGON2_MEMORY_KIB": "19456"})
    process = subprocess.Popen([GOVERN, "keys", "rewrap", "--batch-size", "1"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while inst.stale() > 1500 - 20 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "the rewrap finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    left = inst.stale()
    assert 0 < left < 1500
    inst.assert_all_decrypt(expected)
    rerun = subprocess.run([GOVERN, "keys", "rewrap", "--batch-size", "500"], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"rewrapped {left} data key(s)" in rerun.stdout
    assert inst.stale() == 0
    inst.assert_all_decrypt(expected)


def test_rewrap_skips_and_reports_a_tampered_data_key(inst):
    expected = inst.seed(10)
    assert inst.run("keys", "rotate").exit_code == 0
    victim = min(expected)
    with inst.db.session_scope() as session:
        version = session.get(SecretVersion, victim)
        broken = bytearray(version.wrapped_key)
        broken[-1] ^= 1
        version.wrapped_key = bytes(broken)
        session.commit()
    result = inst.run("keys", "rewrap")
    assert result.exit_code == 1 and "1 data key(s) did not unwrap" in result.output
    assert inst.stale() == 1
    del expected[victim]
    inst.assert_all_decrypt(expected)


def test_a_wrong_keyring_seals_the_vault_at_start(inst):
    inst.seed(3)
    assert inst.app().extensions["govern.keyring"] is not None
    stranger = Keyring.generate()
    # Same KEK id, different key: the key check value gives it away.
    Keyring(primary_id=inst.keyring().primary_id, keys={inst.keyring().primary_id: stranger.keys[stranger.primary_id]}).save(inst.key_file)
    app = inst.app()
    assert app.extensions["govern.keyring"] is None
    assert "key check value differs" in app.extensions["govern.keyring_problem"]
    status = inst.run("keys", "status")
    assert status.exit_code == 3 and "SEALED" in status.output and "WRONG" in status.output
    result = inst.run("keys", "rewrap")
    assert result.exit_code == 3 and "sealed" in result.output


def test_a_keyring_missing_a_needed_key_seals_the_vault(inst):
    inst.seed(3)
    Keyring.generate().save(inst.key_file)  # an unrelated keyring (e.g. a restored old key file)
    app = inst.app()
    assert app.extensions["govern.keyring"] is None
    assert "lacks key(s) that still wrap data keys" in app.extensions["govern.keyring_problem"]


def test_a_retired_primary_key_is_never_used_again(inst):
    inst.seed(1)
    keyring = inst.keyring()
    with inst.db.session_scope() as session:
        session.execute(KeyCheck.__table__.update().values(retired_at=utcnow()))
        session.commit()
        with pytest.raises(VaultSealedError, match="retired"):
            ensure_key_check(session, keyring)


def test_purge_command(inst):
    inst.seed(2)
    with inst.db.session_scope() as session:
        version = session.scalars(select(SecretVersion)).first()
        version.status, version.retired_at = "retired", utcnow().replace(year=2020)
        session.commit()
    result = inst.run("vault", "purge")
    assert result.exit_code == 0 and "destroyed 1 retired version(s) older than 30 day(s)" in result.output
    with inst.db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SecretVersion).where(SecretVersion.status == "destroyed")) == 1


def test_a_rotation_that_crashed_after_writing_the_key_file_still_works(inst):
    """The key file is written first (atomically); if recording in the database never happened,
    the next start is unsealed, old data decrypts, and the first use records the new key."""
    expected = inst.seed(5)
    old = inst.keyring()
    new = rotate_keyring(old)
    new.save(inst.key_file)  # ... and the process died before record_rotation
    app = inst.app()
    assert app.extensions["govern.keyring"] is not None, app.extensions["govern.keyring_problem"]
    inst.assert_all_decrypt(expected)
    with inst.db.session_scope() as session:
        ensure_key_check(session, new)
        session.commit()
        assert session.get(KeyCheck, new.primary_id) is not None
    # Restoring the previous key file still reads everything written before the rotation.
    old.save(inst.key_file)
    inst.assert_all_decrypt(expected)


def test_rotate_with_a_keyring_from_the_environment_needs_an_output_file(inst, tmp_path):
    app = create_app(app_config(inst.instance, inst.url, VAULT_KEYRING_JSON=inst.keyring().to_json()))
    runner = app.test_cli_runner()
    refused = runner.invoke(cli, ["keys", "rotate"])
    assert refused.exit_code != 0 and "--output" in refused.output
    target = tmp_path / "new-keyring.json"
    done = runner.invoke(cli, ["keys", "rotate", "--output", str(target)])
    assert done.exit_code == 0, done.output
    assert target.stat().st_mode & 0o777 == 0o600 and len(Keyring.load(target).keys) == 2


def _running_app_with_a_secret(inst: Installation) -> tuple[Any, Any, int]:
    """A govern app (a worker that stays up), an IT user of it, and a password vaulted through it."""
    from tests.factories import make_account, make_user

    app = inst.app()
    with app.test_request_context(), inst.db.session_scope() as session:
        it = make_user(session, app.extensions["govern.auth"], roles=("it",))
        account = make_account(session)
        secret = create_secret(session, actor=it.user, keyring=app.extensions["govern.keyring"], account=account,
                               kind="password", label="login", value="Reload-Canary-51d0")
        session.commit()
        return app, it, secret.id


def _reveal_through(app: Any, inst: Installation, who: Any, secret_id: int) -> Any:
    from tests.factories import login, post

    client = app.test_client()
    with inst.db.session_scope() as session:
        login(client, session, who)
        return post(client, f"/vault/secrets/{secret_id}/reveal", {"reason": "after the rotation"})


def test_a_running_worker_reveals_after_rotate_and_rewrap_without_a_restart(inst):
    app, it, secret_id = _running_app_with_a_secret(inst)
    old = app.extensions["govern.keyring"].primary_id
    assert inst.run("keys", "rotate").exit_code == 0  # other processes, as an operator runs them
    result = inst.run("keys", "rewrap")
    assert result.exit_code == 0 and "rewrapped 1 data key(s)" in result.output, result.output
    new = inst.keyring().primary_id
    response = _reveal_through(app, inst, it, secret_id)
    assert response.status_code == 200 and "Reload-Canary-51d0" in response.get_data(as_text=True)
    running = app.extensions["govern.keyring"]
    # The worker now seals new values under the new primary, and still knows the old key.
    assert running.primary_id == new and set(running.keys) == {old, new}
    assert "vault.decrypt_failed" not in inst.actions()


def test_a_key_found_nowhere_fails_cleanly_after_one_reload(inst):
    app, it, secret_id = _running_app_with_a_secret(inst)
    with inst.db.session_scope() as session:
        session.execute(SecretVersion.__table__.update().values(kek_id="kek-nowhere"))
        session.commit()
    running = app.extensions["govern.keyring"]
    loads: list[int] = []
    source = running.source

    def counting_source() -> Keyring:
        loads.append(1)
        return source()

    running.source = counting_source
    for _ in range(3):
        response = _reveal_through(app, inst, it, secret_id)
        assert response.status_code == 409 and "Reload-Canary-51d0" not in response.get_data(as_text=True)
    assert len(loads) == 1  # one reload for the unknown id, not one per request
    assert inst.actions().count("vault.decrypt_failed") == 3


def test_an_unknown_key_is_looked_for_again_once_the_interval_has_passed(tmp_path, monkeypatch):
    from govern.crypto import keyring as keyring_module

    path = tmp_path / "vault.key"
    Keyring.generate().save(path)
    loads: list[int] = []

    def source() -> Keyring:
        loads.append(1)
        return Keyring.load(path)

    running = Keyring.load(path)
    running.source = source
    assert running.key("kek-later") is None and running.key("kek-later") is None and len(loads) == 1
    monkeypatch.setattr(keyring_module, "RELOAD_INTERVAL", 0.0)
    rotated = rotate_keyring(Keyring.load(path))
    rotated.save(path)
    assert running.key(rotated.primary_id) == rotated.keys[rotated.primary_id] and len(loads) == 2
    path.unlink()  # a source that fails leaves the keyring as it was
    assert running.key("kek-gone") is None and running.primary_id == rotated.primary_id
