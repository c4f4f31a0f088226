"""The backup archive: one tar holding manifest.json, the database snapshot and, only when the
operator asks, the vault key file; optionally encrypted with age (to a passphrase or to X25519
recipients), so `age -d` opens it too.

Reading never trusts the archive: only the known member names are read, each into a file of
govern's choosing (no path from the archive is used), and every member's size and SHA-256 must
match the manifest. A truncated or edited archive is refused with what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import secrets
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyrage
from pyrage import x25519

from govern.crypto.keyring import Keyring

FORMAT = 1
MANIFEST_MEMBER = "manifest.json"
KEYRING_MEMBER = "keyring.json"
#: govern's SECRET_KEY: it seals the authenticator (TOTP) seeds, so a restore without it loses them.
SECRET_KEY_MEMBER = "secret_key"  # noqa: S105 (a member name, not a key)
#: The audit trail's HMAC and signing keys: without them a restored keyed chain cannot be verified.
AUDIT_KEYS_MEMBER = "audit_keys.json"
DATA_MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
_AGE_MAGIC = (b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")
_COPY_CHUNK = 1024 * 1024
#: The label of the key derived from a KEK to authenticate a manifest (never the KEK itself).
_MANIFEST_MAC_LABEL = b"govern backup manifest v1"
_SECRET_KEY_CHECK_LABEL = b"govern backup secret key check v1"
#: age's passphrase mode has no streaming interface in pyrage: the archive is held in memory
#: twice while it is encrypted. Above this size use a recipient (which streams) instead.
MAX_PASSPHRASE_BYTES = 2 * 1024 * 1024 * 1024


class BackupError(Exception):
    """A backup, verification or restore that cannot go on; the message says why, in plain words."""


@dataclass(frozen=True)
class Encryption:
    """How to encrypt an archive: not at all, to a passphrase, or to age X25519 recipients."""

    passphrase: str | None = field(default=None, repr=False)
    recipients: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        """"none", "passphrase" or "recipient"."""
        if self.passphrase:
            return "passphrase"
        return "recipient" if self.recipients else "none"

    def check(self) -> None:
        """Refuse a recipient that is not an age X25519 public key, or both modes at once."""
        if self.passphrase and self.recipients:
            raise BackupError("encrypt to a passphrase or to recipients, not both")
        for recipient in self.recipients:
            try:
                x25519.Recipient.from_str(recipient)
            except pyrage.RecipientError:
                raise BackupError(f"not an age public key: {recipient!r} (it starts with age1)") from None


@dataclass(frozen=True)
class Decryption:
    """What can open an encrypted archive: its passphrase, or age identities (AGE-SECRET-KEY-1...)."""

    passphrase: str | None = field(default=None, repr=False)
    identities: tuple[str, ...] = field(default=(), repr=False)


def read_identities(path: Path) -> tuple[str, ...]:
    """The age identities in an identity file (as `age-keygen` writes it; comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BackupError(f"cannot read the identity file {path}: {exc.strerror}") from None
    found = tuple(line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-"))
    if not found:
        raise BackupError(f"no age identity (AGE-SECRET-KEY-...) in {path}")
    return found


@dataclass
class Opened:
    """An archive read into a work folder: its manifest and where its members now are."""

    manifest: dict[str, Any]
    data_path: Path
    keyring: Keyring | None
    encryption: str
    secret_key: str | None = field(default=None, repr=False)
    audit_keys_json: str | None = field(default=None, repr=False)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a manifest's MAC covers: sorted keys, no spaces, the MAC itself left out."""
    body = {key: value for key, value in manifest.items() if key != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def secret_key_check(secret_key: str) -> str:
    """A value that tells whether a SECRET_KEY is the one the backup's authenticator seeds need (not the key)."""
    return hmac.new(secret_key.encode(), _SECRET_KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:32]


def _mac_key(kek: bytes) -> bytes:
    return hmac.new(kek, _MANIFEST_MAC_LABEL, hashlib.sha256).digest()


def sign_manifest(manifest: dict[str, Any], keyring: Keyring | None) -> None:
    """Add a MAC under the primary KEK: with the keyring, verify can tell an edited manifest."""
    if keyring is None:
        return
    key = _mac_key(keyring.keys[keyring.primary_id])
    manifest["mac"] = {"kek_id": keyring.primary_id,
                       "hmac_sha256": hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()}


def manifest_mac_problem(manifest: Mapping[str, Any], keyring: Keyring) -> str | None:
    """Why the manifest's MAC does not hold under ``keyring`` (None when it holds or cannot be checked)."""
    mac = manifest.get("mac")
    if not isinstance(mac, dict):
        return None  # made while the vault was sealed: said as a note; the data's own checks still run
    kek = keyring.keys.get(str(mac.get("kek_id")))
    if kek is None:
        return None  # the missing KEK is reported with the data keys it wraps
    expected = hmac.new(_mac_key(kek), canonical(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(mac.get("hmac_sha256", ""))):
        return "the manifest was edited (its MAC does not match under the keyring's key)"
    return None


# --- writing -------------------------------------------------------------------------------------


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o600
    with path.open("rb") as handle:
        tar.addfile(info, handle)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def write_archive(dest: Path, manifest: dict[str, Any], data_path: Path, *, keyring: Keyring | None,
                  secret_key: str | None, include_keys: bool, encryption: Encryption,
                  audit_keys_json: str | None = None) -> tuple[int, str]:
    """Write the archive to ``dest`` atomically (a .partial file, fsync, rename); its size and SHA-256.

    ``manifest`` gets the members' sizes and checksums, then its MAC under the keyring's primary
    KEK, before it is written as the first member.
    """
    encryption.check()
    if include_keys and encryption.mode == "none":
        raise BackupError("the keys go into an archive only when the archive is encrypted "
                          "(--passphrase-file or --recipient): a plain archive would hold the keys next to the data")
    keys = {}
    if include_keys and keyring is not None:
        keys[KEYRING_MEMBER] = keyring.to_json().encode()
    if include_keys and secret_key:
        keys[SECRET_KEY_MEMBER] = secret_key.encode()
    if include_keys and audit_keys_json:
        keys[AUDIT_KEYS_MEMBER] = audit_keys_json.encode()
    member = DATA_MEMBERS[manifest["database"]]
    manifest["members"] = {member: {"bytes": data_path.stat().st_size, "sha256": sha256_of(data_path)}}
    for name, raw in keys.items():
        manifest["members"][name] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    manifest["keyring_included"] = KEYRING_MEMBER in keys
    manifest["secret_key_included"] = SECRET_KEY_MEMBER in keys
    if secret_key:
        manifest["secret_key_check"] = secret_key_check(secret_key)
    sign_manifest(manifest, keyring)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            if encryption.mode == "none":
                _write_tar(out, manifest, member, data_path, keys)
            else:
                _write_encrypted(out, manifest, member, data_path, keys, encryption, partial)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest.stat().st_size, sha256_of(dest)


def _write_tar(out: BinaryIO, manifest: dict[str, Any], member: str, data_path: Path, keys: Mapping[str, bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST_MEMBER, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _add_file(tar, member, data_path)
        for name, raw in keys.items():
            _add_bytes(tar, name, raw)


def _write_encrypted(out: BinaryIO, manifest: dict[str, Any], member: str, data_path: Path,
                     keys: Mapping[str, bytes], encryption: Encryption, partial: Path) -> None:
    plain = partial.with_name(partial.name + ".tar")
    try:
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as tar_out:
            _write_tar(tar_out, manifest, member, data_path, keys)
        if encryption.passphrase:
            if plain.stat().st_size > MAX_PASSPHRASE_BYTES:
                raise BackupError("the database is too large for passphrase encryption (held in memory): "
                                  "encrypt to an age recipient instead (--recipient)")
            out.write(pyrage.passphrase.encrypt(plain.read_bytes(), encryption.passphrase))
        else:
            recipients = [x25519.Recipient.from_str(r) for r in encryption.recipients]
            with plain.open("rb") as source:
                pyrage.encrypt_io(source, out, recipients)
    finally:
        plain.unlink(missing_ok=True)


# --- reading -------------------------------------------------------------------------------------


def is_encrypted(path: Path) -> bool:
    """Whether the file starts like an age file."""
    with path.open("rb") as handle:
        head = handle.read(64)
    return any(head.startswith(magic) for magic in _AGE_MAGIC)


def _decrypt(path: Path, decryption: Decryption, workdir: Path) -> tuple[Path, str]:
    target = workdir / "archive.tar"
    try:
        if decryption.identities:
            identities = [x25519.Identity.from_str(i) for i in decryption.identities]
            with path.open("rb") as source, target.open("wb") as out:
                pyrage.decrypt_io(source, out, identities)
            return target, "recipient"
        if decryption.passphrase:
            target.write_bytes(pyrage.passphrase.decrypt(path.read_bytes(), decryption.passphrase))
            return target, "passphrase"
    except pyrage.IdentityError:
        raise BackupError("the identity is not an age secret key (AGE-SECRET-KEY-1...)") from None
    except pyrage.DecryptError:
        raise BackupError("the archive does not decrypt: wrong passphrase or identity, "
                          "or the archive is truncated or was altered") from None
    raise BackupError("the archive is encrypted: give its passphrase (--passphrase-file) or an age identity (--identity)")


def open_archive(path: Path, decryption: Decryption, workdir: Path) -> Opened:
    """Read the archive into ``workdir``, checking every member against the manifest."""
    if not path.is_file():
        raise BackupError(f"no backup archive at {path}")
    tar_path, encryption = (_decrypt(path, decryption, workdir) if is_encrypted(path) else (path, "none"))
    manifest: dict[str, Any] | None = None
    found: dict[str, Path] = {}
    try:
        with tarfile.open(tar_path, mode="r:") as tar:
            for info in tar:
                manifest = _read_member(tar, info, manifest, found, workdir)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"the archive is truncated or damaged ({exc})") from None
    finally:
        if tar_path != path:
            tar_path.unlink(missing_ok=True)
    if manifest is None:
        raise BackupError("the archive has no manifest.json: it is not a govern backup")
    return _checked(manifest, found, encryption)


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, manifest: dict[str, Any] | None,
                 found: dict[str, Path], workdir: Path) -> dict[str, Any] | None:
    known = {MANIFEST_MEMBER, KEYRING_MEMBER, SECRET_KEY_MEMBER, AUDIT_KEYS_MEMBER, *DATA_MEMBERS.values()}
    if info.name not in known or not info.isfile() or info.name in found:
        raise BackupError(f"the archive holds an unexpected member {info.name!r}: it is not a govern backup")
    source = tar.extractfile(info)
    assert source is not None  # a regular file
    if info.name == MANIFEST_MEMBER:
        if info.size > 1024 * 1024:
            raise BackupError("the manifest is implausibly large: it is not a govern backup")
        try:
            loaded = json.loads(source.read())
        except ValueError:
            raise BackupError("the manifest is not valid JSON: the archive was altered") from None
        if not isinstance(loaded, dict) or loaded.get("format") != FORMAT:
            raise BackupError("the manifest is not a govern backup manifest of a format this version reads")
        found[info.name] = workdir / "manifest.json"
        return loaded
    target = workdir / info.name  # a fixed, known name: nothing from the archive chooses the path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            out.write(chunk)
    found[info.name] = target
    return manifest


def _checked(manifest: dict[str, Any], found: Mapping[str, Path], encryption: str) -> Opened:
    database = manifest.get("database")
    if database not in DATA_MEMBERS:
        raise BackupError(f"the manifest names an unknown database kind {database!r}")
    members = manifest.get("members")
    if not isinstance(members, dict) or DATA_MEMBERS[database] not in members:
        raise BackupError("the manifest lists no database member: the archive was altered")
    for name, expected in members.items():
        path = found.get(name)
        if path is None:
            raise BackupError(f"the archive lacks {name}, which its manifest lists: it is truncated or was altered")
        if path.stat().st_size != expected.get("bytes") or sha256_of(path) != expected.get("sha256"):
            raise BackupError(f"{name} does not match its checksum in the manifest: the archive was altered or damaged")
    extra = set(found) - set(members) - {MANIFEST_MEMBER}
    if extra:
        raise BackupError(f"the archive holds members its manifest does not list: {', '.join(sorted(extra))}")
    keyring = None
    if KEYRING_MEMBER in found:
        keyring = Keyring.from_json(found[KEYRING_MEMBER].read_text(encoding="utf-8"))
    secret_key = found[SECRET_KEY_MEMBER].read_text(encoding="utf-8").strip() if SECRET_KEY_MEMBER in found else None
    audit_keys = found[AUDIT_KEYS_MEMBER].read_text(encoding="utf-8") if AUDIT_KEYS_MEMBER in found else None
    return Opened(manifest=manifest, data_path=found[DATA_MEMBERS[database]], keyring=keyring, encryption=encryption,
                  secret_key=secret_key, audit_keys_json=audit_keys)


def member_names() -> Sequence[str]:
    """Every name an archive may hold (for the README and tests)."""
    return (MANIFEST_MEMBER, *DATA_MEMBERS.values(), KEYRING_MEMBER, SECRET_KEY_MEMBER, AUDIT_KEYS_MEMBER)
