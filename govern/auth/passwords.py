"""Password hashing (argon2id) and the password rules of NIST SP 800-63B."""

from __future__ import annotations

import base64
import secrets
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 15
MAX_LENGTH = 256
#: How many of the most common passwords (by frequency in leaked corpora) are refused.
BLOCKLIST_SIZE = 10000
#: Words that make a password guessable for this product (NIST 800-63B context-specific words).
CONTEXT_WORDS = (
    "govern", "social", "socialmedia", "password", "passw0rd", "admin", "administrator",
    "facebook", "instagram", "twitter", "linkedin", "tiktok", "youtube", "threads",
    "pinterest", "snapchat", "bluesky", "mastodon", "letmein", "welcome", "qwerty",
)


def unmatchable_hash(time_cost: int, memory_kib: int) -> str:
    """An argon2id PHC string with these parameters that no password matches (a random digest).

    Verifying against it costs exactly what verifying a real hash of these parameters costs, and
    making it costs nothing: hashing a dummy password instead ran argon2 at every process start,
    which put its 64 MiB into the peak memory of every CLI command (``govern audit verify``: 149 MB
    of a 150 MB budget).
    """
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii").rstrip("=")

    return f"$argon2id$v=19$m={memory_kib},t={time_cost},p=1${b64(secrets.token_bytes(16))}${b64(secrets.token_bytes(32))}"


class PasswordHashing:
    """argon2id with p=1; parameters come from configuration and never fall below the ASVS floor."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
        )
        # Verified when an email is unknown, so that such a login costs the same time.
        self._dummy_hash = unmatchable_hash(time_cost, memory_kib)

    def hash(self, password: str) -> str:
        """Return the PHC string of ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password`` exactly as typed; a missing hash still costs one verification."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash used weaker parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


@lru_cache(maxsize=1)
def _blocklist() -> frozenset[str]:
    # zxcvbn ships frequency-ranked lists of leaked passwords; we use the top of it as the
    # "commonly used or compromised" list NIST asks verifiers to check against.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415 the leaked-password lists load only when the blocklist is first built

    words = FREQUENCY_LISTS["passwords"][:BLOCKLIST_SIZE]
    return frozenset(word.lower() for word in words)


def _squash(text: str) -> str:
    """Lower-case and drop everything but letters and digits, to compare with the blocklist."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def organisation_words(name: str | None) -> set[str]:
    """The company's name as context words: the whole name squashed, and each word of 4+ characters."""
    if not name:
        return set()
    whole = _squash(name)
    return {w for w in (_squash(part) for part in name.replace("-", " ").split()) if len(w) >= 4} | (
        {whole} if len(whole) >= 3 else set())


def password_problems(password: str, *, email: str | None = None, extra_words: tuple[str, ...] = (),
                      organisation: str | None = None) -> list[str]:
    """Return the reasons a new password is refused (empty when it is fine).

    Rules of NIST SP 800-63B: a minimum length, a generous maximum, no composition rules,
    and a check against common passwords and words specific to this context (the product,
    the platforms, the user's name and email, and the company's name, ``organisation``).
    """
    normalised = unicodedata.normalize("NFC", password)
    problems: list[str] = []
    if len(normalised) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters; a few unrelated words make a good password.")
    if len(normalised) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    squashed = _squash(normalised)
    blocklist = _blocklist()
    stripped = squashed.rstrip("0123456789")
    if squashed in blocklist or stripped in blocklist or len(set(squashed)) <= 2:
        problems.append("This password is one of the most commonly used ones; choose another.")
    else:
        context = ({w for w in CONTEXT_WORDS} | {_squash(w) for w in extra_words if len(_squash(w)) >= 4}
                   | organisation_words(organisation))
        if email:
            local = _squash(email.split("@", 1)[0])
            domain = _squash(email.split("@", 1)[-1].split(".", 1)[0])
            context |= {w for w in (local, domain) if len(w) >= 4}
        # A password that is only context words plus digits/symbols is guessable.
        remainder = squashed
        for word in sorted(context, key=len, reverse=True):
            remainder = remainder.replace(word, "")
        if len(remainder.strip("0123456789")) < 4:
            problems.append("This password is built from your name, the company or a platform name; choose another.")
    return problems
