"""Random tokens and their one-way digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: 256 bits: session ids, setup tokens and other bearer secrets.
TOKEN_BYTES = 32

#: Recovery codes avoid look-alike characters (0/O, 1/I/L) so they survive being written down.
RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
RECOVERY_CODE_LENGTH = 12


def new_token() -> str:
    """Return a URL-safe random token with 256 bits of entropy."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a bearer token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def new_recovery_code() -> str:
    """Return a recovery code of 12 characters from a 31-symbol alphabet (about 59 bits)."""
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise_recovery_code(code: str) -> str:
    """Strip separators and spaces and upper-case a typed recovery code."""
    return "".join(ch for ch in code.upper() if ch.isalnum())
