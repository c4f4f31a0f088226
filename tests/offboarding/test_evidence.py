"""The evidence of a finished offboarding."""

from __future__ import annotations

from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.offboarding.checklist import complete_item
from govern.offboarding.evidence import evidence
from govern.offboarding.reading import items_of
from tests.offboarding.helpers import start_now


def test_evidence_lists_items_people_notes_audit_ids_and_grants_before_after(db, world):
    off = start_now(db, world)
    items = items_of(db, off)
    removal = next(i for i in items if i.kind == "platform_removal")
    complete_item(db, actor=world.it, item=removal, note="removed")
    report = evidence(db, off)
    row = next(e for e in report.items if e.item.id == removal.id)
    assert row.done_by == world.it.email
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.id.in_(row.audit_ids))))
    assert {"grant.revoked", "offboarding.item_created", "grant.platform_removal_confirmed", "offboarding.item_done"} <= actions
    assert report.offboarding_audit_ids
    assert {g["status"] for g in report.grants_before} == {"active", "requested"}
    assert {g["status"] for g in report.grants_after} == {"revoked", "rejected"}
    data = report.as_json()
    assert data["offboarding"]["person"]["email"] == world.person.email and len(data["items"]) == len(items)
