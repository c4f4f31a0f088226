"""Who holds an app role: active_users_with_roles and count_active_admins."""

from __future__ import annotations

from govern.auth.users import active_users_with_roles, count_active_admins, deactivate_user
from tests.factories import make_user


def test_active_users_with_roles_lists_each_active_holder_once(db, kit):
    both = make_user(db, kit, roles=("it", "admin"), email="both@acme.example")
    it = make_user(db, kit, roles=("it",), email="it@acme.example")
    gone = make_user(db, kit, roles=("it",), email="gone@acme.example")
    deactivate_user(db, actor=None, user=gone.user)
    make_user(db, kit, roles=("hr",), email="hr@acme.example")
    assert active_users_with_roles(db, ["it", "admin"]) == [both.user, it.user]
    assert active_users_with_roles(db, ["admin"]) == [both.user]


def test_count_active_admins_leaves_out_the_one_excluded(db, kit):
    first = make_user(db, kit, roles=("admin",), email="first@acme.example")
    second = make_user(db, kit, roles=("admin",), email="second@acme.example")
    assert count_active_admins(db) == 2
    assert count_active_admins(db, excluding=first.user) == 1
    deactivate_user(db, actor=None, user=second.user)
    assert count_active_admins(db, excluding=first.user) == 0
