"""What a leaver held that someone must take over: the duties on accounts, and the successor's steps."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from govern.accounts.models import Account
from govern.directory.models import Person

#: The account fields a leaver can hold, and how the checklist names them.
DUTIES = (
    ("business_owner_id", "business owner"),
    ("crisis_contact_id", "crisis contact"),
    ("recovery_email_person_id", "recovery email"),
    ("recovery_phone_person_id", "recovery phone"),
)


#: What each platform requires, in order, when ownership moves (shown on successor items).
SUCCESSOR_STEPS: dict[str, str] = {
    "linkedin": "LinkedIn refuses to remove a Page's last Super admin: give the successor the Super admin role "
                "on the Page first, then remove the leaver.",
    "youtube": "YouTube channels live in a Google Brand Account: make the successor an owner now and transfer "
               "primary ownership; Google makes a new primary owner wait 7 days before they can remove other "
               "owners, so start on day one.",
    "facebook": "In Meta Business Settings give the successor full control of the business portfolio first, then "
                "sweep the partners and system users the leaver set up, then remove the leaver.",
    "instagram": "In Meta Business Settings give the successor full control of the business portfolio first, then "
                 "sweep the partners and system users the leaver set up, then remove the leaver.",
    "threads": "In Meta Business Settings give the successor full control of the business portfolio first, then "
               "sweep the partners and system users the leaver set up, then remove the leaver.",
}


GENERIC_SUCCESSOR_STEP = "Give the successor the platform's owner or admin role first, then remove the leaver."


def duties_of(account: Account, person_id: int) -> list[str]:
    return [label for column, label in DUTIES if getattr(account, column) == person_id]


def accounts_with_duties(session: Session, person_id: int) -> list[Account]:
    """Accounts the person owns, is crisis contact of, or holds the recovery email or phone of."""
    return list(session.scalars(select(Account).where(or_(
        Account.business_owner_id == person_id, Account.crisis_contact_id == person_id,
        Account.recovery_email_person_id == person_id, Account.recovery_phone_person_id == person_id,
    )).order_by(Account.display_name, Account.id)))


def manager_owner(session: Session, person: Person) -> tuple[str, int | None]:
    manager = session.get(Person, person.manager_id) if person.manager_id else None
    if manager is not None and manager.status == "active":
        return "manager", manager.id
    return "hr", None
