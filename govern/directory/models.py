"""Person: someone in the staff directory."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govern.db import Base, utcnow

PERSON_STATUSES = ("active", "leaving", "departed")
PERSON_SOURCES = ("manual", "csv", "scim")


class Person(Base):
    """A member of staff; a govern login (User) is tied to one."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    #: Stored lower-cased, so uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    department: Mapped[str | None] = mapped_column(String(120), index=True)
    title: Mapped[str | None] = mapped_column(String(120))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    start_date: Mapped[date | None]
    end_date: Mapped[date | None]
    source: Mapped[str] = mapped_column(String(16), default="manual")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    manager: Mapped[Person | None] = relationship(remote_side=[id])

    __table_args__ = (
        CheckConstraint(f"status IN {PERSON_STATUSES!r}", name="status"),
        CheckConstraint(f"source IN {PERSON_SOURCES!r}", name="source"),
        # The people list's order: a page is read from this index instead of sorting everyone.
        Index("ix_people_name_order", func.lower(full_name), "id"),
        # The access report's person and department sorts walk people in these orders.
        Index("ix_people_full_name_id", "full_name", "id"),
        Index("ix_people_department_full_name_id", "department", "full_name", "id"),
    )


class ImportMapping(Base):
    """How HR last mapped the columns of an export with a given set of columns (remembered for the
    next file with the same columns, in any order)."""

    __tablename__ = "import_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 of the file's column names (normalised as the import compares them, sorted).
    header_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: JSON object: column name (normalised) -> field, or "ignore".
    mapping_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
