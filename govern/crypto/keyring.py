"""The vault keyring file: key-encryption keys kept outside the database.

File format (JSON, mode 0600)::

    {"format": 1, "primary": "<kek id>", "keys": {"<kek id>": "<base64 32 bytes>"}}

The vault issue builds envelope encryption on top of it; the foundation creates the file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KEK_BYTES = 32
FILE_FORMAT = 1
#: A process that meets a KEK id it does not know (`govern keys rotate` and `rewrap` ran in another
#: process) reads its keyring's source again, at most once per id in this many seconds: an id found
#: nowhere (a tampered row, a lost key) must not make every request read the key file.
RELOAD_INTERVAL = 30.0
#: Ids remembered for that limit; beyond it the oldest attempts are forgotten.
MAX_RELOAD_IDS = 256

log = logging.getLogger(__name__)


class KeyringError(Exception):
    """The keyring is missing, unreadable or malformed."""


@dataclass
class Keyring:
    """One primary key-encryption key and the older ones still needed to unwrap data keys."""

    primary_id: str
    keys: dict[str, bytes] = field(repr=False)
    #: Reads the keyring again from where it came from (the key file); None: it never reloads.
    source: Callable[[], Keyring] | None = field(default=None, repr=False, compare=False)
    _reload_attempts: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def key(self, kek_id: str) -> bytes | None:
        """The KEK ``kek_id``, reloading the keyring once if it is unknown; None if it is still unknown."""
        found = self.keys.get(kek_id)
        if found is None and self.reload(kek_id):
            found = self.keys.get(kek_id)
        return found

    def reload(self, wanted: str) -> bool:
        """Read the source again because KEK ``wanted`` is missing; whether it is known afterwards.

        At most one read per id within RELOAD_INTERVAL; a source that fails to load leaves the
        keyring as it was.
        """
        if self.source is None:
            return False
        with self._reload_lock:
            if wanted in self.keys:  # another thread reloaded meanwhile
                return True
            now = time.monotonic()
            last = self._reload_attempts.get(wanted)
            if last is not None and now - last < RELOAD_INTERVAL:
                return False
            if len(self._reload_attempts) >= MAX_RELOAD_IDS:
                oldest = sorted(self._reload_attempts, key=self._reload_attempts.__getitem__)
                for stale in oldest[: MAX_RELOAD_IDS // 2]:
                    del self._reload_attempts[stale]
            self._reload_attempts[wanted] = now
            try:
                fresh = self.source()
            except (KeyringError, OSError) as exc:
                log.warning("keyring not reloaded (looking for key %s): %s", wanted, exc)
                return False
            # Keys are only added (the ones this process has win): a value being sealed in another
            # thread under the old primary still finds it; a key `keys retire` removed from the file
            # leaves memory at the next restart, as before. Keys first, then the primary, so a
            # reader never sees a primary that is not in the keys.
            self.keys = {**fresh.keys, **self.keys}
            self.primary_id = fresh.primary_id
            log.info("keyring reloaded from its source (looking for key %s): primary %s, %d key(s)",
                     wanted, self.primary_id, len(self.keys))
            return wanted in self.keys

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
