"""Vault fixtures: a keyring injected through GOVERN_VAULT_KEYRING, and a small world of users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from govern.accounts.models import Account
from govern.crypto.keyring import Keyring
from govern.vault.models import Secret
from govern.vault.versions import create_secret
from tests.factories import make_account, make_grant, make_user


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def app_overrides(keyring: Keyring) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


@pytest.fixture
def ring(app: Any) -> Keyring:
    """The keyring the app actually uses."""
    loaded: Keyring = app.extensions["govern.keyring"]
    assert loaded is not None, app.extensions["govern.keyring_problem"]
    return loaded


class World:
    """IT, an admin, an auditor, a publisher and an analyst of one account, a stranger, and another account."""

    def __init__(self, db: Any, kit: Any) -> None:
        self.it = make_user(db, kit, roles=("it",))
        self.admin = make_user(db, kit, roles=("admin",))
        self.auditor = make_user(db, kit, roles=("auditor",))
        self.manager = make_user(db, kit, roles=("manager",))
        self.publisher = make_user(db, kit)
        self.analyst = make_user(db, kit)
        self.stranger = make_user(db, kit)
        self.account = make_account(db, display_name="Acme Instagram", business_owner_id=self.manager.user.person_id)
        self.other_account = make_account(db, display_name="Other account")
        make_grant(db, self.publisher.user.person, self.account, "publisher")
        make_grant(db, self.analyst.user.person, self.account, "analyst")
        db.commit()


@pytest.fixture
def world(db: Any, kit: Any) -> World:
    return World(db, kit)


@pytest.fixture
def ctx(app: Any) -> Iterator[None]:
    """A request context, for services that read the request's audit context."""
    with app.test_request_context():
        yield


@pytest.fixture
def make_secret(db: Any, world: World, ring: Keyring) -> Callable[..., Secret]:
    """Vault a secret of ``world.account`` as IT and commit: ``make_secret(kind, value, label, **metadata)``."""

    def make(kind: str = "password", value: Any = "Xq9-canary-pass", label: str | None = None, **kw: Any) -> Secret:
        secret = create_secret(db, actor=world.it.user, keyring=ring, account=world.account, kind=kind,
                               label=label or f"{kind} login", value=value, **kw)
        db.commit()
        return secret

    return make


@pytest.fixture
def accounts(db: Any) -> dict[str, Account]:
    """Accounts on five platforms that the sample exports refer to."""
    made = {
        "instagram": make_account(db, platform="instagram", handle="acme", url="https://www.instagram.com/acme"),
        "x": make_account(db, platform="x", handle="acme_news", url="https://x.com/acme_news"),
        "facebook": make_account(db, platform="facebook", handle="acme.official", url="https://www.facebook.com/acme.official"),
        "bluesky": make_account(db, platform="bluesky", handle="acme.bsky.social", url="https://bsky.app/profile/acme.bsky.social"),
        "mastodon": make_account(db, platform="mastodon", handle="acme@mastodon.social", url="https://mastodon.social/@acme"),
    }
    db.commit()
    return made
