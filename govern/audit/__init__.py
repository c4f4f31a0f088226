"""Append-only, hash-chained audit trail. Imports no other area of govern."""

from govern.audit.services import record

__all__ = ["record"]
