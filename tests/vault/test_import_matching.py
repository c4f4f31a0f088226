"""Matching export entries to accounts: platform and handle from addresses, titles and logins, and why not."""

from __future__ import annotations

import pytest

from govern.vault import import_matching, import_parse
from tests.factories import make_account


@pytest.mark.parametrize(("url", "title", "login", "expected"), [
    ("https://www.instagram.com/acme/", "", "", ("instagram", "acme")),
    ("https://www.instagram.com/accounts/login/", "Instagram @acme", "someone@example.com", ("instagram", "acme")),
    ("https://instagram.com/accounts/login", "Instagram", "acme", ("instagram", "acme")),
    ("https://mobile.twitter.com/Acme_News", "", "", ("x", "acme_news")),
    ("twitter.com/login", "", "@acme_news", ("x", "acme_news")),
    ("https://www.linkedin.com/company/acme-corp/admin/", "", "", ("linkedin", "acme-corp")),
    ("https://www.tiktok.com/@acme.tok", "", "", ("tiktok", "acme.tok")),
    ("https://www.youtube.com/@AcmeTV/videos", "", "", ("youtube", "acmetv")),
    ("https://accounts.google.com/signin", "YouTube @AcmeTV", "brand@gmail.com", ("youtube", "acmetv")),
    ("https://www.threads.net/@acme", "", "", ("threads", "acme")),
    ("https://www.pinterest.co.uk/acmehome/", "", "", ("pinterest", "acmehome")),
    ("https://www.snapchat.com/add/acme", "", "", ("snapchat", "acme")),
    ("https://bsky.app/profile/acme.bsky.social", "", "", ("bluesky", "acme.bsky.social")),
    ("https://mastodon.social/@acme", "", "", ("mastodon", "acme@mastodon.social")),
    ("https://mastodon.social/auth/sign_in", "", "acme", ("mastodon", "acme@mastodon.social")),
    ("https://www.facebook.com/profile.php?id=100012345678", "", "", ("facebook", "100012345678")),
])
def test_entries_point_to_platform_and_handle(url, title, login, expected):
    entry = import_parse.Entry(line=2, title=title, url=url, login=login, password="x")
    match = import_matching.match_entry(import_matching.AccountIndex(), entry)
    assert (match.platform, match.handle) == expected, match.reason


@pytest.mark.parametrize(("url", "title", "login", "reason"), [
    ("https://www.tiktok.com/login", "TikTok", "social@acme.example", "without a handle"),
    ("https://www.instagram.com/accounts/login/", "", "+44 20 7946 0000", "without a handle"),
    ("https://intranet.example.com/login", "Intranet", "jdoe", "not a social media platform"),
    ("", "Wifi", "", "no address"),
    ("https://x.com/login", "", "not a valid handle!", "not a valid X handle"),
])
def test_entries_that_cannot_be_matched_say_why(url, title, login, reason):
    entry = import_parse.Entry(line=7, title=title, url=url, login=login, password="x")
    match = import_matching.match_entry(import_matching.AccountIndex(), entry)
    assert match.account is None and match.new_key is None and reason in match.reason


def test_existing_accounts_are_matched_by_handle_url_and_generic_reference(db, accounts):
    index = import_matching.build_index(db)
    for entry, expected in [
        (import_parse.Entry(line=2, url="https://www.instagram.com/accounts/login/", title="@ACME"), "instagram"),
        (import_parse.Entry(line=2, url="https://twitter.com/acme_news/status/1"), "x"),
        (import_parse.Entry(line=2, url="https://mastodon.social/@acme"), "mastodon"),
        (import_parse.Entry(line=2, is_generic=True, account_ref="@acme", platform="instagram"), "instagram"),
        (import_parse.Entry(line=2, is_generic=True, account_ref="acme.official"), "facebook"),
        (import_parse.Entry(line=2, is_generic=True, account_ref="https://x.com/acme_news"), "x"),
    ]:
        match = import_matching.match_entry(index, entry)
        assert match.account is not None and match.account.id == accounts[expected].id, (entry, match.reason)


def test_other_platform_accounts_match_on_their_address(db):
    forum = make_account(db, platform="other", handle="acme-forum", url="https://forum.example.org/u/acme")
    db.commit()
    match = import_matching.match_entry(import_matching.build_index(db), import_parse.Entry(line=2, url="https://forum.example.org/login"))
    assert match.account is not None and match.account.id == forum.id
