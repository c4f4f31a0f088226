"""`govern backup`, verify and restore on the database under test (SQLite, and PostgreSQL in its leg)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from govern.audit.models import AuditEvent
from govern.audit.services import verify_chain
from govern.auth.models import User
from govern.backup.archive import BackupError, Decryption, Encryption
from govern.backup.make import make_backup
from govern.backup.restore import SecretKeys, restore_archive, verify_archive
from govern.backup.snapshot import facts_of, table_names
from govern.crypto import envelope
from govern.crypto.auditkeys import AuditKeys
from govern.crypto.envelope import Binding, Sealed
from govern.crypto.keyring import Keyring
from govern.db import get_session
from govern.schema import head_revision, upgrade
from govern.vault.keys import record_rotation, rotate_keyring
from govern.vault.models import Secret, SecretVersion
from govern.vault.versions import create_secret
from tests.factories import append_events
from tests.support import TEST_SECRET_KEY

NO_KEYS = SecretKeys()


def _url(app: Flask) -> str:
    return str(app.config["DATABASE_URL"])


def _ring(app: Flask) -> Keyring:
    ring: Keyring = app.extensions["govern.keyring"]
    return ring


def _audit_keys(app: Flask) -> AuditKeys:
    keys: AuditKeys = app.extensions["govern.audit_keys"]
    return keys


def _backup(app: Flask, dest: Path, *, encryption: Encryption | None = None, include_keys: bool = False) -> Any:
    return make_backup(_url(app), dest, keyring=_ring(app), secret_key=TEST_SECRET_KEY,
                       encryption=encryption or Encryption(), include_keys=include_keys, audit_keys=_audit_keys(app))


def _open_every_secret(url: str, ring: Keyring) -> dict[int, bytes]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            rows = session.execute(select(SecretVersion, Secret).join(Secret)
                                   .where(SecretVersion.status != "destroyed")).all()
            return {version.id: envelope.open_sealed(ring, Sealed(version.ciphertext, version.wrapped_key, version.kek_id),
                                                     Binding(secret.id, version.version, secret.kind))
                    for version, secret in rows}
    finally:
        engine.dispose()


def test_a_backup_taken_during_writes_restores_with_every_secret_and_the_chain(source, target_url, tmp_path):
    """A writer appends audit events the whole time; the archive holds one consistent moment of it."""
    stop, written = threading.Event(), []

    def write() -> None:
        engine = create_engine(_url(source), poolclass=NullPool)
        with Session(engine) as session:
            while not stop.is_set():
                append_events(session, 20)
                session.commit()
                written.append(20)
        engine.dispose()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while not written:  # the backup starts while the writer is at work
            stop.wait(0.01)
        (tmp_path / "backups").mkdir()
        made = _backup(source, tmp_path / "backups")
        assert not stop.is_set()
    finally:
        stop.set()
        writer.join()
    assert made.path.parent == tmp_path / "backups" and made.path.name.endswith(".tar")
    head = made.manifest["audit_head"]["event_id"]
    with source.app_context():
        assert get_session().scalar(select(func.max(AuditEvent.id))) > head  # writes went on after the snapshot

    restored = restore_archive(made.path, target_url, decryption=Decryption(), keyring=_ring(source), key_file=None,
                               secret_keys=SecretKeys(keys=(TEST_SECRET_KEY,)), audit_keys=_audit_keys(source))
    assert restored.report.ok, restored.report.problems
    assert restored.report.events_verified == head
    assert restored.report.data_keys_unwrapped == 3 and restored.notes == []
    facts = facts_of(target_url)
    for table, count in made.manifest["row_counts"].items():
        expected = count + 1 if table == "audit_events" else count  # the restore's own event
        assert facts["row_counts"][table] == expected, table
    assert _open_every_secret(target_url, _ring(source)) == _open_every_secret(_url(source), _ring(source))
    engine = create_engine(target_url, poolclass=NullPool)
    with Session(engine) as session:
        result = verify_chain(session, keys=_audit_keys(source))
        assert result.ok and result.keyed_from == 1 and result.keyed_unchecked == 0, result.problem
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        assert last.action == "backup.restored" and last.actor_label == "cli"
    engine.dispose()


def test_verify_with_a_keyring_that_lacks_a_kek_fails_and_names_it(source, tmp_path):
    old = _ring(source)
    new = rotate_keyring(old)
    with source.app_context():
        session = get_session()
        record_rotation(session, old_primary=old.primary_id, keyring=new)
        secret = session.scalars(select(Secret)).first()
        it = session.get(User, secret.created_by_id)
        create_secret(session, actor=it, keyring=new, account=secret.account, kind="password", label="after rotation",
                      value="Rotated-Pw-1!x")
        session.commit()
    source.extensions["govern.keyring"] = new
    made = _backup(source, tmp_path / "archive.tar")

    good = verify_archive(made.path, decryption=Decryption(), keyring=new, scratch_url=_url(source))
    assert good.report.ok, good.report.problems
    assert good.report.data_keys_unwrapped == 4

    stale = verify_archive(made.path, decryption=Decryption(), keyring=old, scratch_url=_url(source))
    assert not stale.report.ok
    assert any(f"lacks KEK(s) the data needs: {new.primary_id} (1 data keys)" in p for p in stale.report.problems)

    wrong = Keyring(primary_id=new.primary_id, keys={**new.keys, old.primary_id: b"\x01" * 32})
    refused = verify_archive(made.path, decryption=Decryption(), keyring=wrong, scratch_url=_url(source))
    assert any(f"{old.primary_id} are not the keys this backup was made with" in p for p in refused.report.problems)


def _rewrite(archive: Path, out: Path, edit: Any) -> None:
    """Copy a plain archive, letting ``edit(name, data)`` change a member's bytes."""
    with tarfile.open(archive) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for info in src:
            data = src.extractfile(info).read()
            data = edit(info.name, data)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_a_truncated_or_edited_archive_is_refused(source, tmp_path):
    made = _backup(source, tmp_path / "archive.tar")
    raw = made.path.read_bytes()

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BackupError, match="truncated or damaged|lacks"):
        verify_archive(truncated, decryption=Decryption(), keyring=None, scratch_url=_url(source))

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01
    (tmp_path / "flipped.tar").write_bytes(bytes(flipped))
    with pytest.raises(BackupError, match="does not match its checksum"):
        verify_archive(tmp_path / "flipped.tar", decryption=Decryption(), keyring=None, scratch_url=_url(source))

    def fake_counts(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["row_counts"]["secrets"] += 1  # hide a deleted secret
        return json.dumps(manifest).encode()

    _rewrite(made.path, tmp_path / "edited.tar", fake_counts)
    with_keys = verify_archive(tmp_path / "edited.tar", decryption=Decryption(), keyring=_ring(source),
                               scratch_url=_url(source))
    assert "the manifest was edited (its MAC does not match under the keyring's key)" in with_keys.report.problems
    without = verify_archive(tmp_path / "edited.tar", decryption=Decryption(), keyring=None, scratch_url=_url(source))
    assert any("row counts differ from the manifest: secrets" in p for p in without.report.problems)


def test_encrypted_archives_open_only_with_their_passphrase_or_identity(source, tmp_path):
    from pyrage import x25519

    with pytest.raises(BackupError, match="only when the archive is encrypted"):
        _backup(source, tmp_path / "plain-with-keys.tar", include_keys=True)
    assert not (tmp_path / "plain-with-keys.tar").exists()

    by_passphrase = _backup(source, tmp_path / "p.tar.age", encryption=Encryption(passphrase="correct horse battery"),
                            include_keys=True)
    assert b"Backup-Pw" not in by_passphrase.path.read_bytes() and by_passphrase.path.read_bytes().startswith(b"age-")
    with pytest.raises(BackupError, match="is encrypted"):
        verify_archive(by_passphrase.path, decryption=Decryption(), keyring=None, scratch_url=_url(source))
    with pytest.raises(BackupError, match="does not decrypt"):
        verify_archive(by_passphrase.path, decryption=Decryption(passphrase="wrong"), keyring=None,
                       scratch_url=_url(source))
    opened = verify_archive(by_passphrase.path, decryption=Decryption(passphrase="correct horse battery"), keyring=None,
                            scratch_url=_url(source))
    assert opened.report.ok and opened.keyring_source == "archive" and opened.report.data_keys_unwrapped == 3

    identity = x25519.Identity.generate()
    by_key = _backup(source, tmp_path / "r.tar.age", encryption=Encryption(recipients=(str(identity.to_public()),)))
    with pytest.raises(BackupError, match="does not decrypt"):
        verify_archive(by_key.path, decryption=Decryption(identities=(str(x25519.Identity.generate()),)), keyring=None,
                       scratch_url=_url(source))
    opened = verify_archive(by_key.path, decryption=Decryption(identities=(str(identity),)), keyring=_ring(source),
                            scratch_url=_url(source))
    assert opened.report.ok and opened.encryption == "recipient"


def test_restore_refuses_a_database_with_data_unless_forced(source, tmp_path):
    made = _backup(source, tmp_path / "archive.tar")
    with pytest.raises(BackupError, match="not empty"):
        restore_archive(made.path, _url(source), decryption=Decryption(), keyring=_ring(source), key_file=None,
                        secret_keys=NO_KEYS, audit_keys=_audit_keys(source))
    with source.app_context():
        session = get_session()
        before = session.scalar(select(func.count()).select_from(AuditEvent))
        append_events(session, 5)  # written after the backup: a forced restore takes the database back
        session.commit()
    from govern.db import database
    database(source).engine.dispose()
    restored = restore_archive(made.path, _url(source), decryption=Decryption(), keyring=_ring(source), key_file=None,
                               secret_keys=NO_KEYS, force=True, audit_keys=_audit_keys(source))
    assert restored.report.ok
    assert facts_of(_url(source))["row_counts"]["audit_events"] == before + 1
    assert any("sealed under another SECRET_KEY" in note for note in restored.notes)


def test_restore_refuses_a_backup_of_a_newer_govern(source, tmp_path, target_url):
    made = _backup(source, tmp_path / "archive.tar")

    def future(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["migration"], manifest["govern_version"] = "0999_from_the_future", "9.0.0"
        return json.dumps(manifest).encode()

    _rewrite(made.path, tmp_path / "future.tar", future)
    with pytest.raises(BackupError, match="made by a newer govern \\(9.0.0\\)"):
        restore_archive(tmp_path / "future.tar", target_url, decryption=Decryption(), keyring=None, key_file=None,
                        secret_keys=NO_KEYS, audit_keys=_audit_keys(source))
    assert table_names(target_url) == []  # nothing was written


def test_a_backup_of_an_older_migration_is_upgraded_on_restore(scratch_database_url, target_url, tmp_path):
    upgrade(scratch_database_url, "0019_ux_home")
    made = make_backup(scratch_database_url, tmp_path / "old.tar", keyring=None, secret_key=None,
                       encryption=Encryption())
    assert made.manifest["migration"] == "0019_ux_home" and "backups" not in made.manifest["row_counts"]
    restored = restore_archive(made.path, target_url, decryption=Decryption(), keyring=None, key_file=None,
                               secret_keys=NO_KEYS)
    assert restored.upgraded_to == head_revision()
    assert facts_of(target_url)["migration"] == head_revision()
    assert "backups" in facts_of(target_url)["row_counts"]


def test_the_keys_come_back_from_an_archive_that_holds_them(source, target_url, tmp_path):
    made = _backup(source, tmp_path / "k.tar.age", encryption=Encryption(passphrase="pw for the keys"),
                   include_keys=True)
    key_file, secret_file = tmp_path / "new" / "vault.key", tmp_path / "new" / "secret_key"
    restored = restore_archive(made.path, target_url, decryption=Decryption(passphrase="pw for the keys"), keyring=None,
                               key_file=key_file, secret_keys=SecretKeys(keys=("another-key",), file=secret_file))
    assert restored.report.ok and restored.report.data_keys_unwrapped == 3
    assert restored.keyring_written == key_file and Keyring.load(key_file) == _ring(source)
    assert secret_file.read_text().strip() == TEST_SECRET_KEY and secret_file.stat().st_mode & 0o077 == 0


def test_a_backup_from_before_a_key_rotation_restores_while_the_old_kek_is_kept(source, target_url, tmp_path):
    """R12: after `keys rotate` and `rewrap` the old backup still needs the old KEK; once it is retired from the
    key file, restoring that backup fails cleanly, naming the KEK, and writes nothing."""
    old = _ring(source)
    made = _backup(source, tmp_path / "before-rotation.tar")
    rotated = rotate_keyring(old)  # keeps the old KEK until `keys retire`
    retired = Keyring(primary_id=rotated.primary_id, keys={rotated.primary_id: rotated.keys[rotated.primary_id]})

    with pytest.raises(BackupError, match=f"lacks KEK\\(s\\) the data needs: {old.primary_id} \\(3 data keys\\)"):
        restore_archive(made.path, target_url, decryption=Decryption(), keyring=retired, key_file=None,
                        secret_keys=NO_KEYS, audit_keys=_audit_keys(source))
    assert table_names(target_url) == []

    restored = restore_archive(made.path, target_url, decryption=Decryption(), keyring=rotated, key_file=None,
                               secret_keys=NO_KEYS, audit_keys=_audit_keys(source))
    assert restored.report.ok and restored.report.data_keys_unwrapped == 3


def test_a_keyed_chain_is_not_restored_without_its_audit_keys(source, target_url, tmp_path):
    made = _backup(source, tmp_path / "archive.tar")
    with pytest.raises(BackupError, match="needs the audit key file"):
        restore_archive(made.path, target_url, decryption=Decryption(), keyring=_ring(source), key_file=None,
                        secret_keys=NO_KEYS)
    with pytest.raises(BackupError, match="chained with audit key ak-7e570001, which the audit key file lacks"):
        restore_archive(made.path, target_url, decryption=Decryption(), keyring=_ring(source), key_file=None,
                        secret_keys=NO_KEYS, audit_keys=AuditKeys.generate())
    assert table_names(target_url) == []
