"""Account validation per platform and risk flags."""

from __future__ import annotations

import pytest

from govern.accounts import services
from govern.accounts.services import AccountInput
from govern.errors import ConflictError, InvalidError
from tests.factories import accept_policy, make_account, make_grant, make_person, publish_policy


@pytest.mark.parametrize("platform,handle,url", [
    ("instagram", "@Acme.Official", ""),
    ("x", "acme_news", "https://twitter.com/acme_news"),
    ("linkedin", "acme-corp", "https://www.linkedin.com/company/acme-corp/"),
    ("tiktok", "acme", ""),
    ("youtube", "@AcmeTV", "https://www.youtube.com/@AcmeTV"),
    ("facebook", "acme.official", "https://www.facebook.com/acme.official"),
    ("bluesky", "acme.bsky.social", ""),
    ("mastodon", "acme@mastodon.social", ""),
    ("threads", "acme", ""),
    ("other", "acme", "https://community.example.com/acme"),
])
def test_valid_accounts_per_platform(platform, handle, url):
    values = services.validate_account(AccountInput(platform=platform, handle=handle, url=url, display_name="Acme"))
    assert values["handle"] == handle.lstrip("@").lower()
    assert values["url"].startswith("https://")


def test_a_missing_url_is_derived_from_the_handle():
    values = services.validate_account(AccountInput(platform="instagram", handle="@acme", display_name="Acme"))
    assert values["url"] == "https://www.instagram.com/acme"
    values = services.validate_account(AccountInput(platform="mastodon", handle="acme@mastodon.social", display_name="Acme"))
    assert values["url"] == "https://mastodon.social/@acme"


@pytest.mark.parametrize("platform,handle,url,field", [
    ("instagram", "acme!!", "", "handle"),
    ("x", "much_too_long_handle_for_x", "", "handle"),
    ("instagram", "acme", "https://www.facebook.com/acme", "url"),
    ("instagram", "acme", "http://www.instagram.com/acme", "url"),
    ("instagram", "acme", "javascript:alert(1)", "url"),
    ("linkedin", "a", "", "handle"),
    ("bluesky", "acme", "", "handle"),
    ("mastodon", "acme", "", "handle"),
    ("myspace", "acme", "", "platform"),
    ("instagram", "acme", "https://evilinstagram.com/acme", "url"),
])
def test_invalid_accounts_say_which_field_and_why(platform, handle, url, field):
    with pytest.raises(InvalidError) as info:
        services.validate_account(AccountInput(platform=platform, handle=handle, url=url, display_name="Acme"))
    assert field in info.value.reasons


def test_limits_are_checked():
    with pytest.raises(InvalidError) as info:
        services.validate_account(AccountInput(platform="x", handle="acme", display_name="Acme", min_admins=0, max_credential_holders=0))
    assert {"min_admins", "max_credential_holders"} <= set(info.value.reasons)


def test_the_same_handle_on_the_same_platform_is_refused(app, db, kit):
    from tests.factories import make_user

    it = make_user(db, kit, roles=("it",))
    with app.test_request_context():
        services.create_account(db, actor=it.user, data=AccountInput(platform="x", handle="acme", display_name="Acme"))
        with pytest.raises(ConflictError, match="registered already"):
            services.create_account(db, actor=it.user, data=AccountInput(platform="x", handle="@ACME", display_name="Acme 2"))
        services.create_account(db, actor=it.user, data=AccountInput(platform="instagram", handle="acme", display_name="Acme"))


def test_risk_flags(db):
    owner = make_person(db, status="leaving")
    account = make_account(db, business_owner_id=owner.id, min_admins=2, max_credential_holders=1)
    policy = publish_policy(db, "standard")
    holders = [make_person(db) for _ in range(2)]
    for person in holders:
        make_grant(db, person, account, "publisher")
    accept_policy(db, holders[0], policy)
    make_grant(db, make_person(db), account, "admin")
    flags = services.account_stats(db, [account])[account.id]
    assert flags.admins == 1 and flags.holders == 3 and flags.unaccepted == 1
    assert set(flags.flags) == {"few_admins", "too_many_holders", "inactive_contact", "policy_missing"}
    healthy = make_account(db, business_owner_id=make_person(db).id, min_admins=1)
    make_grant(db, make_person(db), healthy, "owner")
    assert services.account_stats(db, [healthy])[healthy.id].flags == []


def test_stats_name_the_grants_lacking_acceptance_only_when_asked(db):
    policy = publish_policy(db, "standard")
    careful, careless = make_person(db), make_person(db)
    accept_policy(db, careful, policy)
    account, other, clean = make_account(db), make_account(db), make_account(db)
    make_grant(db, careful, account, "publisher")
    lacking = {make_grant(db, careless, account, "analyst").id, make_grant(db, careless, account, "publisher").id}
    make_grant(db, careless, other, "analyst")
    make_grant(db, careful, clean, "analyst")
    make_grant(db, careless, clean, "analyst", status="revoked")
    named = services.account_stats(db, [account, other, clean], with_grant_ids=True)
    assert named[account.id].unaccepted_grant_ids == lacking and named[account.id].unaccepted == 2
    assert len(named[other.id].unaccepted_grant_ids) == 1 and named[clean.id].unaccepted_grant_ids == set()
    counted = services.account_stats(db, [account, other, clean])
    assert [counted[a.id].unaccepted for a in (account, other, clean)] == [2, 1, 0]
    assert all(not s.unaccepted_grant_ids for s in counted.values())
    assert counted[account.id].flags == named[account.id].flags


def test_admins_and_holders_are_counted_as_people_not_grants(db):
    account = make_account(db, business_owner_id=make_person(db).id, min_admins=2, max_credential_holders=1)
    publish_policy(db, "standard")
    both = make_person(db)
    make_grant(db, both, account, "owner")
    make_grant(db, both, account, "admin")
    stats = services.account_stats(db, [account])[account.id]
    # One person holding two admin roles is still one person the account depends on.
    assert (stats.admins, stats.holders, stats.active_grants) == (1, 1, 2)
    assert "few_admins" in stats.flags and "too_many_holders" not in stats.flags


@pytest.mark.parametrize("field", ["business_owner_id", "crisis_contact_id", "recovery_email_person_id",
                                   "recovery_phone_person_id"])
@pytest.mark.parametrize("status", ["leaving", "departed"])
def test_each_contact_who_is_not_active_raises_the_flag(db, field, status):
    fields = {name: make_person(db).id for name in ("business_owner_id", "crisis_contact_id",
                                                    "recovery_email_person_id", "recovery_phone_person_id")}
    account = make_account(db, min_admins=1, **fields)
    make_grant(db, make_person(db), account, "owner")
    assert services.account_stats(db, [account])[account.id].flags == []
    # The contact becomes someone who is leaving or has left (through an offboarding, as always).
    setattr(account, field, make_person(db, status=status).id)
    db.flush()
    assert services.account_stats(db, [account])[account.id].flags == ["inactive_contact"]


#: The platforms' own role systems the issue names, with names that must be offered for them.
PLATFORM_SYSTEMS = {
    ("facebook", "Meta business portfolio"): {"owner": "Full control", "publisher": "Partial access: Content",
                                             "moderator": "Partial access: Community activity, Messages",
                                             "advertiser": "Partial access: Ads", "analyst": "Partial access: Insights"},
    ("instagram", "Meta business portfolio"): {"admin": "Full control", "publisher": "Partial access: Content"},
    ("facebook", "Facebook Page (classic roles)"): {"admin": "Admin", "publisher": "Editor", "moderator": "Moderator",
                                                    "advertiser": "Advertiser", "analyst": "Analyst"},
    ("linkedin", "LinkedIn Page"): {"owner": "Super admin", "publisher": "Content admin", "analyst": "Analyst"},
    ("x", "X account access"): {"owner": "Owner", "admin": "Admin", "publisher": "Contributor"},
    ("youtube", "YouTube channel permissions"): {"owner": "Owner", "admin": "Manager", "publisher": "Editor",
                                                 "analyst": "Viewer"},
    ("youtube", "Google Brand Account"): {"owner": "Primary owner", "admin": "Owner", "publisher": "Manager",
                                          "moderator": "Communications manager"},
    ("tiktok", "TikTok Business Center"): {"owner": "Admin", "publisher": "Operator", "analyst": "Analyst"},
}


def test_the_catalogue_maps_every_role_to_each_platform_system(db):
    catalogue = {role.code: role for role in services.roles(db)}
    assert list(catalogue) == ["owner", "admin", "publisher", "moderator", "advertiser", "analyst"]
    assert {code for code, role in catalogue.items() if role.may_reveal} == {"owner", "admin", "publisher"}
    assert {code for code, role in catalogue.items() if role.needs_second_approval} == {"owner", "admin"}
    for (platform, system), expected in PLATFORM_SYSTEMS.items():
        names = {code: [n.platform_role for n in rows if n.system == system]
                 for code, rows in services.platform_role_names(db, platform).items()}
        # Every catalogue role has a name in every system, so granting always shows one.
        assert all(names.get(code) for code in catalogue), (platform, system, names)
        for code, name in expected.items():
            assert names[code] == [name], (platform, system, code)


@pytest.mark.parametrize("platform", ["facebook", "x", "mastodon"])
def test_roles_and_their_platform_names_in_one_query_match_the_two_lookups(db, platform):
    roles, names = services.roles_and_platform_names(db, platform)
    assert [r.code for r in roles] == [r.code for r in services.roles(db)]
    expected = services.platform_role_names(db, platform)
    assert {code: [n.id for n in rows] for code, rows in names.items()} == \
        {code: [n.id for n in rows] for code, rows in expected.items()}
