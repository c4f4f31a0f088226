"""Tokens at work: revoked and expired at once, offboarding, reveal only for approved service tokens,
revoke by value, rate limits and the throttle of failed tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from govern.audit.models import AuditEvent
from govern.auth import apitokens
from govern.auth.models import ApiToken
from govern.crypto.keyring import Keyring
from govern.db import utcnow
from govern.errors import ForbiddenError, InvalidError
from govern.offboarding.models import OffboardingItem
from govern.vault.models import Exposure
from govern.web import POLICY
from tests.api.helpers import Api, personal_token, service_token
from tests.factories import offboard


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def app_overrides(keyring: Keyring) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json(), "API_RATE_LIMIT": 25, "LOGIN_IP_MAX_FAILURES": 5}


@pytest.fixture
def team(company, keyring):  # type: ignore[no-untyped-def]
    company.account_team()
    company.add_user("it2", "it")
    company.add_user("hr", "hr")
    company.add_secret("password", keyring, value="Hunter-2-Hunter-2!")
    company.add_secret("other_password", keyring, account=company.other_account, value="Other-Secret-99!")
    return company.commit()


def test_revoked_and_expired_tokens_get_401_at_once(app, db, team) -> None:
    text = personal_token(db, team.hr, "people:read")
    api = Api(app, text)
    assert api.get("/people").status_code == 200
    token = db.scalar(select(ApiToken).where(ApiToken.prefix == text[:9]))
    apitokens.revoke_token(db, actor=team.hr.user, token=token, reason="test")
    db.commit()
    refused = api.get("/people")
    assert refused.status_code == 401 and refused.json["detail"] == "The token was revoked."
    later = Api(app, personal_token(db, team.hr, "people:read", days=1))
    with time_machine.travel(utcnow() + timedelta(days=2)):
        assert later.get("/people").status_code == 401
    refusals = db.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.refused")).all()
    assert len(refusals) == 2


def test_personal_tokens_never_exceed_their_user(db, team) -> None:
    with pytest.raises(InvalidError) as beyond:
        apitokens.create_personal_token(db, actor=team.publisher.user, request=apitokens.TokenRequest(
            name="x", scopes=["audit:read"], expires_at=utcnow() + timedelta(days=1)), policy=POLICY)
    assert "audit:read" in beyond.value.reasons["scopes"]
    with pytest.raises(InvalidError) as reveal:
        apitokens.create_personal_token(db, actor=team.it.user, request=apitokens.TokenRequest(
            name="x", scopes=["secrets:reveal"], expires_at=utcnow() + timedelta(days=1)), policy=POLICY)
    assert "never reveal" in reveal.value.reasons["scopes"]
    with pytest.raises(InvalidError) as long_lived:
        apitokens.create_personal_token(db, actor=team.hr.user, request=apitokens.TokenRequest(
            name="x", scopes=["people:read"], expires_at=utcnow() + timedelta(days=400)), policy=POLICY)
    assert "one year" in long_lived.value.reasons["expires_at"]


def test_an_offboarded_persons_token_stops_in_the_offboardings_transaction(app, db, team) -> None:
    text = personal_token(db, team.manager, "people:read")
    owned, owned_text = service_token(db, team.admin, team.manager.user.person, "people:read", roles=("manager",))
    api, integration = Api(app, text), Api(app, owned_text)
    assert api.get("/people").status_code == 200 and integration.get("/people").status_code == 200
    offboarding = offboard(db, team.manager.user.person, "leaving")
    db.commit()
    assert api.get("/people").status_code == 401
    assert integration.get("/people").status_code == 401
    personal = db.scalar(select(ApiToken).where(ApiToken.prefix == text[:9]))
    assert personal.revoked_at is not None and personal.revoke_reason == "offboarding"
    item = db.scalar(select(OffboardingItem).where(OffboardingItem.offboarding_id == offboarding.id,
                                                   OffboardingItem.ref_type == "api_token"))
    assert item is not None and item.ref_id == owned.id and item.status == "open"
    with pytest.raises(InvalidError):  # the new owner must hold the roles the token uses
        apitokens.change_owner(db, actor=team.admin.user, token=owned, owner=team.it.user.person)
    team.add_user("manager2", "manager")
    apitokens.change_owner(db, actor=team.admin.user, token=owned, owner=team.manager2.user.person)
    db.commit()
    from govern.offboarding.checklist import close_linked_items
    close_linked_items(db, ref_type="api_token", ref_id=owned.id, actor=team.admin.user)
    db.commit()
    db.refresh(item)
    assert item.status == "done"


def test_reveal_only_by_an_approved_service_token_for_its_accounts(app, db, team) -> None:
    with pytest.raises(ForbiddenError):  # only IT make tokens that reveal
        service_token(db, team.admin, team.it.user.person, "secrets:reveal", roles=("it",),
                      account_ids=(team.account.id,))
    token, text = service_token(db, team.it, team.it2.user.person, "secrets:reveal", roles=("it",),
                                account_ids=(team.account.id,))
    api = Api(app, text)
    waiting = api.post(f"/secrets/{team.password.id}/reveal", {"reason": "sync"})
    assert waiting.status_code == 401 and "approval" in waiting.json["detail"]
    with pytest.raises(ForbiddenError):  # the second IT user approves, not who acts as it
        apitokens.approve_service_token(db, actor=team.it2.user, token=token)
    with pytest.raises(ForbiddenError):  # nor who created it
        apitokens.approve_service_token(db, actor=team.it.user, token=token)
    db.rollback()
    team.add_user("it3", "it")
    apitokens.approve_service_token(db, actor=team.it3.user, token=token)
    db.commit()
    shown = api.post(f"/secrets/{team.password.id}/reveal", {"reason": "nightly sync"})
    assert shown.status_code == 200, shown.json
    assert shown.json["value"] == "Hunter-2-Hunter-2!"
    exposure = db.scalar(select(Exposure).where(Exposure.secret_id == team.password.id, Exposure.user_id == team.it2.user.id))
    assert exposure is not None and exposure.user_id == team.it2.user.id and exposure.reason == "nightly sync"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "vault.revealed"))
    assert event is not None and event.session_ref == f"token:{token.id}" and "Hunter" not in event.details_json
    other = api.post(f"/secrets/{team.other_password.id}/reveal", {"reason": "not mine"})
    assert other.status_code == 403
    assert api.post(f"/secrets/{team.password.id}/reveal", {}).status_code == 422


def test_a_personal_token_can_never_reveal(app, db, team) -> None:
    api = Api(app, personal_token(db, team.it, "accounts:read"))
    assert api.get(f"/secrets/{team.password.id}").status_code == 200
    refused = api.post(f"/secrets/{team.password.id}/reveal", {"reason": "please"})
    assert refused.status_code == 403
    assert "Hunter" not in refused.get_data(as_text=True)


def test_revoke_by_value_whoever_holds_it(app, db, team) -> None:
    text = personal_token(db, team.hr, "people:read")
    anyone = app.test_client()
    answer = anyone.post("/api/v1/tokens/revoke", json={"token": text})
    assert answer.status_code == 202
    assert anyone.post("/api/v1/tokens/revoke", json={"token": "govp_nothing"}).status_code == 202
    assert Api(app, text).get("/people").status_code == 401


def test_who_am_i_and_revoke_myself(app, db, team) -> None:
    api = Api(app, personal_token(db, team.hr, "people:read"))
    me = api.get("/tokens/current")
    assert me.status_code == 200 and me.json["acts_as"] == team.hr.email and "token" not in me.json
    assert api.call("DELETE", "/tokens/current").status_code == 200
    assert api.get("/tokens/current").status_code == 401


def test_rate_limit_answers_429_with_retry_after(app, db, team) -> None:
    api = Api(app, personal_token(db, team.hr, "people:read"))
    statuses = [api.get("/people?limit=1").status_code for _ in range(27)]
    assert statuses[:25] == [200] * 25 and statuses[-1] == 429
    limited = api.get("/people?limit=1")
    assert int(limited.headers["Retry-After"]) >= 1 and limited.mimetype == "application/problem+json"


def test_failed_tokens_are_throttled_by_address(app, db, team) -> None:
    stranger = Api(app, apitokens.new_token_text("personal"))
    statuses = [stranger.get("/people").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    # A live token still works from there: 238 random bits are not guessed, the lock stops the noise.
    assert Api(app, personal_token(db, team.hr, "people:read")).get("/people").status_code == 200


def test_secret_metadata_and_rotation_status_never_carry_a_value(app, db, team) -> None:
    it = Api(app, personal_token(db, team.it, "accounts:read", "rotation:read"))
    secrets = it.get(f"/accounts/{team.account.id}/secrets")
    assert secrets.status_code == 200 and {s["id"] for s in secrets.json["items"]} == {team.password.id}
    rotation = it.get(f"/accounts/{team.account.id}/rotation")
    assert rotation.status_code == 200 and rotation.json["items"][0]["state"] in ("fine", "due", "overdue")
    for answer in (secrets, rotation, it.get(f"/secrets/{team.password.id}")):
        assert "Hunter" not in answer.get_data(as_text=True)
    with pytest.raises(InvalidError):  # plain staff lack accounts.read: no token of theirs gets it
        personal_token(db, team.stranger, "accounts:read")
