"""Password generation under a platform's rules, from the operating system's CSPRNG.

Every character is drawn uniformly from the whole allowed alphabet with ``secrets.choice``;
a candidate that misses a required character class is thrown away and drawn again
(rejection sampling). The result is therefore uniform over exactly the passwords that fit
the rules, and its entropy is log2 of their number, which ``entropy_bits`` computes exactly
(inclusion-exclusion over the required classes). Patching in one character of each class
instead would be biased and its entropy harder to state.
"""

from __future__ import annotations

import math
import secrets
import string
from dataclasses import dataclass
from itertools import combinations

LOWERCASE = string.ascii_lowercase
UPPERCASE = string.ascii_uppercase
DIGITS = string.digits
#: Every symbol a rule may allow: printable ASCII punctuation (no space, no letters, no digits).
ALL_SYMBOLS = string.punctuation
CLASS_NAMES = ("lowercase", "uppercase", "digits", "symbols")
#: How a rule treats one character class.
USAGES = ("required", "allowed", "excluded")
#: Hard bounds on any rule, whatever an admin enters.
MIN_LENGTH_FLOOR = 4
MAX_LENGTH_CEILING = 256
#: Drawing stops after this many rejected candidates; unreachable with valid rules (the
#: acceptance probability is never below ~1e-4 for the bounds above), it keeps a broken rule
#: from looping for ever.
MAX_ATTEMPTS = 100_000


class RuleError(ValueError):
    """The rule cannot produce a password; ``reasons`` maps field names to messages."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(reasons.values()))
        self.reasons = reasons


@dataclass(frozen=True)
class CharacterRules:
    """What a platform accepts: lengths and, per class, required / allowed / excluded."""

    min_length: int
    max_length: int
    default_length: int
    lowercase: str = "required"
    uppercase: str = "required"
    digits: str = "required"
    symbols: str = "required"
    symbol_set: str = "!#$%&*+-.:=?@^_~"

    def classes(self) -> dict[str, str]:
        """The characters of each class that is not excluded (symbols limited to ``symbol_set``)."""
        chars = {"lowercase": LOWERCASE, "uppercase": UPPERCASE, "digits": DIGITS, "symbols": self.symbol_set}
        return {name: chars[name] for name in CLASS_NAMES if getattr(self, name) != "excluded" and chars[name]}

    def required(self) -> list[str]:
        """The characters of each required class."""
        classes = self.classes()
        return [classes[name] for name in CLASS_NAMES if getattr(self, name) == "required" and name in classes]

    def alphabet(self) -> str:
        """Every character a generated password may contain."""
        return "".join(self.classes().values())


def check_rules(rules: CharacterRules) -> None:
    """Raise RuleError with every reason when ``rules`` is unusable."""
    reasons: dict[str, str] = {}
    for name in CLASS_NAMES:
        if getattr(rules, name) not in USAGES:
            reasons[name] = "Choose required, allowed or excluded."
    symbols = rules.symbol_set
    if any(ch not in ALL_SYMBOLS for ch in symbols):
        reasons["symbol_set"] = "Symbols must be ASCII punctuation characters (no letters, digits or spaces)."
    elif len(set(symbols)) != len(symbols):
        reasons["symbol_set"] = "List each symbol once."
    elif rules.symbols != "excluded" and not symbols:
        reasons["symbol_set"] = "List the symbols the platform accepts, or exclude symbols."
    if not reasons and not rules.alphabet():
        reasons["lowercase"] = "Allow at least one character class."
    if not MIN_LENGTH_FLOOR <= rules.min_length <= MAX_LENGTH_CEILING:
        reasons["min_length"] = f"The minimum length must be from {MIN_LENGTH_FLOOR} to {MAX_LENGTH_CEILING}."
    if not MIN_LENGTH_FLOOR <= rules.max_length <= MAX_LENGTH_CEILING:
        reasons["max_length"] = f"The maximum length must be from {MIN_LENGTH_FLOOR} to {MAX_LENGTH_CEILING}."
    elif rules.min_length > rules.max_length:
        reasons["max_length"] = "The maximum length must not be below the minimum length."
    if not rules.min_length <= rules.default_length <= rules.max_length:
        reasons["default_length"] = "The generated length must lie between the minimum and the maximum."
    if not reasons and len(rules.required()) > rules.min_length:
        reasons["min_length"] = "The minimum length is shorter than the number of required character classes."
    if reasons:
        raise RuleError(reasons)


def _fits(candidate: str, required: list[str]) -> bool:
    return all(any(ch in chars for ch in candidate) for chars in required)


def generate_password(rules: CharacterRules, length: int | None = None) -> str:
    """A uniformly random password of ``length`` (default: the rule's) that fits ``rules``."""
    check_rules(rules)
    length = rules.default_length if length is None else length
    if not rules.min_length <= length <= rules.max_length:
        raise RuleError({"length": f"The length must be from {rules.min_length} to {rules.max_length}."})
    alphabet = rules.alphabet()
    required = rules.required()
    for _ in range(MAX_ATTEMPTS):
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if _fits(candidate, required):
            return candidate
    raise RuleError({"length": "No password fitting these rules could be drawn; widen the rules."})  # pragma: no cover


def count_passwords(rules: CharacterRules, length: int) -> int:
    """How many distinct passwords of ``length`` fit ``rules`` (inclusion-exclusion)."""
    total_size = len(rules.alphabet())
    required_sizes = [len(chars) for chars in rules.required()]
    count = 0
    for k in range(len(required_sizes) + 1):
        for missing in combinations(required_sizes, k):
            count += (-1) ** k * (total_size - sum(missing)) ** length
    return count


def entropy_bits(rules: CharacterRules, length: int | None = None) -> float:
    """Bits of entropy of ``generate_password(rules, length)``: log2 of the passwords it may return."""
    count = count_passwords(rules, rules.default_length if length is None else length)
    return math.log2(count) if count > 0 else 0.0
