"""Give people of a live test server a login with a known password and authenticator seed.

Run by the browser tests in the server's environment (``python -m tests.browser.enrol``) after
`govern demo seed`, so a flow can sign in as several colleagues without walking each one through
the setup pages (tests/browser/test_first_login.py covers those). Prints one JSON object:
{email: base32 TOTP seed}. Test tooling only; never part of govern.
"""

from __future__ import annotations

import json
import sys

from sqlalchemy import select

from govern.app import create_app
from govern.auth.models import User
from govern.auth.users import create_user
from govern.crypto import totp
from govern.db import database, utcnow
from govern.directory.models import Person


def enrol(password: str, emails: list[str]) -> dict[str, str]:
    """Set ``password`` and a fresh TOTP seed for each email's login (created as staff if missing)."""
    app = create_app()
    kit = app.extensions["govern.auth"]
    seeds: dict[str, str] = {}
    with app.app_context(), database(app).session_scope() as session:
        for email in emails:
            person = session.scalar(select(Person).where(Person.email == email.lower()))
            if person is None:
                raise SystemExit(f"no person with the email {email}")
            user = session.scalar(select(User).where(User.person_id == person.id))
            if user is None:
                user, _secret = create_user(session, kit, actor=None, person=person, roles=set())
            seed = totp.new_seed()
            user.password_hash = kit.hashing.hash(password)
            user.password_changed_at = utcnow()
            user.mfa_seed_sealed = kit.mfa_box.seal(seed.encode(), f"govern:users.mfa_seed:{user.id}".encode())
            user.mfa_enabled_at = utcnow()
            seeds[user.email] = seed
        session.commit()
    return seeds


if __name__ == "__main__":
    print(json.dumps(enrol(sys.argv[1], sys.argv[2:])))
