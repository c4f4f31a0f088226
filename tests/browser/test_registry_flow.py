"""The registry's main flow in a real browser against a real server seeded with the demo company:
a manager grants a time-bound publisher role (refused until the colleague accepts the policy), a
staff member accepts the policy from their home page, a manager's admin grant waits for a second
person, and an admin approves it. Then the main pages, populated, on a desktop and a phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import LiveServer, seed_and_enrol, sign_in_demo, submit, watch

DOMAIN = "northpeak.example"
MANAGER = f"kwame.mensah@{DOMAIN}"  # Customer Support Lead, owns Northpeak Help on Facebook and X
STAFF = f"ahmed.karimi@{DOMAIN}"  # reports to him; has not accepted the policy yet
COMMS_HEAD = f"claire.dubois@{DOMAIN}"  # owns Northpeak on Mastodon, which has one admin only
NEW_ADMIN = f"ethan.brooks@{DOMAIN}"


def _open_account(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Accounts").click()
    page.get_by_role("link", name=name, exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def _grant(page: Page, person: str, role: str, reason: str, until: str = "") -> None:
    page.get_by_role("link", name="Grant a role").click()
    page.get_by_label("Person (work email)").fill(person)
    page.locator(f"input[name=role_code][value={role}]").check()
    if until:
        page.get_by_label(re.compile(r"^Ends on")).fill(until)
    page.get_by_label("Why", exact=True).fill(reason)
    submit(page, "Grant")


@pytest.mark.browser
@pytest.mark.slow
def test_registry_flow(browser: Any, live_server: LiveServer, screenshots: Any) -> None:
    problems: list[str] = []
    seeds = seed_and_enrol(live_server, [MANAGER, STAFF, COMMS_HEAD, live_server.admin_email])
    until_day = (datetime.now(UTC) + timedelta(days=30)).date()
    until = until_day.isoformat()

    # 1. The manager sees only his accounts, and may not give his report a credential yet.
    manager = sign_in_demo(browser, live_server, MANAGER, seeds[MANAGER], problems)
    nav = manager.get_by_role("navigation", name="Main")
    for area in ("Accounts", "Access"):
        expect(nav.get_by_role("link", name=area, exact=True)).to_be_visible()
    # The other areas are in the menu's groups (People, Oversight), shown when a group opens.
    assert {"People", "Reviews", "Reports", "Policies"} <= {text.strip() for text in nav.locator("a").all_text_contents()}
    nav.locator("summary", has_text="Oversight").click()
    expect(nav.get_by_role("link", name="Reports", exact=True)).to_be_visible()
    nav.locator("summary", has_text="Oversight").click()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    nav.get_by_role("link", name="Accounts").click()
    expect(manager.locator("table.table tbody tr")).to_have_count(2)  # Northpeak Help on Facebook and on X
    screenshots(manager, "manager_accounts")
    manager.get_by_role("link", name="Northpeak Help", exact=True).first.click()
    expect(manager.get_by_role("heading", level=1)).to_contain_text("Facebook")
    _grant(manager, STAFF, "publisher", "Covers the Facebook Help rota during the winter sale.", until)
    expect(manager.locator(".field.has-error .error")).to_contain_text("must first accept the current standard policy")
    screenshots(manager, "grant_refused_until_policy_accepted")

    # 2. The staff member finds the policy on his home page and accepts it.
    staff = sign_in_demo(browser, live_server, STAFF, seeds[STAFF], problems)
    to_accept = staff.locator("#policies-to-accept")
    expect(to_accept).to_be_visible()
    screenshots(staff, "staff_home_policy_to_accept")
    to_accept.get_by_role("link").first.click()
    expect(staff.get_by_role("heading", level=1)).to_contain_text("social media policy")
    screenshots(staff, "policy_before_accepting")
    submit(staff, "I accept version 1")
    staff.goto(live_server.url("/"))
    expect(staff.locator("#policies-to-accept")).to_have_count(0)
    screenshots(staff, "staff_home_after_accepting")

    # 3. Now the manager's time-bound publisher grant goes through and shows on the account page.
    submit(manager, "Grant")
    expect(manager.locator(".flash-success")).to_contain_text("Ahmed Karimi is now Publisher on Northpeak Help")
    publisher = manager.locator("ul.holders li", has_text="Ahmed Karimi")
    expect(publisher).to_contain_text(f"until {until_day.day} {until_day:%b %Y}")  # as pages show days
    screenshots(manager, "publisher_granted_until")

    # 4. Another manager's admin grant waits for a second person (four-eyes).
    comms = sign_in_demo(browser, live_server, COMMS_HEAD, seeds[COMMS_HEAD], problems)
    _open_account(comms, "Northpeak on Mastodon")
    expect(comms.locator(".card.risk")).to_contain_text("Fewer admins than the minimum: 1 of at least 2")
    screenshots(comms, "mastodon_one_admin")
    _grant(comms, NEW_ADMIN, "admin", "Second admin, so the account never depends on one person.")
    expect(comms.locator(".flash-info")).to_contain_text("needs a second person's approval")
    expect(comms.get_by_text("Waiting for approval")).to_be_visible()
    screenshots(comms, "admin_grant_waiting")
    comms.get_by_role("navigation", name="Main").get_by_role("link", name="Access").click()
    # Whoever asked cannot approve their own request.
    expect(comms.get_by_role("button", name="Approve")).to_have_count(0)

    # 5. The admin approves it; the risk is gone and Ethan is listed as an admin.
    admin = sign_in_demo(browser, live_server, live_server.admin_email, seeds[live_server.admin_email], problems)
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Access").click()
    request_row = admin.locator("tr", has_text="Ethan Brooks")
    expect(request_row).to_contain_text("Admin")
    screenshots(admin, "admin_approval_queue")
    with admin.expect_navigation():
        request_row.get_by_role("button", name="Approve").click()
    _open_account(admin, "Northpeak on Mastodon")
    expect(admin.locator("ul.holders li", has_text="Ethan Brooks")).to_be_visible()
    expect(admin.get_by_text("Fewer admins than the minimum")).to_have_count(0)
    screenshots(admin, "mastodon_two_admins")

    for page in (manager, staff, comms, admin):
        page.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)


#: The main pages, seen by an admin on the demo company (name, path or link to follow).
MAIN_PAGES = (
    ("home", "/"),
    ("people", "/people/"),
    ("accounts", "/accounts/"),
    ("accounts_at_risk", "/accounts/?risk=few_admins"),
    ("grants", "/grants/"),
    ("reports", "/reports/access"),
    ("reviews", "/reviews/"),
    ("policies", "/policies/"),
)


@pytest.mark.browser
@pytest.mark.slow
def test_main_pages_with_demo_data(browser: Any, live_server: LiveServer, screenshots: Any) -> None:
    problems: list[str] = []
    seeds = seed_and_enrol(live_server, [live_server.admin_email])
    admin = sign_in_demo(browser, live_server, live_server.admin_email, seeds[live_server.admin_email], problems)
    for name, path in MAIN_PAGES:
        response = admin.goto(live_server.url(path))
        assert response is not None and response.ok, f"{path}: {response.status if response else 'no response'}"
        screenshots(admin, name)
    admin.goto(live_server.url("/people/?q=Tom%C3%A1s"))
    admin.get_by_role("link", name="Tomás Alvarez").first.click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Tomás Alvarez")
    screenshots(admin, "person")
    _open_account(admin, "Northpeak Outdoor")
    screenshots(admin, "account")
    admin.goto(live_server.url("/reviews/"))
    admin.get_by_role("link", name="Quarterly access review: X").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("Quarterly access review: X")
    screenshots(admin, "review_progress")
    admin.goto(live_server.url("/reviews/new"))
    screenshots(admin, "review_new")

    # On a phone the menu keeps one row that scrolls sideways; the page never does.
    # The same session (a second sign-in within one TOTP step would be a refused replay).
    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=admin.context.storage_state()).new_page()
    watch(phone, problems)
    for name, path in (("phone_accounts", "/accounts/"), ("phone_account", None)):
        if path:
            phone.goto(live_server.url(path))
        else:
            phone.get_by_role("link", name="Northpeak Outdoor", exact=True).first.click()
        screenshots(phone, name)
        wide = phone.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                         && !e.closest('.table-wrap'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').trim().slice(0, 40))""")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name}: the page is {width}px wide on a 390px screen: {wide}"
    admin.context.close()
    phone.context.close()
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
