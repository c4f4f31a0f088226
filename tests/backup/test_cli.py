"""`govern backup`, `govern backup verify` and `govern restore` as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from govern.crypto.keyring import Keyring
from tests.support import cli_env

GOVERN = str(Path(sys.executable).parent / "govern")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GOVERN, *args], capture_output=True, text=True, env=env, timeout=180, check=False)


@pytest.mark.slow
def test_backup_verify_and_restore_from_the_command_line(source, target_url, tmp_path):
    env = cli_env(tmp_path, source.config["DATABASE_URL"])
    instance = Path(env["GOVERN_INSTANCE_PATH"])
    instance.mkdir()
    ring: Keyring = source.extensions["govern.keyring"]
    ring.save(instance / "vault.key")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a long backup passphrase\n")

    made = _run(["backup", f"{tmp_path / 'out'}/", "--passphrase-file", str(passphrase)], env)
    assert made.returncode == 0, made.stderr
    archive = next((tmp_path / "out").iterdir())
    assert archive.name.startswith("govern-backup-") and archive.name.endswith(".tar.age")
    assert f"backup written: {archive}" in made.stdout and "keys not included" in made.stdout

    refused = _run(["backup", "verify", str(archive)], env)
    assert refused.returncode == 1 and "the archive is encrypted" in refused.stderr
    verified = _run(["backup", "verify", str(archive), "--passphrase-file", str(passphrase),
                     "--keyring", str(instance / "vault.key")], env)
    assert verified.returncode == 0, verified.stderr
    assert "3 secret versions decrypt with the given keyring" in verified.stdout and "backup verified" in verified.stdout

    lacking = tmp_path / "other.key"
    Keyring.generate().save(lacking)
    failed = _run(["backup", "verify", str(archive), "--passphrase-file", str(passphrase), "--keyring", str(lacking)], env)
    assert failed.returncode == 1 and f"lacks KEK(s) the data needs: {ring.primary_id} (3 data keys)" in failed.stderr

    into_live = _run(["restore", str(archive), "--passphrase-file", str(passphrase)], env)
    assert into_live.returncode == 1 and "not empty" in into_live.stderr

    env["GOVERN_DATABASE_URL"] = target_url
    restored = _run(["restore", str(archive), "--passphrase-file", str(passphrase)], env)
    assert restored.returncode == 0, restored.stderr
    assert "3 secret versions decrypt" in restored.stdout
    verify_chain = _run(["audit", "verify"], env)
    assert verify_chain.returncode == 0 and "audit chain intact" in verify_chain.stdout
    for output in (made, verified, failed, restored):  # no secret value or key in what the commands print
        for text in (output.stdout, output.stderr):
            assert "Backup-Pw" not in text and "a long backup passphrase" not in text
            assert all(key.hex() not in text for key in ring.keys.values())
