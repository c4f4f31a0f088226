"""Secrets: metadata, and the one reveal endpoint for approved service tokens of named accounts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import Response, current_app, g
from flask_login import current_user
from pydantic import Field

from govern.api.blueprint import answer, bp
from govern.api.problems import ApiProblem
from govern.api.schemas import Out, Reason, Strict
from govern.api.spec import body_of, endpoint
from govern.auth import apitokens
from govern.db import get_session
from govern.errors import NotFoundError
from govern.vault import access
from govern.vault.models import Secret

TAG = ["secrets"]


class SecretMeta(Out):
    """What may be known of a secret without revealing it."""

    id: int
    account_id: int
    kind: str
    label: str
    login: str | None
    url: str | None
    token_expires_at: date | None
    created_at: datetime
    updated_at: datetime


class RevealRequest(Strict):
    reason: Reason
    what: Literal["value", "totp_code"] = Field("value", description="totp_code for a 2FA seed: the live code, never the seed.")


class RecoveryCode(Out):
    code: str
    used_at: str | None


class Revealed(Out):
    """The secret's current value: shown to this call only, recorded as an exposure of the token's owner."""

    secret_id: int
    version: int
    value: str | None = None
    codes: list[RecoveryCode] | None = None
    totp_code: str | None = None
    totp_seconds_left: int | None = None


def _secret(secret_id: int) -> Secret:
    session = get_session()
    try:
        secret = access.get_secret(session, secret_id)
    except NotFoundError:
        raise NotFoundError("No such secret.") from None
    if not access.can_see_secret(session, current_user, secret):
        raise NotFoundError("No such secret.")
    return secret


@bp.get("/secrets/<int:secret_id>")
@endpoint(operation_id="getSecret", permission_name="vault.read", scope="accounts:read", tags=TAG,
          responses={200: SecretMeta, 404: None})
def get_secret(secret_id: int) -> Response:
    """A secret's metadata (kind, label, login, expiry); never its value."""
    return answer(SecretMeta.model_validate(_secret(secret_id)))


@bp.post("/secrets/<int:secret_id>/reveal")
@endpoint(operation_id="revealSecret", permission_name="vault.reveal", scope="secrets:reveal", tags=TAG,
          body=RevealRequest, responses={200: Revealed, 403: None, 404: None})
def reveal(secret_id: int) -> Response:
    """Reveal the current value, for a service token IT made for this account and a second IT user approved.

    Each call writes the audit event and an exposure of the token's owner, in the same transaction; the
    rotation that follows a leaver counts it like a reveal on the page. A personal token can never reveal.
    """
    token = g.principal.token
    session = get_session()
    secret = _secret(secret_id)
    if token.kind != "service":
        raise ApiProblem(403, "A personal token can never reveal a secret.", kind="forbidden")
    if secret.account_id not in apitokens.account_ids_of(token):
        access.record_reveal_denied(session, actor=current_user, secret=secret, exposure="value",
                                    why="the service token is not made for this account")
        session.commit()
        raise ApiProblem(403, "This token may reveal secrets of other accounts only.", kind="forbidden")
    data = body_of(RevealRequest)
    what = "totp_code" if secret.kind == "totp" else "value"
    if data.what != what:
        raise ApiProblem(422, f"This secret is revealed as {what}.", kind="validation-error",
                         errors=[{"location": "body", "field": "what", "message": f"use {what}"}])
    # The token was approved by a second IT user: that approval stands for the page's step-up.
    shown = access.reveal(session, actor=current_user, keyring=current_app.extensions["govern.keyring"],
                          secret=secret, reason=data.reason, mfa_fresh=True, what=what)
    session.commit()
    out = Revealed(secret_id=secret.id, version=shown.version.version, value=shown.value)
    if shown.codes:
        out.codes = [RecoveryCode(code=c["code"], used_at=c.get("used_at")) for c in shown.codes]
    if shown.live is not None:
        out.totp_code, out.totp_seconds_left = shown.live.code, shown.live.seconds_left
    return answer(out)
