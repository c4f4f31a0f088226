"""Every resource of /api/v1, registered on the one blueprint (the composition root imports this)."""

from __future__ import annotations

from govern.api import accounts, grants, offboardings, people, secrets, tokens  # noqa: F401 - register their routes
from govern.api.blueprint import bp

__all__ = ["bp"]
