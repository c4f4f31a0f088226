"""Tokens and calls for the API tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from govern.auth import apitokens
from govern.auth.models import ApiToken
from govern.db import utcnow
from govern.directory.models import Person
from govern.web import POLICY
from tests.factories import TestUser

ALL_READ = ("people:read", "accounts:read", "grants:read", "policies:read", "reviews:read", "rotation:read",
            "offboarding:read", "audit:read")


def personal_token(db: Session, who: TestUser, *scopes: str, days: int = 30) -> str:
    """A personal token of ``who`` with ``scopes`` (committed)."""
    _, text = apitokens.create_personal_token(db, actor=who.user, request=apitokens.TokenRequest(
        name=f"test {' '.join(scopes)}"[:100], scopes=list(scopes), expires_at=utcnow() + timedelta(days=days)),
        policy=POLICY)
    db.commit()
    return text


def service_token(db: Session, creator: TestUser, owner: Person, *scopes: str, roles: tuple[str, ...],
                  account_ids: tuple[int, ...] = (), approver: TestUser | None = None) -> tuple[ApiToken, str]:
    """A service token made by ``creator`` for ``owner`` (approved by ``approver`` when given)."""
    token, text = apitokens.create_service_token(db, actor=creator.user, request=apitokens.TokenRequest(
        name="integration", scopes=list(scopes), expires_at=utcnow() + timedelta(days=90), owner=owner,
        roles=list(roles), account_ids=list(account_ids)), policy=POLICY)
    if approver is not None:
        apitokens.approve_service_token(db, actor=approver.user, token=token)
    db.commit()
    return token, text


class Api:
    """A test client that sends a token with every call."""

    def __init__(self, app: Flask, token: str) -> None:
        self.client: FlaskClient = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
             **kwargs: Any) -> Any:
        return self.client.open(f"/api/v1{path}", method=method, json=json, headers={**self.headers, **(headers or {})},
                                **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json=json if json is not None else {}, **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.call("PATCH", path, json=json, **kwargs)
