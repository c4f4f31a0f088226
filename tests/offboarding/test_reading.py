"""Lists and progress of offboardings."""

from __future__ import annotations

from govern.offboarding.permissions import may_view
from govern.offboarding.reading import blockers_of, list_offboardings, progress_of
from tests.offboarding.helpers import start_now


def test_list_and_progress(db, world):
    off = start_now(db, world)
    listing = list_offboardings(db, world.hr)
    assert listing.total == 1 and listing.items[0].id == off.id
    progress = progress_of(db, [off.id])[off.id]
    assert progress.total == 5 and progress.open == 5 and progress.percent == 0
    assert blockers_of(progress) == "3 for IT, 2 for the manager"
    # A manager sees the offboardings of their reports; a stranger manager does not.
    assert list_offboardings(db, world.max).total == 1
    assert list_offboardings(db, world.olga).total == 0
    assert may_view(db, world.max, off) and not may_view(db, world.olga, off)
