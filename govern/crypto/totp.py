"""TOTP (RFC 6238) for app users: seeds, provisioning URIs and replay-safe verification."""

from __future__ import annotations

import hmac
import time

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
    totp = pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD)
    step = current_step(now)
    for candidate in range(step, step - PAST_STEPS_ACCEPTED - 1, -1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def code_at(seed: str, now: float | None = None) -> str:
    """Return the code for ``now``; used by tests and the live code display."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=PERIOD).generate_otp(current_step(now))
