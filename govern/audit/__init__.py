"""Append-only, hash-chained audit trail. Imports no other area of govern."""

from govern.audit.services import Entry, lock_chain_head, record, record_many

__all__ = ["Entry", "lock_chain_head", "record", "record_many"]
