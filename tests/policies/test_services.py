"""Policy rules: safe rendering, versioning per tier, acceptance, what each person must accept, the report."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from govern.audit.models import AuditEvent
from govern.errors import ConflictError, InvalidError
from govern.policies import services
from govern.policies.models import Acknowledgement
from tests.factories import accept_policy, make_account, make_grant, make_person, make_user, publish_policy


@pytest.fixture
def admin(app, db, kit):
    who = make_user(db, kit, roles=("admin",))
    with app.test_request_context():
        yield who.user


def _events(db, action):
    return db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


# --- rendering -----------------------------------------------------------------------------------------


def test_markdown_is_rendered():
    html = services.render_markdown("# Rules\n\n**Be kind.** See [the guide](https://example.com/guide).\n\n- one\n- two"
                                    "\n\n## Details\n\n###### Small print")
    # Headings move one level down: the page's title is its only <h1>.
    assert "<h2>Rules</h2>" in html and "<h3>Details</h3>" in html and "<h6>Small print</h6>" in html
    assert "<h1>" not in html and "<strong>Be kind.</strong>" in html
    assert '<a href="https://example.com/guide">the guide</a>' in html and "<li>one</li>" in html


@pytest.mark.parametrize("text", [
    "<script>alert(1)</script>",
    "Hello <img src=x onerror=alert(1)> there",
    '<a href="javascript:alert(1)">x</a>',
    '<div onclick="alert(1)">block</div>',
    "<iframe src=https://evil.example></iframe>",
    "# <svg onload=alert(1)>",
])
def test_raw_html_is_escaped(text):
    html = services.render_markdown(text)
    assert not any(tag in html for tag in ("<script", "<img", "<a ", "<div", "<iframe", "<svg"))
    assert "&lt;" in html


@pytest.mark.parametrize("text", [
    """[x](https://acme.example 'a" onmouseover="alert(1)')""",
    """![x](https://acme.example/a.png 'a" onerror="alert(1)')""",
])
def test_attributes_cannot_be_broken_out_of(text):
    html = services.render_markdown(text)
    assert "title=" in html  # a real link or image, with the quote escaped inside its title
    assert 'onmouseover="' not in html and 'onerror="' not in html and "&quot;" in html


@pytest.mark.parametrize("text", [
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "<javascript:alert(1)>",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "![x](javascript:alert(1))",
])
def test_dangerous_links_are_refused(text):
    html = services.render_markdown(text)
    assert "href" not in html.lower() and 'src="javascript' not in html.lower()


# --- publishing ----------------------------------------------------------------------------------------


def test_versions_increase_per_tier(db, admin):
    s1 = services.publish_version(db, actor=admin, tier="standard", title="Policy", body_markdown="v1")
    p1 = services.publish_version(db, actor=admin, tier="privileged", title="Owners", body_markdown="v1")
    s2 = services.publish_version(db, actor=admin, tier="standard", title="Policy", body_markdown="v2")
    assert (s1.version, p1.version, s2.version) == (1, 1, 2)
    assert services.current_version(db, "standard").id == s2.id
    assert services.current_version(db, "privileged").id == p1.id
    assert s2.published_by_id == admin.id
    events = _events(db, "policy.published")
    assert [(e.target_id, e.actor_user_id) for e in events] == [(str(v.id), admin.id) for v in (s1, p1, s2)]
    assert "v2" not in events[-1].details_json  # the audit trail records the fact, not the whole text


def test_free_text_tiers_are_allowed(db, admin):
    version = services.publish_version(db, actor=admin, tier="spokespeople", title="Spokespeople", body_markdown="Speak well.")
    assert version.tier == "spokespeople" and version.version == 1


@pytest.mark.parametrize("tier", ["", "a", "Standard", "high-risk", "tier 2", "x" * 33, "näive", "tier1"])
def test_bad_tier_names_are_refused(db, admin, tier):
    with pytest.raises(InvalidError) as caught:
        services.publish_version(db, actor=admin, tier=tier, title="T", body_markdown="B")
    assert "tier" in caught.value.reasons


def test_title_and_body_are_required_and_bounded(db, admin):
    with pytest.raises(InvalidError) as caught:
        services.publish_version(db, actor=admin, tier="standard", title="  ", body_markdown="")
    assert set(caught.value.reasons) == {"title", "body_markdown"}
    with pytest.raises(InvalidError) as caught:
        services.publish_version(db, actor=admin, tier="standard", title="t" * 201, body_markdown="b" * 100_001)
    assert set(caught.value.reasons) == {"title", "body_markdown"}
    assert _events(db, "policy.published") == []


# --- accepting -----------------------------------------------------------------------------------------


def test_accepting_is_recorded_once_and_audited_once(db, admin):
    version = publish_policy(db, "standard")
    ack, created = services.accept_version(db, actor=admin, version=version)
    again, created_again = services.accept_version(db, actor=admin, version=version)
    assert created and not created_again and again.id == ack.id
    assert ack.person_id == admin.person_id and ack.accepted_at is not None
    assert db.scalar(select(func.count()).select_from(Acknowledgement)) == 1
    events = _events(db, "policy.accepted")
    assert len(events) == 1 and events[0].target_id == str(version.id) and events[0].actor_user_id == admin.id


def test_only_the_current_version_can_be_accepted(db, admin):
    old = publish_policy(db, "standard")
    publish_policy(db, "standard")
    with pytest.raises(ConflictError, match="replaced; accept the current version \\(version 2\\)"):
        services.accept_version(db, actor=admin, version=old)
    assert db.scalar(select(func.count()).select_from(Acknowledgement)) == 0


# --- what a person must accept -------------------------------------------------------------------------


def test_everyone_must_accept_the_standard_tier_once_published(db):
    person = make_person(db)
    assert services.policies_to_accept(db, person.id) == []
    standard = publish_policy(db, "standard")
    publish_policy(db, "privileged")
    assert services.policies_to_accept(db, person.id) == [standard]
    accept_policy(db, person, standard)
    assert services.policies_to_accept(db, person.id) == []
    newer = publish_policy(db, "standard")
    assert services.policies_to_accept(db, person.id) == [newer]


@pytest.mark.parametrize(("role", "status", "needs_privileged"), [
    ("admin", "active", True),
    ("owner", "requested", True),
    ("admin", "revoked", False),
    ("admin", "expired", False),
    ("publisher", "active", False),
])
def test_role_tiers_follow_held_and_requested_grants(db, role, status, needs_privileged):
    person = make_person(db)
    standard, privileged = publish_policy(db, "standard"), publish_policy(db, "privileged")
    make_grant(db, person, make_account(db), role, status=status)
    expected = [privileged, standard] if needs_privileged else [standard]
    assert services.policies_to_accept(db, person.id) == expected


def test_a_role_tier_without_a_published_version_asks_nothing(db):
    person = make_person(db)
    make_grant(db, person, make_account(db), "admin")
    assert services.policies_to_accept(db, person.id) == []


# --- the report ----------------------------------------------------------------------------------------


def test_report_lists_holders_without_acceptance_of_their_roles_tier(db, admin):
    standard, privileged = publish_policy(db, "standard"), publish_policy(db, "privileged")
    account = make_account(db, display_name="Acme IG")
    missing = make_person(db, full_name="Mia Missing", department="Marketing")
    accepted = make_person(db, full_name="Ada Accepted")
    wrong_tier = make_person(db, full_name="Wes Wrongtier")
    revoked = make_person(db, full_name="Rae Revoked")
    old = make_person(db, full_name="Otto Oldversion")
    make_grant(db, missing, account, "publisher")
    make_grant(db, accepted, account, "publisher")
    accept_policy(db, accepted, standard)
    make_grant(db, wrong_tier, account, "admin")
    accept_policy(db, wrong_tier, standard)  # the admin role needs the privileged tier
    make_grant(db, revoked, account, "publisher", status="revoked")
    make_grant(db, old, account, "analyst")
    accept_policy(db, old, standard)
    newer = publish_policy(db, "standard")
    page = services.unaccepted_report(db, admin, services.ReportFilter(), page=1)
    rows, total = page.items, page.total
    got = {(r.person_name, r.role_name, r.tier, r.version) for r in rows}
    assert got == {("Mia Missing", "Publisher", "standard", 2), ("Ada Accepted", "Publisher", "standard", 2),
                   ("Wes Wrongtier", "Admin", "privileged", 1), ("Otto Oldversion", "Analyst", "standard", 2)}
    assert total == 4
    accept_policy(db, accepted, newer)
    accept_policy(db, wrong_tier, privileged)
    page = services.unaccepted_report(db, admin, services.ReportFilter(tier="standard"), page=1)
    rows, total = page.items, page.total
    assert {r.person_name for r in rows} == {"Mia Missing", "Otto Oldversion"} and total == 2
    rows = services.unaccepted_report(db, admin, services.ReportFilter(department="marketing"), page=1).items
    assert [r.person_name for r in rows] == ["Mia Missing"]
    assert list(services.iter_unaccepted(db, admin, services.ReportFilter(department="marketing"))) == [
        ("Mia Missing", missing.email, "Marketing", "Acme IG", "instagram", account.handle, "Publisher", "standard", 2)
    ]


def test_report_pages_and_streams_in_batches(db, admin):
    publish_policy(db, "standard")
    account = make_account(db)
    for _ in range(7):
        make_grant(db, make_person(db), account, "analyst")
    first = services.unaccepted_report(db, admin, services.ReportFilter(), page=1, per_page=5)
    second = services.unaccepted_report(db, admin, services.ReportFilter(), page=2, per_page=5)
    assert first.total == 7 and len(first.items) == 5 and len(second.items) == 2
    assert {r.grant_id for r in first.items}.isdisjoint({r.grant_id for r in second.items})
    assert len(list(services.iter_unaccepted(db, admin, services.ReportFilter(), batch=3))) == 7


def test_a_manager_sees_only_their_accounts_and_reports(app, db, kit):
    manager = make_user(db, kit, roles=("manager",)).user
    publish_policy(db, "standard")
    own = make_account(db, business_owner_id=manager.person_id)
    other = make_account(db)
    make_grant(db, make_person(db, full_name="On Own Account"), own, "analyst")
    make_grant(db, make_person(db, full_name="My Report", manager_id=manager.person_id), other, "analyst")
    make_grant(db, make_person(db, full_name="Stranger"), other, "analyst")
    page = services.unaccepted_report(db, manager, services.ReportFilter(), page=1)
    rows, total = page.items, page.total
    assert {r.person_name for r in rows} == {"On Own Account", "My Report"} and total == 2
