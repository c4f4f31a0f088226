"""`govern demo seed`: in a real subprocess on a fresh database, and in-process for its rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import g
from sqlalchemy import func, select

from govern.accounts.models import Account, Role
from govern.accounts.services import account_stats
from govern.audit.models import AuditEvent
from govern.auth.models import SetupToken, User
from govern.db import make_engine
from govern.demo import seed as demo
from govern.directory.models import Person
from govern.errors import ConflictError
from govern.grants.models import Grant, PlatformRemoval
from govern.policies.services import current_version, has_accepted
from tests.factories import make_account, make_user

GOVERN = str(Path(sys.executable).parent / "govern")
SECRET_KEY = "demo-seed-test-secret-key-0123456789abcd"  # 40 characters
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")


def _govern(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
    env.update({"GOVERN_INSTANCE_PATH": str(tmp_path / "instance"), "GOVERN_DATABASE_URL": url,
                "GOVERN_SECRET_KEY": SECRET_KEY, "GOVERN_ARGON2_TIME_COST": "2", "GOVERN_ARGON2_MEMORY_KIB": "19456"})
    return subprocess.run([GOVERN, *args], capture_output=True, text=True, env=env, timeout=300)


def _counts(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            def count(model, *where):
                return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

            return {
                "people": count(Person),
                "departments": conn.execute(select(func.count(func.distinct(Person.department)))).scalar_one(),
                "accounts": count(Account),
                "platforms": conn.execute(select(func.count(func.distinct(Account.platform)))).scalar_one(),
                "grants": dict(conn.execute(select(Grant.status, func.count()).group_by(Grant.status)).all()),
                "time_bound": count(Grant, Grant.status == "active", Grant.expires_at.is_not(None)),
                "open_removals": count(PlatformRemoval, PlatformRemoval.confirmed_at.is_(None)),
                "users": count(User),
                "audit": count(AuditEvent),
            }
    finally:
        engine.dispose()


@pytest.mark.slow
def test_seed_a_fresh_instance_then_refuse_a_second_time(tmp_path, scratch_database_url):
    upgraded = _govern(tmp_path, scratch_database_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    seeded = _govern(tmp_path, scratch_database_url, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert "30 people in 5 departments" in seeded.stdout and "12 accounts" in seeded.stdout
    assert "1 open request" in seeded.stdout and "2 platform removals to confirm" in seeded.stdout
    assert "setup secrets are not shown" in seeded.stdout
    assert "govern users create-admin viktor.petrov@northpeak.example" in seeded.stdout  # no admin existed
    assert not TOKEN_LIKE.search(seeded.stdout + seeded.stderr), "a setup secret was printed"

    counts = _counts(scratch_database_url)
    assert counts["people"] == 30 and counts["departments"] == 5
    assert counts["accounts"] == 12 and counts["platforms"] == 9
    assert counts["grants"] == {"active": 44, "requested": 1, "revoked": 2}
    assert counts["time_bound"] == 3 and counts["open_removals"] == 2
    assert counts["users"] == 10

    verified = _govern(tmp_path, scratch_database_url, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit chain intact: {counts['audit']} events verified" in verified.stdout

    again = _govern(tmp_path, scratch_database_url, "demo", "seed")
    assert again.returncode == 1
    assert "only fills a fresh instance" in again.stderr
    assert _counts(scratch_database_url) == counts  # nothing was added


@pytest.mark.slow
def test_seed_uses_the_existing_admin_to_approve(tmp_path, scratch_database_url):
    assert _govern(tmp_path, scratch_database_url, "db", "upgrade").returncode == 0
    created = _govern(tmp_path, scratch_database_url, "users", "create-admin", "root@example.com")
    assert created.returncode == 0, created.stderr
    seeded = _govern(tmp_path, scratch_database_url, "demo", "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert "approved by root@example.com" in seeded.stdout and "create-admin" not in seeded.stdout
    engine = make_engine(scratch_database_url)
    try:
        with engine.connect() as conn:
            approvers = set(conn.execute(
                select(User.email).join(Grant, Grant.approved_by_id == User.id).where(Grant.role_code.in_(("owner", "admin")))
            ).scalars())
    finally:
        engine.dispose()
    assert approvers == {"root@example.com"}


# --- in-process: the seeded company keeps every rule -------------------------------------------------


@pytest.fixture
def seeded(app, db, kit):
    with app.app_context():
        g.audit_actor_label = "demo"
        summary = demo.seed_demo(db, kit)
        db.commit()
        yield summary


def test_every_grant_keeps_the_rules(db, seeded):
    roles = {role.code: role for role in db.scalars(select(Role))}
    grants = db.scalars(select(Grant).where(Grant.status == "active")).all()
    assert len(grants) == 44
    for grant in grants:
        role = roles[grant.role_code]
        if role.needs_second_approval:
            assert grant.approved_by_id is not None and grant.approved_by_id != grant.requested_by_id
        if role.may_reveal:
            version = current_version(db, role.policy_tier)
            assert version is not None and has_accepted(db, grant.person_id, version), (grant.person.full_name, role.code)
    accounts = db.scalars(select(Account)).all()
    stats = account_stats(db, list(accounts))
    for account in accounts:
        assert stats[account.id].holders <= account.max_credential_holders
        assert account.business_owner_id and account.crisis_contact_id
    # A few risks on purpose, so the account pages have something to show.
    flagged = {a.handle: stats[a.id].flags for a in accounts if stats[a.id].flags}
    assert flagged == {
        "northpeak@mastodon.social": ["few_admins"],
        "northpeak_help": ["policy_missing", "unconfirmed_removals"],
        "northpeaktv": ["unconfirmed_removals"],
    }


def test_people_have_managers_titles_and_ids(db, seeded):
    people = db.scalars(select(Person).where(Person.email.like("%@northpeak.example"))).all()
    assert len(people) == 30
    assert all(p.title and p.employee_id and p.department and p.start_date for p in people)
    assert sum(1 for p in people if p.manager_id is None) == 5  # the five heads of department


def test_everything_is_audited_and_no_secret_travels(db, seeded):
    actions = dict(db.execute(select(AuditEvent.action, func.count()).group_by(AuditEvent.action)).all())
    assert actions["person.created"] == 30 and actions["account.created"] == 12
    assert actions["users.created"] == 10 and actions["auth.setup_token.issued"] == 10
    assert actions["grant.approved"] == 23 and actions["grant.revoked"] == 2
    assert actions["policy.published"] == 2 and actions["demo.seeded"] == 1
    # Setup secrets exist (hashed) so an admin can replace them; the summary carries none.
    assert db.scalar(select(func.count()).select_from(SetupToken)) == 10
    assert not TOKEN_LIKE.search(repr(seeded))


def test_the_seed_refuses_an_instance_with_accounts(app, db, kit):
    make_account(db)
    db.commit()
    with app.app_context(), pytest.raises(ConflictError, match="only fills a fresh instance"):
        demo.seed_demo(db, kit)


def test_an_existing_admin_approves_and_keeps_being_the_only_admin(app, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    with app.app_context():
        summary = demo.seed_demo(db, kit)
    assert summary.approver == admin.email and summary.new_admin is None
    assert dict(summary.logins)["viktor.petrov@northpeak.example"] == ["it"]


def test_an_access_review_is_under_way(db, seeded):
    from govern.reviews.models import ReviewCampaign, ReviewItem
    from govern.reviews.services import open_items_for

    campaign = db.scalars(select(ReviewCampaign)).one()
    assert (campaign.scope_kind, campaign.scope_value, campaign.closed_at) == ("platform", "x", None)
    items = db.scalars(select(ReviewItem).where(ReviewItem.campaign_id == campaign.id)).all()
    on_x = db.scalars(select(Grant).join(Account).where(Account.platform == "x", Grant.status == "active")).all()
    assert {item.grant_id for item in items} == {grant.id for grant in on_x}
    kept = [item for item in items if item.decision is not None]
    assert [(item.decision, item.grant.person.full_name, item.grant.role_code) for item in kept] == [("keep", "Ethan Brooks", "admin")]
    assert seeded.review_items == len(items) and seeded.review_open == len(items) - 1
    # Owners review; their own grants go to their manager, and to an admin when they have none.
    for item in items:
        owner_id, holder = item.grant.account.business_owner_id, item.grant.person
        expected = owner_id if holder.id != owner_id else holder.manager_id
        assert item.reviewer_id == expected, (holder.full_name, item.grant.account.display_name)
    assert any(item.reviewer_id is None for item in items)  # for the admin, on the progress page
    claire = db.scalars(select(Person).where(Person.full_name == "Claire Dubois")).one()
    open_items, total = open_items_for(db, claire.id)
    assert total > 0 and all(item.reviewer_id == claire.id and item.decision is None for item, _ in open_items)


# --- with the vault unsealed: fake credentials, due and overdue rotations, an incident -------------------


@pytest.fixture
def seeded_with_vault(app, db, kit):
    from govern.crypto.keyring import Keyring

    keyring = Keyring.generate()
    with app.app_context():
        g.audit_actor_label = "demo"
        summary = demo.seed_demo(db, kit, keyring)
        db.commit()
        yield summary, keyring


def test_with_a_keyring_the_demo_has_fake_credentials_rotation_work_and_an_incident(db, seeded_with_vault):
    from govern.incidents.models import Incident
    from govern.rotation.models import RotationTask
    from govern.rotation.schedules import all_schedules
    from govern.vault import access, values, versions
    from govern.vault.models import Exposure, Secret

    summary, keyring = seeded_with_vault
    secrets = db.scalars(select(Secret)).all()
    assert summary.secrets == len(secrets) == 12 + 2 * 2 + 1
    # Every value is clearly fake, and none is stored or audited in clear.
    for secret in secrets:
        payload = access.decrypt_version(db, actor=None, keyring=keyring, version=versions.current_version(db, secret))
        shown = " ".join(str(v) for v in payload.values())
        if secret.kind == "totp":
            assert values.parse_totp(shown.split()[0]) and "DEMO" not in shown
        else:
            assert demo.FAKE in shown, secret.label
    assert not any(demo.FAKE in e.details_json for e in db.scalars(select(AuditEvent)))
    # Rotation: due and overdue credentials, scheduled and exposure tasks, one locked account.
    states = [r.state for r in all_schedules(db)]
    assert states.count("overdue") >= 3 and states.count("due") >= 2 and states.count("fine") >= 3
    reasons = set(db.scalars(select(RotationTask.reason).where(RotationTask.status == "open")))
    assert {"scheduled", "compromise"} <= reasons
    assert set(summary.rotation) == reasons
    incident = db.scalars(select(Incident)).one()
    assert incident.status == "open" and incident.account.handle == "northpeak" and incident.account.platform == "tiktok"
    assert summary.incident.endswith(f"incident {incident.id}")
    # IT saw each value it vaulted; the social media lead revealed the Instagram password once.
    lead = db.scalar(select(User.id).where(User.email == "tomas.alvarez@northpeak.example"))
    assert [e.reason for e in db.scalars(select(Exposure).where(Exposure.user_id == lead))] == [demo.REVEALS[0][2]]


def test_the_readme_says_how_to_try_the_demo_and_what_it_makes(db, seeded_with_vault):
    summary, _ = seeded_with_vault
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert "| `govern demo seed` |" in readme
    section = readme.split("### Try it with demo data", 1)[1].split("\n## ", 1)[0]
    assert "govern demo seed" in section and "Reset second factor" in section and "/setup" in section
    for claim in (f"{summary.people} people in {len(summary.departments)} departments",
                  f"{summary.accounts} official accounts on {len(summary.platforms)} platforms",
                  f"{sum(summary.grants.values())} grants", f"vaults {summary.secrets} credentials",
                  f"The demo's {len(summary.logins)} logins"):
        assert claim in " ".join(section.split()), claim
