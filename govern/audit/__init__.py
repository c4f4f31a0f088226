"""Append-only, hash-chained audit trail. Imports no other area of govern."""

from govern.audit.services import Entry, record, record_many

__all__ = ["Entry", "record", "record_many"]
