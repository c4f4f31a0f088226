"""The vault keyring file: key-encryption keys kept outside the database.

File format (JSON, mode 0600)::

    {"format": 1, "primary": "<kek id>", "keys": {"<kek id>": "<base64 32 bytes>"}}

The vault issue builds envelope encryption on top of it; the foundation creates the file.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

KEK_BYTES = 32
FILE_FORMAT = 1


class KeyringError(Exception):
    """The keyring is missing, unreadable or malformed."""


@dataclass
class Keyring:
    """One primary key-encryption key and the older ones still needed to unwrap data keys."""

    primary_id: str
    keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def generate(cls) -> Keyring:
        """Return a keyring with one fresh random KEK."""
        kek_id = new_kek_id()
        return cls(primary_id=kek_id, keys={kek_id: secrets.token_bytes(KEK_BYTES)})

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """Parse the keyring's JSON form, refusing anything malformed."""
        try:
            data = json.loads(text)
            if data.get("format") != FILE_FORMAT:
                raise KeyringError("unknown keyring format")
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            primary = str(data["primary"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"keyring is malformed: {type(exc).__name__}") from None
        if primary not in keys:
            raise KeyringError("keyring's primary key is not in the keyring")
        if any(len(key) != KEK_BYTES for key in keys.values()):
            raise KeyringError("every key-encryption key must be 32 bytes (AES-256)")
        return cls(primary_id=primary, keys=keys)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read the keyring file; refuse one that others can read."""
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            raise KeyringError(f"no keyring file at {path}") from None
        if mode & 0o077:
            raise KeyringError(f"keyring file {path} is readable by others (mode {mode:o}); chmod 600 it")
        return cls.from_json(path.read_text(encoding="utf-8"))

    def to_json(self) -> str:
        """Serialise for the key file."""
        return json.dumps(
            {
                "format": FILE_FORMAT,
                "primary": self.primary_id,
                "keys": {k: base64.b64encode(v).decode("ascii") for k, v in self.keys.items()},
            },
            indent=2,
        )

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600: temp file, fsync, rename."""
        write_private_file(path, self.to_json())


def new_kek_id() -> str:
    """Return a short random identifier for a KEK."""
    return "kek-" + secrets.token_hex(4)


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable only by the owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
