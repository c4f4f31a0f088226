"""Lists for pages: exposure totals and pages, an account's secrets in one query."""

from __future__ import annotations

import pytest

from govern.vault.access import reveal
from govern.vault.listing import account_secrets, exposures, secret_rows
from govern.vault.versions import change_value, stage_version


@pytest.mark.parametrize("reveals", [0, 2, 3, 4, 7])
def test_exposure_totals_are_right_whether_or_not_the_first_page_holds_them_all(db, world, ring, ctx, make_secret, reveals):
    secret = make_secret()  # its creator is the first exposure
    for n in range(reveals):
        reveal(db, actor=world.publisher.user, keyring=ring, secret=secret, reason=f"post {n}", mfa_fresh=True)
    db.commit()
    expected = reveals + 1
    for per_page in (1, 3, 4, 50):
        pages = -(-expected // per_page)
        for page in range(1, pages + 2):
            found = exposures(db, secret_id=secret.id, page=page, per_page=per_page)
            assert found.total == expected, (per_page, page)
            assert len(found.items) == max(0, min(per_page, expected - (page - 1) * per_page))


def test_account_secrets_in_one_query_match_the_rows_read_secret_by_secret(db, world, ring, ctx, make_secret):
    plain = make_secret(label="plain")
    staged = make_secret(label="staged")
    stage_version(db, actor=world.it.user, keyring=ring, secret=staged, value="Next-pass-0042")
    changed = make_secret(label="changed")
    change_value(db, actor=world.it.user, keyring=ring, secret=changed, value="Changed-pass-0042")
    db.commit()
    rows = account_secrets(db, world.account.id)
    expected = secret_rows(db, sorted([plain, staged, changed], key=lambda s: s.label))
    assert [(r.secret.id, r.version, r.since, r.has_pending) for r in rows] == \
        [(r.secret.id, r.version, r.since, r.has_pending) for r in expected]
    assert {r.secret.label: (r.version, r.has_pending) for r in rows} == \
        {"changed": (2, False), "plain": (1, False), "staged": (1, True)}
