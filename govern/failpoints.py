"""Failpoints: named places in a multi-step operation where a test can make it crash half-way.

Nothing is armed in production, so `hit` is a dictionary miss. Names are "<area>.<step>".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_ARMED: dict[str, Callable[..., None]] = {}


def hit(name: str, **info: object) -> None:
    """Call the hook armed at `name`, if any, with `info` (e.g. the batch number)."""
    hook = _ARMED.get(name)
    if hook is not None:
        hook(**info)


@contextmanager
def armed(name: str, hook: Callable[..., None]) -> Iterator[None]:
    """Arm `hook` at `name` for the block (tests only); it raises to simulate a crash there."""
    _ARMED[name] = hook
    try:
        yield
    finally:
        _ARMED.pop(name, None)
