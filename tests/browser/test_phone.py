"""Every main page on a phone (375 px) and the admin's menu on a desktop (1280 px), with the demo company.

On a phone the page itself never scrolls sideways: wide tables scroll inside their own box. On a desktop
the admin's menu, the longest there is, stays on one line. Screenshots of both widths go to
artifacts/screenshots/ (phone_375_*, desktop_1280_*)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from govern.accounts.models import Account
from govern.auth.models import User
from govern.db import Database
from govern.directory.models import Person
from govern.incidents.models import Incident
from govern.policies.models import PolicyVersion
from govern.reviews.models import ReviewCampaign
from govern.rotation.models import RotationTask
from govern.vault.models import Secret
from tests.browser.helpers import LiveServer, seed_and_enrol, sign_in_demo, watch

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}

#: The pages every area starts from, then one of each kind of detail page ({...} filled from the demo data).
PAGES = (
    ("home", "/"), ("people", "/people/"), ("person", "/people/{person}"), ("people_import", "/people/import"),
    ("accounts", "/accounts/"), ("account", "/accounts/{account}"), ("roles", "/accounts/roles"),
    ("access", "/grants/"), ("grant_new", "/grants/new?account={account}"),
    ("reviews", "/reviews/"), ("review", "/reviews/{review}"), ("reports", "/reports/"),
    ("report_access", "/reports/access"), ("report_matrix", "/reports/matrix"),
    ("report_person", "/reports/people/{person}"), ("report_account", "/reports/accounts/{account}"),
    ("policies", "/policies/"), ("policy", "/policies/{policy}"), ("policy_report", "/policies/report"),
    ("offboarding", "/offboarding/"), ("offboarding_new", "/offboarding/new"),
    ("credentials", "/vault/"), ("secret", "/vault/secrets/{secret}"), ("vault_import", "/vault/import"),
    ("vault_rules", "/vault/password-rules"),
    ("rotation", "/rotation/"), ("rotation_secrets", "/rotation/secrets"), ("rotation_task", "/rotation/tasks/{task}"),
    ("incident", "/rotation/incidents/{incident}"),
    ("users", "/admin/users/"), ("user", "/admin/users/{user}"), ("scim_tokens", "/admin/scim-tokens/"),
    ("audit", "/audit/"), ("jobs", "/jobs/"), ("notifications", "/notifications/"), ("your_account", "/account"),
)

#: What sticks out of the page: elements wider than the screen that are not inside a scrolling table box.
WIDE_ELEMENTS = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                 && !e.closest('.table-wrap'))
    .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + (e.textContent || '').trim().slice(0, 50))"""


#: The admin's name as long as names get: the header must hold it too.
LONG_NAME = "Alexandra Konstantinopoulou-Whitfield"


def _ids(database_url: str, admin_email: str) -> dict[str, int]:
    """One of each kind of object of the demo company, for the detail pages; the admin gets a long name
    and reads times in Paris."""
    database = Database(database_url)
    try:
        with database.session_scope() as db:
            db.scalar(select(Person).where(Person.email == admin_email)).full_name = LONG_NAME
            db.scalar(select(User).where(User.email == admin_email)).time_zone = "Europe/Paris"
            db.commit()

            def first(column: Any, *where: Any) -> int:
                value = db.scalar(select(column).where(*where).order_by(column).limit(1))
                assert value is not None, f"the demo data has no {column}"
                return int(value)

            return {
                "person": first(Person.id, Person.full_name == "Tomás Alvarez"),
                "account": first(Account.id, Account.display_name == "Northpeak Outdoor"),
                "review": first(ReviewCampaign.id), "policy": first(PolicyVersion.id),
                "secret": first(Secret.id), "task": first(RotationTask.id),
                "incident": first(Incident.id),
                "user": first(User.id),
            }
    finally:
        database.engine.dispose()


def _nav_rows(page: Page) -> int:
    """How many rows the main menu's top-level entries take."""
    return int(page.evaluate("""() => new Set([...document.querySelectorAll('#main-nav > *')]
        .filter(e => e.offsetParent !== null).map(e => Math.round(e.getBoundingClientRect().top))).size"""))


@pytest.mark.browser
@pytest.mark.slow
def test_every_main_page_fits_a_phone_and_the_admin_menu_one_desktop_line(
        browser: Any, live_server: LiveServer, screenshots: Any, scratch_database_url: str) -> None:
    problems: list[str] = []
    seeds = seed_and_enrol(live_server, [live_server.admin_email])
    ids = _ids(scratch_database_url, live_server.admin_email)
    desktop = sign_in_demo(browser, live_server, live_server.admin_email, seeds[live_server.admin_email], problems,
                       viewport=DESKTOP)

    # The admin's menu is the longest; on a desktop it is one line, the rest in its groups.
    assert _nav_rows(desktop) == 1, "the admin's menu wraps at 1280 px"
    header_height = desktop.evaluate("document.querySelector('.topbar').getBoundingClientRect().height")
    assert header_height < 70, f"the header is {header_height}px high at 1280 px"
    screenshots(desktop, "desktop_1280_home")
    group = desktop.locator("#main-nav details").first
    group.locator("summary").click()
    expect(group.locator(".nav-menu a").first).to_be_visible()
    screenshots(desktop, "desktop_1280_menu_open")
    desktop.keyboard.press("Escape")
    expect(group.locator(".nav-menu a").first).to_be_hidden()
    for name in ("audit", "jobs", "account", "person", "incident", "your_account"):
        path = dict(PAGES)[name].format(**ids)
        desktop.goto(live_server.url(path))
        screenshots(desktop, f"desktop_1280_{name}")
    expect(desktop.locator("time").first).to_contain_text(re.compile(r" CES?T$"))  # the admin's zone, named

    # The same session on a phone (a second sign-in within one TOTP step would be a refused replay).
    phone = browser.new_context(viewport=PHONE, storage_state=desktop.context.storage_state()).new_page()
    watch(phone, problems)
    too_wide: list[str] = []
    for name, path in PAGES:
        response = phone.goto(live_server.url(path.format(**ids)))
        assert response is not None and response.ok, f"{path}: {response.status if response else 'no response'}"
        screenshots(phone, f"phone_375_{name}")
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide.append(f"{name} ({path}) is {width}px wide: {phone.evaluate(WIDE_ELEMENTS)}")
    # The menu on a phone: closed behind one button, open as a list.
    phone.goto(live_server.url("/"))
    menu = phone.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(phone.locator("#main-nav")).to_be_hidden()
    menu.click()
    expect(phone.get_by_role("navigation", name="Main").get_by_role("link", name="Accounts")).to_be_visible()
    screenshots(phone, "phone_375_menu_open")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the open menu is {width}px wide: {phone.evaluate(WIDE_ELEMENTS)}"
    # The pages before signing in, too.
    visitor = browser.new_context(viewport=PHONE).new_page()
    watch(visitor, problems)
    for name, path in (("login", "/login"), ("setup", "/setup")):
        visitor.goto(live_server.url(path))
        screenshots(visitor, f"phone_375_{name}")
        width = visitor.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide.append(f"{name} ({path}) is {width}px wide: {visitor.evaluate(WIDE_ELEMENTS)}")
    visitor.context.close()
    desktop.context.close()
    phone.context.close()
    assert too_wide == [], "pages wider than a 375px phone:\n" + "\n".join(too_wide)
    assert problems == [], "browser reported problems:\n" + "\n".join(problems)
