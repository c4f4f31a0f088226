"""The one place where event subscribers are connected (see govern.events).

create_app calls ``connect_all``, so every entry point (web, SCIM, CLI commands, the jobs runner,
the tests' app) reacts to the same events. Connecting is idempotent, and strong (``weak=False``):
a subscriber must not vanish when nothing else holds a reference to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blinker import Signal

from govern.events import access_lost, policy_accepted
from govern.groups.mappings import on_policy_accepted
from govern.rotation.exposure import on_access_lost

#: Every (event, subscriber) pair. A new reaction is one line here.
SUBSCRIBERS: tuple[tuple[Signal, Callable[..., Any]], ...] = (
    (access_lost, on_access_lost),
    (policy_accepted, on_policy_accepted),
)


def connect_all() -> None:
    """Connect every subscriber to its event; connecting twice changes nothing."""
    for signal, receiver in SUBSCRIBERS:
        signal.connect(receiver, weak=False)
