"""The dashboard's figures: compliance history and the age distribution."""

from __future__ import annotations

from govern.rotation.dashboard import age_distribution, compliance_history
from govern.rotation.schedules import schedules
from tests.rotation.conftest import age, vault_secret


def test_compliance_history_and_age_distribution(db, ring, world):
    fresh = vault_secret(db, ring, world, label="fresh")
    old = vault_secret(db, ring, world, label="old")
    age(db, old, 200)
    rows = schedules(db, [fresh, old])
    buckets = {b.label: b.count for b in age_distribution(rows)}
    assert buckets["0-25%"] == 1 and buckets["200%+"] == 1
    history = compliance_history(db, rows)
    assert len(history) == 12 and history[-1].total == 2 and history[-1].compliant == 1
    assert history[0].total == 0  # eleven months ago neither had a value yet... except the aged one
