"""The audit trail's keys, kept outside the database next to the vault key file.

- HMAC-SHA256 keys chain new audit events: rewriting the chain consistently then needs a key,
  not only write access to the database. Keys rotate like the vault's KEKs: the newest is the
  primary, older ones stay to verify the events they chained.
- Ed25519 keys sign checkpoints of the chain head; a checkpoint outlives a truncation of the events.

File format (JSON, mode 0600)::

    {"format": 1, "hmac": {"primary": "ak-…", "keys": {"ak-…": "<base64 32 bytes>"}},
     "signing": {"primary": "sk-…", "keys": {"sk-…": "<base64 32-byte Ed25519 seed>"}}}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from govern.crypto.keyring import write_private_file

FILE_FORMAT = 1
KEY_BYTES = 32


class AuditKeyError(Exception):
    """The audit key file is missing, unreadable or malformed."""


class ChainKey(NamedTuple):
    """The key an event is chained with: its id (stored with the event) and the key itself."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:  # never a key in a traceback or a log line
        return f"ChainKey({self.key_id!r})"


def keyed_link(key: bytes, prev_hash: str, content: str) -> str:
    """HMAC-SHA256 over the previous event's hash and this event's canonical content."""
    return hmac.new(key, f"{prev_hash}\n{content}".encode(), hashlib.sha256).hexdigest()


@dataclass
class AuditKeys:
    """The chain's HMAC keys and the checkpoints' signing keys."""

    hmac_primary: str
    hmac_keys: dict[str, bytes] = field(repr=False)
    signing_primary: str
    signing_seeds: dict[str, bytes] = field(repr=False)

    @classmethod
    def generate(cls) -> AuditKeys:
        """Fresh random keys: one HMAC key and one signing key."""
        hmac_id, signing_id = _new_id("ak"), _new_id("sk")
        return cls(hmac_id, {hmac_id: secrets.token_bytes(KEY_BYTES)},
                   signing_id, {signing_id: secrets.token_bytes(KEY_BYTES)})

    @classmethod
    def from_json(cls, text: str) -> AuditKeys:
        """Parse the file's JSON form, refusing anything malformed."""
        try:
            data = json.loads(text)
            if data.get("format") != FILE_FORMAT:
                raise AuditKeyError("unknown audit key file format")
            hmac_keys = {str(k): base64.b64decode(v, validate=True) for k, v in data["hmac"]["keys"].items()}
            seeds = {str(k): base64.b64decode(v, validate=True) for k, v in data["signing"]["keys"].items()}
            keys = cls(str(data["hmac"]["primary"]), hmac_keys, str(data["signing"]["primary"]), seeds)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuditKeyError(f"the audit key file is malformed: {type(exc).__name__}") from None
        if keys.hmac_primary not in hmac_keys or keys.signing_primary not in seeds:
            raise AuditKeyError("the audit key file's primary key is not among its keys")
        if any(len(k) != KEY_BYTES for k in (*hmac_keys.values(), *seeds.values())):
            raise AuditKeyError("every audit key must be 32 bytes")
        return keys

    @classmethod
    def load(cls, path: Path) -> AuditKeys:
        """Read the key file; refuse one that others can read."""
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            raise AuditKeyError(f"no audit key file at {path}") from None
        if mode & 0o077:
            raise AuditKeyError(f"audit key file {path} is readable by others (mode {mode:o}); chmod 600 it")
        return cls.from_json(path.read_text(encoding="utf-8"))

    @classmethod
    def load_or_create(cls, path: Path) -> AuditKeys:
        """The key file at ``path``, created first if there is none.

        Several workers may start at once: the file is linked into place only if it does not exist
        yet, so all of them end up with the one that won, never with keys of their own.
        """
        if not path.exists():
            fresh = cls.generate()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            write_private_file(tmp, fresh.to_json())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return cls.load(path)

    def to_json(self) -> str:
        """Serialise for the key file."""
        def encode(keys: dict[str, bytes]) -> dict[str, str]:
            return {k: base64.b64encode(v).decode("ascii") for k, v in keys.items()}
        return json.dumps({"format": FILE_FORMAT,
                           "hmac": {"primary": self.hmac_primary, "keys": encode(self.hmac_keys)},
                           "signing": {"primary": self.signing_primary, "keys": encode(self.signing_seeds)}}, indent=2)

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600."""
        write_private_file(path, self.to_json())

    def chain_key(self) -> ChainKey:
        """The key new events are chained with."""
        return ChainKey(self.hmac_primary, self.hmac_keys[self.hmac_primary])

    def rotated(self) -> AuditKeys:
        """A copy with a new primary HMAC key and a new signing key; the old ones stay for verifying."""
        hmac_id, signing_id = _new_id("ak"), _new_id("sk")
        return AuditKeys(hmac_id, {**self.hmac_keys, hmac_id: secrets.token_bytes(KEY_BYTES)},
                         signing_id, {**self.signing_seeds, signing_id: secrets.token_bytes(KEY_BYTES)})

    def sign(self, message: bytes) -> tuple[str, str]:
        """Sign with the primary signing key: (its id, the base64 signature)."""
        private = Ed25519PrivateKey.from_private_bytes(self.signing_seeds[self.signing_primary])
        return self.signing_primary, base64.b64encode(private.sign(message)).decode("ascii")

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        """The public half of signing key ``key_id``, or None if the file lacks it."""
        seed = self.signing_seeds.get(key_id)
        return Ed25519PrivateKey.from_private_bytes(seed).public_key() if seed is not None else None

    def signature_holds(self, key_id: str, message: bytes, signature: str) -> bool:
        """Whether ``signature`` is key ``key_id``'s signature of ``message``."""
        public = self.public_key(key_id)
        if public is None:
            return False
        try:
            public.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
