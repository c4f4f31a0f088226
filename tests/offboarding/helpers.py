"""Helpers the offboarding tests share (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from govern.offboarding.scheduling import schedule_offboarding
from govern.offboarding.settings import Settings
from govern.vault.access import reveal
from govern.vault.versions import create_secret

SETTINGS = Settings()


def count_rows(db: Any, model: Any, *where: Any) -> int:
    """How many rows of ``model`` match ``where``."""
    return db.scalar(select(func.count()).select_from(model).where(*where))


def start_now(db: Any, world: Any) -> Any:
    """HR offboards the world's person with immediate effect: the offboarding, started."""
    return schedule_offboarding(db, actor=world.hr, person=world.person, effective_at=None, settings=SETTINGS)


def make_secrets(db: Any, world: Any, ring: Any) -> dict[str, Any]:
    """Four passwords on the world's accounts; Lea has revealed the Instagram one."""
    def make(account, label):
        return create_secret(db, actor=world.users["it"].user, keyring=ring, account=account, kind="password",
                                   label=label, value="Old-Password-123!")

    made = {
        "li": make(world.linkedin, "LinkedIn login"),
        "insta": make(world.insta, "Instagram login"),
        "insta_backup": make(world.insta, "Instagram backup login"),
        "x": make(world.x, "X login"),  # Lea is only an analyst there: she could not reveal it
    }
    db.commit()
    reveal(db, actor=world.lea, keyring=ring, secret=made["insta"], reason="posting", mfa_fresh=True)
    db.commit()
    return made
