"""Offboarding with rotation, tokens and escalation: the issue's proof for secrets the leaver knew."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.audit.services import verify_chain
from govern.auth.models import WebSession
from govern.db import utcnow
from govern.errors import ConflictError
from govern.grants.models import Grant
from govern.jobs.steps import STEPS
from govern.notifications.models import Notification, OutboxMessage
from govern.offboarding import checklist as offboarding_checklist
from govern.offboarding import reading as offboarding_reading
from govern.offboarding.checklist import choose_successor, complete_item, sync_offboarding
from govern.offboarding.escalation import escalate_overdue
from govern.offboarding.evidence import evidence
from govern.offboarding.models import Offboarding, OffboardingItem
from govern.offboarding.reading import items_of, open_offboarding_of
from govern.offboarding.scheduling import cancel_offboarding, schedule_offboarding
from govern.offboarding.start import generate_items, start_due_offboardings, start_offboarding
from govern.rotation.checklist import checklist
from govern.rotation.models import RotationTask
from govern.rotation.tasks import cancel_task, request_rotation
from govern.rotation.versions import confirm_task, stage_task
from govern.scim import services as scim
from govern.vault.access import reveal
from govern.vault.versions import create_secret
from tests.factories import csrf_token, make_account, make_grant, make_user
from tests.offboarding.helpers import SETTINGS, count_rows, make_secrets
from tests.vault.conftest import keyring, ring  # noqa: F401 - fixtures

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def app_overrides(keyring: Any) -> dict[str, Any]:  # noqa: F811
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def secrets(db, world, ring):  # noqa: F811
    """Passwords on all three of Lea's accounts; Lea revealed the Instagram one."""
    return make_secrets(db, world, ring)


@pytest.fixture
def page_secrets(app, db, company, ring):  # noqa: F811
    """The same, for page tests (no request context left pushed)."""
    with app.test_request_context():
        return make_secrets(db, company, ring)


def _rotation_items(db, off):
    return [i for i in items_of(db, off) if i.kind == "rotation"]


def _confirm(db, ring, it, task):  # noqa: F811
    stage_task(db, actor=it, keyring=ring, task=task, generate=True)
    confirm_task(db, actor=it, task=task, ticked=[c.key for c in checklist(task)])
    offboarding_checklist.close_linked_items(db, ref_type="rotation_task", ref_id=task.id, actor=it)  # as the confirm view does


def _snapshot(db, off_id):
    db.expire_all()
    return (
        sorted((g.id, g.status) for g in db.scalars(select(Grant))),
        sorted((t.id, t.secret_id, t.status, t.reasons_json, t.people_json) for t in db.scalars(select(RotationTask))),
        sorted((i.key, i.status, i.ref_id) for i in db.scalars(select(OffboardingItem).where(OffboardingItem.offboarding_id == off_id))),
        count_rows(db, AuditEvent), count_rows(db, Notification), count_rows(db, OutboxMessage),
    )


def test_the_issue_proof_three_accounts_one_revealed_secret(db, world, secrets):
    db.add(WebSession(id="s" * 64, public_id="p" * 32, user_id=world.lea.id, authenticated_at=utcnow()))
    db.commit()
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    # No session, no active grant.
    assert count_rows(db, WebSession, WebSession.user_id == world.lea.id) == 0
    assert count_rows(db, Grant, Grant.person_id == world.person.id, Grant.status == "active") == 0
    items = items_of(db, off)
    # One platform-removal item per revoked grant.
    revoked = db.scalars(select(Grant).where(Grant.person_id == world.person.id, Grant.status == "revoked")).all()
    removals = [i for i in items if i.kind == "platform_removal"]
    assert len(revoked) == 3 and len(removals) == 3
    # A rotation item for every secret she could see (not the X one), the revealed one first.
    rot = _rotation_items(db, off)
    assert [i.key for i in rot] == [f"rotation:{secrets['insta'].id}", f"rotation:{secrets['li'].id}",
                                    f"rotation:{secrets['insta_backup'].id}"]
    assert [i.revealed for i in rot] == [True, False, False]
    assert all(i.owner == "it" and i.ref_type == "rotation_task" for i in rot)
    assert "saw version 1" in rot[0].instructions and "could have revealed it as Admin" in rot[1].instructions
    # Each item tracks the secret's one live task, opened by the revocation with reason offboarding: no duplicates.
    tasks = {t.secret_id: t for t in db.scalars(select(RotationTask))}
    assert len(tasks) == 3 == count_rows(db, RotationTask)
    assert secrets["x"].id not in tasks
    assert {i.ref_id for i in rot} == {t.id for t in tasks.values()}
    assert all(t.reason == "offboarding" and t.status == "open" and t.is_urgent for t in tasks.values())
    # Rotations come right after the successors, before the removals; successors are requested.
    kinds = [i.kind for i in items]
    assert kinds.index("rotation") > kinds.index("successor") and kinds.index("rotation") < kinds.index("platform_removal")
    assert {i.account_id for i in items if i.kind == "successor"} == {world.linkedin.id, world.insta.id}
    # Running it twice changes nothing.
    before = _snapshot(db, off.id)
    assert start_offboarding(db, off) is False
    assert generate_items(db, off) == 0
    assert start_due_offboardings(db, utcnow() + timedelta(days=2))["started"] == 0
    assert _snapshot(db, off.id) == before


def test_revealed_mode_asks_only_for_what_she_saw(app, db, world, secrets):
    app.config["ROTATION_EXPOSURE_MODE"] = "revealed"
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    rot = _rotation_items(db, off)
    assert [i.key for i in rot] == [f"rotation:{secrets['insta'].id}"] and rot[0].revealed
    assert count_rows(db, RotationTask) == 1


def test_a_secret_seen_through_an_earlier_grant_whose_task_was_cancelled_gets_a_new_task(db, world, secrets, ring):  # noqa: F811
    # Her Instagram grant ended earlier; IT cancelled the exposure rotation it opened.
    from govern.grants import services as grants

    grants.revoke_grant(db, actor=world.admin, grant=world.grants.insta, reason="role change", check_permission=False)
    db.commit()
    for task in db.scalars(select(RotationTask)).all():
        cancel_task(db, actor=world.users["it"].user, task=task, reason="not needed")
    db.commit()
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    rot = _rotation_items(db, off)
    assert {i.key for i in rot} == {f"rotation:{s.id}" for s in (secrets["insta"], secrets["li"], secrets["insta_backup"])}
    live = {t.id: t for t in db.scalars(select(RotationTask).where(RotationTask.status == "open"))}
    assert {i.ref_id for i in rot} <= set(live) and len(live) == 3
    assert {live[i.ref_id].reason for i in rot} == {"offboarding"}


def test_confirming_the_rotation_task_closes_the_item_and_completes_the_offboarding(db, world, secrets, ring):  # noqa: F811
    it = world.users["it"].user
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    first = _rotation_items(db, off)[0]
    with pytest.raises(ConflictError, match="closes by itself"):
        complete_item(db, actor=world.admin, item=first, note="done")
    db.rollback()
    task = db.get(RotationTask, first.ref_id)
    _confirm(db, ring, it, task)
    db.commit()
    db.refresh(first)
    assert first.status == "done" and first.done_by_id == it.id
    assert first.evidence_note == f"Rotation task #{task.id} confirmed: version 2 is current."
    # Everything else is closed by its owners; the last rotation closes the offboarding.
    for item in items_of(db, off):
        if item.status == "open" and item.kind != "rotation":
            if item.kind == "successor":
                choose_successor(db, actor=world.max, offboarding=off, account_id=item.account_id,
                                          successor_id=world.sam.id)
            complete_item(db, actor=world.admin, item=item, note="removed on the platform")
    for item in _rotation_items(db, off):
        if item.status == "open":
            _confirm(db, ring, it, db.get(RotationTask, item.ref_id))
    db.commit()
    db.refresh(off)
    assert off.status == "completed" and world.person.status == "departed"
    report = evidence(db, off).as_json()
    assert [r["version_confirmed"] for r in report["rotations"]] == [2, 2, 2]
    assert [r["revealed"] for r in report["rotations"]] == [True, False, False]
    assert {r["rotation_task_id"] for r in report["rotations"]} == {t.id for t in db.scalars(select(RotationTask))}
    assert all(r["confirmed_by"] == it.email for r in report["rotations"])
    [exposure] = report["exposures"]
    assert exposure["secret_id"] == secrets["insta"].id and exposure["version"] == 1
    assert exposure["version_status_now"] != "current"
    by_id = {e["item_id"]: e for e in report["items"]}
    task_events = set(db.scalars(select(AuditEvent.id).where(AuditEvent.target_type == "rotation_task",
                                                              AuditEvent.target_id == str(task.id))))
    assert task_events and task_events <= set(by_id[first.id]["audit_event_ids"])


def test_confirming_through_the_page_closes_the_leavers_item(app, db, company, page_secrets, ring):  # noqa: F811
    # The confirm view closes the linked item itself (rotation sits below offboarding on the ladder).
    world = company
    it = world.users["it"]
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    first = _rotation_items(db, off)[0]
    task = db.get(RotationTask, first.ref_id)
    stage_task(db, actor=it.user, keyring=ring, task=task, generate=True)
    db.commit()
    client = _client(app, db, world, "it")
    page = f"/rotation/tasks/{task.id}"
    response = client.post(f"{page}/confirm", data={"csrf_token": csrf_token(client, page),
                                                    "checklist": [c.key for c in checklist(task)]})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(RotationTask, task.id).status == "done"
    assert db.get(OffboardingItem, first.id).status == "done"


def test_a_task_confirmed_while_the_hook_missed_it_is_reconciled_by_the_job(db, world, secrets, ring, monkeypatch):  # noqa: F811
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    first = _rotation_items(db, off)[0]
    monkeypatch.setattr(offboarding_checklist, "close_linked_items", lambda *a, **k: 0)
    _confirm(db, ring, world.users["it"].user, db.get(RotationTask, first.ref_id))
    db.commit()
    db.refresh(first)
    assert first.status == "open"
    assert start_due_offboardings(db)["synced"] == 1
    db.refresh(first)
    assert first.status == "done" and "confirmed: version 2" in first.evidence_note
    assert start_due_offboardings(db)["synced"] == 0


def test_a_cancelled_task_item_follows_the_new_task(db, world, secrets, ring):  # noqa: F811
    it = world.users["it"].user
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    first = _rotation_items(db, off)[0]
    old = db.get(RotationTask, first.ref_id)
    cancel_task(db, actor=it, task=old, reason="wrong secret")
    new = request_rotation(db, actor=it, secret=secrets["insta"], note="redo").task
    db.commit()
    assert sync_offboarding(db, off) == 0
    db.refresh(first)
    assert first.ref_id == new.id and first.status == "open"
    _confirm(db, ring, it, new)
    db.commit()
    db.refresh(first)
    assert first.status == "done"


def test_scim_tokens_she_created_get_revoke_items_that_close_when_revoked(db, world, secrets):
    row, _ = scim.create_token(db, actor=world.admin, name="Okta test")
    row.created_by_id = world.lea.id  # she created it while she was an admin
    db.commit()
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1),
                                        settings=SETTINGS)
    db.commit()
    assert [t.id for t in offboarding_reading.preview(db, off).tokens] == [row.id]
    start_offboarding(db, off)
    db.commit()
    [item] = [i for i in items_of(db, off) if i.kind == "token_revoke"]
    assert item.owner == "it" and item.ref_type == "scim_token" and item.ref_id == row.id and "Okta test" in item.title
    with pytest.raises(ConflictError):
        complete_item(db, actor=world.admin, item=item, note="x")
    db.rollback()
    scim.revoke_token(db, actor=world.admin, token=row)
    db.commit()
    db.refresh(item)
    assert item.status == "done" and item.done_by_id == world.admin.id and "revoked" in item.evidence_note


def test_the_preview_lists_the_secrets_that_will_need_rotation(db, world, secrets):
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1),
                                        settings=SETTINGS)
    db.commit()
    preview = offboarding_reading.preview(db, off)
    assert [(e.secret.id, e.revealed) for e in preview.rotations] == [
        (secrets["insta"].id, True), (secrets["li"].id, False), (secrets["insta_backup"].id, False)]
    assert count_rows(db, RotationTask) == 0  # nothing is opened before the day


def test_overdue_items_escalate_once_per_period_to_owners_and_hr(db, world, secrets):
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    assert escalate_overdue(db, settings=SETTINGS, now=off.due_at - timedelta(minutes=1))["emails"] == 0
    late = off.due_at + timedelta(hours=1)
    counts = escalate_overdue(db, settings=SETTINGS, now=late)
    db.commit()
    items = items_of(db, off)
    assert counts["overdue_items"] == len(items)
    mails = db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "offboarding.escalation")).all()
    by_item: dict[int, set[str]] = {}
    for mail in mails:
        item_id = int(mail.dedupe_key.split(":")[1])
        by_item.setdefault(item_id, set()).add(mail.to_address)
    hr, it, max_ = world.hr.email, world.users["it"].user.email, world.max.email
    for item in items:
        expected = {hr, it} if item.owner == "it" else {hr, max_}
        assert by_item[item.id] == expected, item.title
    assert counts["emails"] == len(mails) == sum(len(v) for v in by_item.values())
    assert count_rows(db, Notification, Notification.kind == "offboarding.escalation") == len(mails)
    assert "Lea Leaver" in mails[0].subject and "Old-Password" not in " ".join(m.body_text for m in mails)
    assert count_rows(db, AuditEvent, AuditEvent.action == "offboarding.escalated") == 1
    # The same period: nothing more; the next period: once more.
    assert escalate_overdue(db, settings=SETTINGS, now=late + timedelta(hours=5))["emails"] == 0
    again = escalate_overdue(db, settings=SETTINGS, now=late + timedelta(hours=SETTINGS.escalation_hours))
    assert again["emails"] == len(mails)


def test_the_jobs_steps_start_and_escalate_before_email_is_sent():
    names = [s.name for s in STEPS]
    assert names.index("offboarding.start_due") < names.index("offboarding.escalate") < names.index("email.send")


def test_scim_deactivation_gives_the_same_offboarding_with_rotation_items(app, db, world, secrets):
    _, token = scim.create_token(db, actor=world.admin, name="Entra")
    db.commit()
    client = app.test_client()
    response = client.patch(f"/scim/v2/Users/{world.person.id}", json={
        "schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    db.expire_all()
    off = db.scalar(select(Offboarding).where(Offboarding.person_id == world.person.id))
    assert off.origin == "scim" and off.status == "in_progress"
    rot = _rotation_items(db, off)
    assert [i.key for i in rot][0] == f"rotation:{secrets['insta'].id}" and rot[0].revealed and len(rot) == 3
    assert len([i for i in items_of(db, off) if i.kind == "platform_removal"]) == 3
    assert count_rows(db, RotationTask) == 3


# --- pages ---------------------------------------------------------------------------------------------


def _client(app, db, world, who):
    from tests.factories import login

    client = app.test_client()
    login(client, db, world.users[who])
    return client


def test_the_pages_show_the_preview_the_rotation_items_and_the_evidence(app, db, company, page_secrets):
    world, secrets = company, page_secrets
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1),
                                        settings=SETTINGS)
    db.commit()
    hr = _client(app, db, world, "hr")
    page = hr.get(f"/offboarding/{off.id}").get_data(as_text=True)
    assert "Secrets that will need rotation (3)" in page and "Instagram login" in page and "revealed" in page
    assert "Old-Password" not in page
    start_offboarding(db, off)
    db.commit()
    it = _client(app, db, world, "it")
    page = it.get(f"/offboarding/{off.id}").get_data(as_text=True)
    first = _rotation_items(db, off)[0]
    assert f"/rotation/tasks/{first.ref_id}" in page and 'badge badge-bad">revealed' in page
    # No "Mark done" form on an item that closes by itself.
    assert f'action="/offboarding/items/{first.id}/done"' not in page
    report = hr.get(f"/offboarding/{off.id}/evidence.json").get_json()
    assert report["exposures"][0]["secret_id"] == secrets["insta"].id
    assert [r["task_status"] for r in report["rotations"]] == ["open", "open", "open"]
    text = hr.get(f"/offboarding/{off.id}/evidence.csv").get_data(as_text=True)
    assert "exposures,exposure_id" in text and "rotations,item_id" in text and "Instagram login" in text
    html = hr.get(f"/offboarding/{off.id}/evidence").get_data(as_text=True)
    assert 'id="exposures"' in html and 'id="rotations"' in html and "Old-Password" not in html


def test_the_person_page_links_the_offboardings_without_a_query_per_row(app, db, company, connection):
    world = company
    from tests.directory.helpers import count_statements

    hr = _client(app, db, world, "hr")
    first = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=1),
                                          settings=SETTINGS)
    db.commit()
    page = hr.get(f"/people/{world.person.id}").get_data(as_text=True)
    assert f'href="/offboarding/{first.id}"' in page and "scheduled" in page
    few = count_statements(connection, hr, f"/people/{world.person.id}")
    for _ in range(3):
        cancel_offboarding(db, actor=world.hr, offboarding=open_offboarding_of(db, world.person.id),
                                    reason="moved")
        schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=utcnow() + timedelta(days=2),
                                      settings=SETTINGS)
        db.commit()
    page = hr.get(f"/people/{world.person.id}").get_data(as_text=True)
    assert page.count('href="/offboarding/') >= 4 and "cancelled" in page
    assert count_statements(connection, hr, f"/people/{world.person.id}") == few


# --- one notice per offboarding, and a start whose statements do not grow with the leaver's access ---------


def test_it_gets_one_notice_for_the_whole_offboarding_not_one_per_account(app, db, world, secrets, kit):
    second_it = make_user(db, kit, roles=("it",), full_name="Ines IT").user
    db.commit()
    off = schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)
    db.commit()
    it_users = {world.users["it"].user.id: world.users["it"].user, second_it.id: second_it}
    mails = db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "rotation.needed")).all()
    # Three secrets on two accounts: one email per IT user, naming the offboarding, not one per account.
    assert sorted(m.to_address for m in mails) == sorted(u.email for u in it_users.values())
    keys = {tuple(m.dedupe_key.rsplit(":", 1)) for m in mails}
    assert {(prefix.rsplit(":", 1)[0], int(uid)) for prefix, uid in keys} == {(f"rotation.offboarding:{off.id}", uid)
                                                                                for uid in it_users}
    for mail in mails:
        assert "3 secret(s) on 2 account(s)" in mail.subject and "Lea Leaver" in mail.subject
        assert "Acme Instagram, Acme LinkedIn" in mail.body_text and "Acme News" not in mail.body_text
        assert f"/offboarding/{off.id}" in mail.body_text and "Old-Password" not in mail.body_text
    notes = db.scalars(select(Notification).where(Notification.kind == "rotation.needed")).all()
    assert sorted(n.user_id for n in notes) == sorted(it_users)
    assert {n.title for n in notes} == {mails[0].subject.removeprefix("[govern] ")}
    assert {n.link for n in notes} == {f"/offboarding/{off.id}"}
    # Every grant revocation and every task opened is audited, in the chain.
    revoked = db.scalars(select(Grant.id).where(Grant.person_id == world.person.id, Grant.status == "revoked")).all()
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.revoked")).all()
    assert sorted(int(e.target_id) for e in events) == sorted(revoked) and len(revoked) == 3
    assert [json.loads(e.details_json)["last_admin_override"] for e in events
            if int(e.target_id) == world.grants.linkedin.id] == [True]
    tasks = db.scalars(select(RotationTask.id)).all()
    opened = db.scalars(select(AuditEvent.target_id).where(AuditEvent.action == "rotation.task_opened")).all()
    assert sorted(map(int, opened)) == sorted(tasks)
    assert verify_chain(db).ok


def _leaver_with_accounts(db, kit, world, ring, name, n):  # noqa: F811
    """A user who publishes on ``n`` accounts (admin on every fourth), two secrets each, and revealed
    one secret on every third account."""
    leaver = make_user(db, kit, roles=("manager",), full_name=name)
    person = leaver.user.person
    person.manager_id = world.max.person_id
    it = world.users["it"].user
    for k in range(n):
        account = make_account(db, display_name=f"{name} {k:03d}", handle=f"{name.split()[0].lower()}{k:03d}")
        make_grant(db, person, account, "publisher" if k % 4 else "admin")
        made = [create_secret(db, actor=it, keyring=ring, account=account, kind="password", label=f"Login {j}",
                                    value="Old-Password-123!") for j in range(2)]
        db.commit()
        if k % 3 == 0:
            reveal(db, actor=leaver.user, keyring=ring, secret=made[0], reason="posting", mfa_fresh=True)
            db.commit()
    return person


def _statements_of_the_start(db, connection, world, person):
    from sqlalchemy import event

    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    count_rows(db, Grant)  # the test harness opens its savepoint here, not inside the counted window
    event.listen(connection, "before_cursor_execute", count)
    try:
        off = schedule_offboarding(db, actor=world.hr, person=person, effective_at=None, settings=SETTINGS)
        db.commit()
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert off.status == "in_progress"
    assert count_rows(db, Grant, Grant.person_id == person.id, Grant.status == "active") == 0
    return [" ".join(s.split()[:3]) for s in seen], _rotation_items(db, off)


def test_the_start_runs_the_same_statements_for_4_or_40_grants(db, kit, world, ring):  # noqa: F811
    connection = db.connection()
    few_person = _leaver_with_accounts(db, kit, world, ring, "Ann Few", 4)
    many_person = _leaver_with_accounts(db, kit, world, ring, "Ben Many", 40)
    few, few_items = _statements_of_the_start(db, connection, world, few_person)
    many, many_items = _statements_of_the_start(db, connection, world, many_person)
    # Every secret gets its item and task; the work is the same handful of statements either way.
    assert (len(few_items), len(many_items)) == (8, 80)
    assert count_rows(db, RotationTask, RotationTask.status == "open") == 88
    assert len(many) == len(few), (few, many)
