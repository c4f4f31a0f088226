"""Password rules per platform (admin-editable) and generating a password for an account.

A generated value is returned to the caller only: it is never stored, logged or audited here.
It becomes a secret only when someone saves it through the vault's own forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.accounts.models import PLATFORM_LABELS, PLATFORMS, Account
from govern.audit.services import Actor
from govern.crypto.generator import CLASS_NAMES, CharacterRules, RuleError, check_rules, entropy_bits, generate_password
from govern.db import utcnow
from govern.errors import InvalidError, NotFoundError
from govern.vault.rule_models import PasswordRule

#: Below this many bits a rule still works, but its page says it is weak.
STRONG_BITS = 128
MAX_NOTES_LENGTH = 2000
RULE_FIELDS = ("min_length", "max_length", "default_length", *CLASS_NAMES, "symbol_set", "notes")


@dataclass
class RuleInput:
    """What the admin form says about a platform's rules."""

    min_length: int
    max_length: int
    default_length: int
    lowercase: str
    uppercase: str
    digits: str
    symbols: str
    symbol_set: str
    notes: str = ""


@dataclass(frozen=True)
class GeneratedPassword:
    """A fresh password for an account, with what the form shows next to it (never persisted)."""

    value: str
    platform: str
    length: int
    entropy_bits: float
    notes: str


def character_rules(rule: PasswordRule) -> CharacterRules:
    """The pure generator's view of a stored rule."""
    return CharacterRules(
        min_length=rule.min_length, max_length=rule.max_length, default_length=rule.default_length,
        lowercase=rule.lowercase, uppercase=rule.uppercase, digits=rule.digits, symbols=rule.symbols,
        symbol_set=rule.symbol_set,
    )


def rule_entropy(rule: PasswordRule) -> float:
    """Bits of entropy of a password generated at the rule's default length."""
    try:
        return entropy_bits(character_rules(rule))
    except RuleError:
        return 0.0


def list_rules(session: Session) -> list[PasswordRule]:
    """Every platform's rule, in the platforms' usual order."""
    rules = {r.platform: r for r in session.scalars(select(PasswordRule))}
    return [rules[p] for p in PLATFORMS if p in rules]


def get_rule(session: Session, platform: str) -> PasswordRule:
    """The rule of ``platform``, falling back to "other"; NotFoundError when neither exists."""
    rule = session.get(PasswordRule, platform) if platform in PLATFORMS else None
    rule = rule or session.get(PasswordRule, "other")
    if rule is None:
        raise NotFoundError("No password rules are set up; run the database migrations.")
    return rule


def validate_rule(data: RuleInput) -> dict[str, Any]:
    """Check a rule; return clean values or raise InvalidError with every reason."""
    symbol_set = "".join(data.symbol_set.split())
    values: dict[str, Any] = {
        "min_length": data.min_length, "max_length": data.max_length, "default_length": data.default_length,
        "lowercase": data.lowercase, "uppercase": data.uppercase, "digits": data.digits, "symbols": data.symbols,
        "symbol_set": symbol_set, "notes": data.notes.strip() or None,
    }
    reasons: dict[str, str] = {}
    for name in ("min_length", "max_length", "default_length"):
        if not isinstance(values[name], int) or isinstance(values[name], bool):
            reasons[name] = "Enter a whole number."
    if len(symbol_set) > 32:
        reasons["symbol_set"] = "At most 32 symbols."
    if len(data.notes) > MAX_NOTES_LENGTH:
        reasons["notes"] = f"At most {MAX_NOTES_LENGTH} characters."
    if not reasons:
        try:
            check_rules(CharacterRules(**{k: values[k] for k in values if k != "notes"}))
        except RuleError as exc:
            reasons.update(exc.reasons)
    if reasons:
        raise InvalidError(next(iter(reasons.values())), reasons)
    return values


def update_rule(session: Session, *, actor: Actor, rule: PasswordRule, data: RuleInput) -> list[str]:
    """Change a platform's rule; returns the fields that changed (audited with old and new values)."""
    values = validate_rule(data)
    changes = {k: {"from": getattr(rule, k), "to": v} for k, v in values.items() if getattr(rule, k) != v}
    if not changes:
        return []
    for key in changes:
        setattr(rule, key, values[key])
    rule.updated_at = utcnow()
    rule.updated_by_id = actor.id
    session.flush()
    audit.record(session, "vault.password_rule.updated", actor=actor, target_type="password_rule", target_id=rule.platform,
                 details={"platform": rule.platform, "changes": {k: v for k, v in changes.items() if k != "notes"},
                          "notes_changed": "notes" in changes})
    return sorted(changes)


def generate_for_account(session: Session, account: Account, length: int | None = None) -> GeneratedPassword:
    """A new password that fits the rules of ``account``'s platform (not stored, not audited)."""
    rule = get_rule(session, account.platform)
    rules = character_rules(rule)
    try:
        value = generate_password(rules, length)
    except RuleError as exc:
        raise InvalidError(str(exc), exc.reasons) from None
    used = len(value)
    return GeneratedPassword(value=value, platform=PLATFORM_LABELS.get(account.platform, account.platform), length=used,
                             entropy_bits=round(entropy_bits(rules, used), 1), notes=rule.notes or "")
