"""Every resource of /api/v1, registered on the one blueprint (the composition root imports this)."""

from __future__ import annotations

from govern.api import (  # noqa: F401 - register their routes
    accounts,
    audit_events,
    drift,
    exposures,
    grants,
    offboardings,
    people,
    policies,
    reviews,
    rotation,
    secrets,
    tokens,
)
from govern.api.blueprint import bp

__all__ = ["bp"]
