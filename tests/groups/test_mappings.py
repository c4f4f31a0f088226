"""Group mappings: joining a mapped group gives an app role or an account role, leaving takes back exactly
what the group gave (cause "group", with the rotations any revoke opens); sensitive mappings wait for a
second admin; the policy gate holds; hand-given access and departed people are left as they are."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.errors import ForbiddenError
from govern.events import access_lost
from govern.grants.models import Grant
from govern.groups import mappings
from govern.groups import services as groups
from govern.groups.models import GroupEffect
from govern.policies import services as policies
from tests.factories import make_account, make_grant, make_user, offboard, publish_policy


@pytest.fixture
def admins(db, kit):
    first = make_user(db, kit, roles=("admin",), full_name="Ada Admin")
    second = make_user(db, kit, roles=("admin",), full_name="Bo Admin")
    db.commit()
    return first.user, second.user


def _effect(db, person_id):
    db.expire_all()
    return db.scalar(select(GroupEffect).where(GroupEffect.person_id == person_id))


def test_an_app_role_follows_membership_and_a_hand_given_role_stays(db, kit, admins):
    ada, _ = admins
    ivy = make_user(db, kit, full_name="Ivy")
    kim = make_user(db, kit, roles=("it",), full_name="Kim")  # IT by hand
    group = groups.create_group(db, actor=None, display_name="IT staff", external_id=None)
    mapping = mappings.propose(db, actor=ada, group=group, app_role="it")
    assert mapping.status == "active"  # IT is not the admin role: no second admin
    groups.add_members(db, actor=None, group=group, person_ids=[ivy.user.person_id, kim.user.person_id])
    db.commit()
    db.refresh(ivy.user)
    assert "it" in ivy.user.roles
    assert _effect(db, kim.user.person_id).state == "held_by_hand"
    groups.remove_members(db, actor=None, group=group, person_ids=[ivy.user.person_id, kim.user.person_id])
    db.commit()
    db.expire_all()
    assert "it" not in ivy.user.roles and "it" in kim.user.roles
    actions = [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("group.access%")))]
    assert actions == ["group.access_given", "group.access_held", "group.access_taken"]


def test_the_admin_app_role_needs_a_second_admin(db, kit, admins):
    ada, bo = admins
    ivy = make_user(db, kit, full_name="Ivy")
    group = groups.create_group(db, actor=None, display_name="Admins", external_id=None,
                                member_ids=[ivy.user.person_id])
    mapping = mappings.propose(db, actor=ada, group=group, app_role="admin")
    db.commit()
    db.refresh(ivy.user)
    assert mapping.status == "pending" and "admin" not in ivy.user.roles
    with pytest.raises(ForbiddenError):
        mappings.approve(db, actor=ada, mapping=mapping)
    with pytest.raises(ForbiddenError):
        mappings.approve(db, actor=ivy.user, mapping=mapping)
    mappings.approve(db, actor=bo, mapping=mapping)
    db.commit()
    db.refresh(ivy.user)
    assert "admin" in ivy.user.roles and mapping.approved_by_id == bo.id


def test_an_account_role_waits_for_the_policy_then_leaving_revokes_with_cause_group(db, kit, admins):
    ada, bo = admins
    paula = make_user(db, kit, full_name="Paula")
    account = make_account(db, display_name="Acme on Instagram")
    version = publish_policy(db, "standard")
    group = groups.create_group(db, actor=None, display_name="Publishers", external_id="okta-pub")
    mapping = mappings.propose(db, actor=ada, group=group, account_id=account.id, role_code="publisher")
    assert mapping.status == "pending"  # publishers may reveal credentials: a second admin approves
    mappings.approve(db, actor=bo, mapping=mapping)
    groups.add_members(db, actor=None, group=group, person_ids=[paula.user.person_id])
    db.commit()
    assert _effect(db, paula.user.person_id).state == "waiting_policy"
    assert db.scalars(select(Grant).where(Grant.person_id == paula.user.person_id)).all() == []
    # She accepts the policy: the group's grant follows in the same transaction.
    policies.accept_version(db, actor=paula.user, version=version)
    db.commit()
    effect = _effect(db, paula.user.person_id)
    grant = db.get(Grant, effect.grant_id)
    assert effect.state == "granted" and grant.status == "active" and grant.role_code == "publisher"
    assert grant.approved_by_id == bo.id and grant.requested_by_id == ada.id
    # She leaves the group: the grant is revoked, cause group, and the usual rotations are asked for.
    lost = []
    receiver = lambda grant, **kw: lost.append((grant.id, kw["reason"]))  # noqa: E731
    access_lost.connect(receiver)
    try:
        groups.remove_members(db, actor=None, group=group, person_ids=[paula.user.person_id])
        db.commit()
    finally:
        access_lost.disconnect(receiver)
    db.refresh(grant)
    assert grant.status == "revoked" and grant.revoke_reason == "group"
    assert lost == [(grant.id, "exposure")]
    revoked = db.scalars(select(AuditEvent).where(AuditEvent.action == "grant.revoked")).one()
    assert json.loads(revoked.details_json)["cause"] == "group"
    assert _effect(db, paula.user.person_id) is None


def test_a_hand_given_grant_survives_leaving_and_departed_people_get_nothing(db, kit, admins):
    ada, _ = admins
    sam, gone = make_user(db, kit, full_name="Sam"), make_user(db, kit, full_name="Gone")
    account = make_account(db)
    by_hand = make_grant(db, sam.user.person, account, "analyst")
    offboard(db, gone.user.person, "departed")
    group = groups.create_group(db, actor=None, display_name="Analysts", external_id=None)
    mappings.propose(db, actor=ada, group=group, account_id=account.id, role_code="analyst")
    groups.add_members(db, actor=None, group=group, person_ids=[sam.user.person_id, gone.user.person_id])
    db.commit()
    assert _effect(db, sam.user.person_id).state == "held_by_hand"
    assert _effect(db, gone.user.person_id) is None
    assert db.scalars(select(Grant).where(Grant.person_id == gone.user.person_id)).all() == []
    groups.remove_members(db, actor=None, group=group, person_ids=None)
    db.commit()
    db.refresh(by_hand)
    assert by_hand.status == "active"


def test_deleting_the_group_or_the_mapping_takes_back_what_it_gave(db, kit, admins):
    ada, _ = admins
    ann, bob = make_user(db, kit, full_name="Ann"), make_user(db, kit, full_name="Bob")
    account = make_account(db)
    group = groups.create_group(db, actor=None, display_name="Moderators", external_id=None,
                                member_ids=[ann.user.person_id])
    mapping = mappings.propose(db, actor=ada, group=group, account_id=account.id, role_code="moderator")
    db.commit()
    ann_grant = db.get(Grant, _effect(db, ann.user.person_id).grant_id)
    mappings.remove(db, actor=ada, mapping=mapping)
    db.commit()
    db.refresh(ann_grant)
    assert ann_grant.status == "revoked"
    other = groups.create_group(db, actor=None, display_name="Mods 2", external_id=None, member_ids=[bob.user.person_id])
    mappings.propose(db, actor=ada, group=other, account_id=account.id, role_code="moderator")
    db.commit()
    bob_grant = db.get(Grant, _effect(db, bob.user.person_id).grant_id)
    groups.delete_group(db, actor=None, group=other)
    db.commit()
    db.refresh(bob_grant)
    assert bob_grant.status == "revoked" and db.scalars(select(GroupEffect)).all() == []
