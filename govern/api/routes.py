"""Every resource of /api/v1, registered on the one blueprint (the composition root imports this)."""

from __future__ import annotations

from govern.api import people  # noqa: F401 - registers its routes
from govern.api.blueprint import bp

__all__ = ["bp"]
