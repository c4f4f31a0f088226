"""TOTP (RFC 6238): app users' seeds, provisioning URIs and replay-safe verification; and the
seeds of the platforms' accounts kept in the vault, with their parameters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import pyotp

#: 160-bit seeds, as RFC 4226 recommends and the checklist requires.
SEED_BYTES = 20
PERIOD = 30
DIGITS = 6
#: Codes from the current step and the one before it are accepted (network and typing delay);
#: a code from the future is never accepted.
PAST_STEPS_ACCEPTED = 1


def new_seed() -> str:
    """Return a fresh base32 TOTP seed from the operating system's CSPRNG."""
    return pyotp.random_base32(length=32)  # 32 base32 chars = 160 bits


def provisioning_uri(seed: str, account_name: str, issuer: str) -> str:
    """Return the otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account_name, issuer_name=issuer
    )


def current_step(now: float | None = None) -> int:
    """Return the TOTP time step for ``now`` (seconds since the epoch)."""
    return int((time.time() if now is None else now) // PERIOD)


def matching_step(seed: str, code: str, now: float | None = None) -> int | None:
    """Return the time step whose code equals ``code``, or None.

    Only the current step and ``PAST_STEPS_ACCEPTED`` earlier ones are tried. The caller must
    still refuse a step at or below the last one it accepted (replay protection).
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    key = decode_seed(seed)
    step = current_step(now)
    for candidate in range(step, step - PAST_STEPS_ACCEPTED - 1, -1):
        if hmac.compare_digest(hotp(key, candidate), code):
            return candidate
    return None


def code_at(seed: str, now: float | None = None) -> str:
    """Return the code for ``now``; used by tests and the live code display."""
    return hotp(decode_seed(seed), current_step(now))


# --- seeds kept in the vault ----------------------------------------------------------------------
# Platforms issue seeds of many sizes and parameters. govern computes their codes itself (RFC 4226
# section 5.3 on top of the standard library's hmac) rather than through pyotp: pyotp 2.12 refuses
# seeds under 112 bits and periods over 120 s, a policy for seeds one issues, not for seeds a
# platform handed out; and a library's new policy must not change which stored seed shows a code.

#: The digests RFC 6238 names, by their otpauth:// spelling.
ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
#: What the platforms use and authenticator apps show (RFC 6238 and the Key URI Format).
VAULT_DIGITS = (6, 8)
VAULT_PERIODS = (30, 60)
#: RFC 4226 section 4: at least 128 bits, 160 recommended; platforms still issue 80-bit seeds
#: (16 base32 characters), so 80 is the floor. 512 bits is SHA-512's output (RFC 6238's SHA-512
#: test key is 64 bytes); a longer seed adds nothing and is more likely a pasting mistake.
MIN_SEED_BITS = 80
MAX_SEED_BITS = 512
BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

NOT_BASE32 = "The 2FA seed must be base32 (letters A-Z and digits 2-7) or an otpauth://totp/ link."


class TotpFormatError(ValueError):
    """A value is not a usable TOTP seed; the message is for the user and never quotes the value."""


@dataclass(frozen=True)
class TotpParams:
    """A TOTP seed (canonical base32: upper case, no spaces, no padding) and the platform's parameters."""

    seed: str
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"

    def key(self) -> bytes:
        """The seed's bytes."""
        return decode_seed(self.seed)

    def step(self, now: float | None = None) -> int:
        """The time step for ``now`` (seconds since the epoch)."""
        return int((time.time() if now is None else now) // self.period)

    def code(self, step: int) -> str:
        """The code of time step ``step``."""
        return hotp(self.key(), step, self.digits, self.algorithm)

    def code_at(self, now: float | None = None) -> str:
        """The code shown at ``now``."""
        return self.code(self.step(now))

    def matches(self, code: str, now: float | None = None, window: int = 1) -> bool:
        """Whether ``code`` is the code of a step within ``window`` steps of now (clock drift both ways)."""
        code = "".join(code.split())
        if len(code) != self.digits or not code.isascii() or not code.isdigit():
            return False
        key, step = self.key(), self.step(now)
        return any(hmac.compare_digest(hotp(key, s, self.digits, self.algorithm), code)
                   for s in range(step - window, step + window + 1))


def hotp(key: bytes, counter: int, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226 section 5.3: HMAC of the 8-byte counter, dynamic truncation, ``digits`` decimal digits."""
    mac = hmac.new(key, counter.to_bytes(8, "big"), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    number = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def canonical_seed(raw: str) -> str:
    """Upper case, without spaces, hyphens or padding; raise TotpFormatError unless 80 to 512 bits of base32."""
    seed = "".join(raw.split()).replace("-", "").upper().rstrip("=")
    if not seed or not set(seed) <= BASE32_ALPHABET:
        raise TotpFormatError(NOT_BASE32)
    bits = len(decode_seed(seed)) * 8
    if bits < MIN_SEED_BITS:
        raise TotpFormatError(f"The 2FA seed is too short: at least {MIN_SEED_BITS} bits (16 base32 characters).")
    if bits > MAX_SEED_BITS:
        raise TotpFormatError(f"The 2FA seed is too long: at most {MAX_SEED_BITS} bits (103 base32 characters).")
    return seed


def decode_seed(seed: str) -> bytes:
    """The bytes of a base32 seed without padding; TotpFormatError if it is not base32."""
    try:
        return base64.b32decode(seed + "=" * (-len(seed) % 8), casefold=True)
    except (binascii.Error, ValueError):
        raise TotpFormatError(NOT_BASE32) from None


def parse(value: str) -> TotpParams:
    """Read a bare base32 seed or an ``otpauth://totp/...`` URI; TotpFormatError for anything unusable."""
    text = (value or "").strip()
    if not text:
        raise TotpFormatError("Enter the 2FA seed or its otpauth://totp/ link.")
    if not text.lower().startswith("otpauth:"):
        return TotpParams(seed=canonical_seed(text))
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced "[" in the host part
        raise TotpFormatError("That otpauth:// link could not be read; check that it is complete.") from None
    if parts.netloc.lower() == "hotp":
        raise TotpFormatError("Only time-based (TOTP) otpauth:// links are supported, not HOTP counters.")
    if parts.netloc.lower() != "totp":
        raise TotpFormatError("That otpauth:// link is not a TOTP link (otpauth://totp/...).")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query: dict[str, str] = {}
    for name, item in pairs:
        name = name.lower()
        if name in query:
            raise TotpFormatError(f"That otpauth:// link gives {name} twice.")
        query[name] = item.strip()
    if query.get("encoder"):
        raise TotpFormatError("Only standard TOTP links are supported (not Steam Guard codes).")
    if not query.get("secret"):
        raise TotpFormatError("That otpauth:// link has no secret.")
    algorithm = (query.get("algorithm") or "SHA1").upper().replace("-", "")
    if algorithm not in ALGORITHMS:
        raise TotpFormatError("The 2FA algorithm must be SHA1, SHA256 or SHA512.")
    digits = _small_int(query.get("digits"), 6)
    if digits not in VAULT_DIGITS:
        raise TotpFormatError("2FA codes must have 6 or 8 digits.")
    period = _small_int(query.get("period"), 30)
    if period not in VAULT_PERIODS:
        raise TotpFormatError("The 2FA period must be 30 or 60 seconds.")
    return TotpParams(seed=canonical_seed(query["secret"]), digits=digits, period=period, algorithm=algorithm)


def _small_int(text: str | None, default: int) -> int:
    if not text:
        return default
    # Refuse "1e9", "٣٠" and 10,000-digit numbers before int() sees them.
    if len(text) > 3 or not text.isascii() or not text.isdigit():
        return -1
    return int(text)
