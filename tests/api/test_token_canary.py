"""No API token and no revealed value reaches a log, an audit row, any table, an error answer, or a URL."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote_plus

import pytest
from sqlalchemy import select

from govern.crypto.keyring import Keyring
from govern.db import Base
from tests.api.helpers import Api, personal_token, service_token

CANARY_VALUE = "canary-Value-7f3e-velvet"


def _forms(value: str) -> set[str]:
    raw = value.encode()
    return {value, quote_plus(value), base64.b64encode(raw).decode(), raw.hex()}


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def app_overrides(keyring: Keyring) -> dict[str, Any]:
    return {"VAULT_KEYRING_JSON": keyring.to_json()}


def test_tokens_and_revealed_values_never_leak(app, db, company, keyring, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    company.account_team()
    company.add_user("it2", "it")
    company.add_user("it3", "it")
    company.add_secret("password", keyring, value=CANARY_VALUE)
    company.commit()
    personal = personal_token(db, company.it, "accounts:read", "people:read")
    token, service = service_token(db, company.it, company.it2.user.person, "secrets:reveal", "accounts:read",
                                   roles=("it",), account_ids=(company.account.id,), approver=company.it3)
    api, integration = Api(app, personal), Api(app, service)
    answers = [
        api.get("/people"), api.get(f"/secrets/{company.password.id}"),
        api.post("/people", {"full_name": personal, "email": personal}),  # a token pasted into a field: refused
        integration.post(f"/secrets/{company.password.id}/reveal", {"reason": "sync"}),
        Api(app, personal[:-1] + ("A" if personal[-1] != "A" else "B")).get("/people"),  # a typo'd token
        app.test_client().get(f"/api/v1/people?token={personal}"),
        app.test_client().post("/api/v1/tokens/revoke", json={"token": personal}),
        api.get("/people"),  # revoked now
    ]
    assert answers[3].status_code == 200 and answers[3].json["value"] == CANARY_VALUE
    assert answers[-1].status_code == 401
    secrets = _forms(personal) | _forms(service)
    for n, answer in enumerate(answers):
        body = answer.get_data(as_text=True)
        assert not any(s in body for s in secrets), n
        assert n == 3 or CANARY_VALUE not in body, n
    logs = caplog.text
    assert not any(s in logs for s in secrets | _forms(CANARY_VALUE))
    for table in Base.metadata.sorted_tables:
        for row in db.execute(select(table)):
            text = " ".join(str(v) for v in row)
            assert not any(s in text for s in secrets), table.name
            assert CANARY_VALUE not in text, table.name
