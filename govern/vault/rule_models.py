"""Per-platform password rules: what the generator may produce for each platform (admin-editable)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govern.accounts.models import PLATFORMS
from govern.db import Base, utcnow

CLASS_USAGES = ("required", "allowed", "excluded")


class PasswordRule(Base):
    """Lengths and character classes a platform accepts for its passwords."""

    __tablename__ = "password_rules"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    min_length: Mapped[int] = mapped_column(Integer)
    max_length: Mapped[int] = mapped_column(Integer)
    #: The length the generator uses (generous, within the platform's maximum).
    default_length: Mapped[int] = mapped_column(Integer)
    #: Each class is "required" (at least one such character), "allowed" or "excluded".
    lowercase: Mapped[str] = mapped_column(String(10))
    uppercase: Mapped[str] = mapped_column(String(10))
    digits: Mapped[str] = mapped_column(String(10))
    symbols: Mapped[str] = mapped_column(String(10))
    #: The symbols the platform is known to accept (a subset of ASCII punctuation).
    symbol_set: Mapped[str] = mapped_column(String(40))
    #: What else the platform demands, shown next to the generated password.
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint(f"platform IN {PLATFORMS!r}", name="platform"),
        CheckConstraint("min_length >= 4 AND min_length <= default_length AND default_length <= max_length AND max_length <= 256", name="lengths"),
        *(CheckConstraint(f"{c} IN {CLASS_USAGES!r}", name=c) for c in ("lowercase", "uppercase", "digits", "symbols")),
    )
