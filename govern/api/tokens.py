"""The calling token itself, and revoking a leaked token by its value."""

from __future__ import annotations

from datetime import datetime

from flask import Response, g

from govern.api.blueprint import answer, bp
from govern.api.schemas import Out, Strict
from govern.api.spec import ANY_SCOPE, body_of, endpoint
from govern.auth import apitokens
from govern.db import get_session
from govern.web import PUBLIC

TAG = ["tokens"]


class TokenOut(Out):
    """The calling token: never its value."""

    id: int
    kind: str
    name: str
    prefix: str
    scopes: list[str]
    roles: list[str]
    acts_as: str
    expires_at: datetime
    last_used_at: datetime | None


class LeakedToken(Strict):
    token: str


class Accepted(Out):
    accepted: bool = True


def _current() -> TokenOut:
    token = g.principal.token
    return TokenOut(id=token.id, kind=token.kind, name=token.name, prefix=token.prefix,
                    scopes=sorted(apitokens.scopes_of(token)), roles=sorted(g.principal.roles),
                    acts_as=g.principal.email, expires_at=token.expires_at, last_used_at=token.last_used_at)


@bp.get("/tokens/current")
@endpoint(operation_id="getCurrentToken", permission_name="staff", scope=ANY_SCOPE, tags=TAG,
          responses={200: TokenOut})
def current() -> Response:
    """Which token this is, whom it acts as, its scopes and the roles it may use."""
    return answer(_current())


@bp.delete("/tokens/current")
@endpoint(operation_id="revokeCurrentToken", permission_name="staff", scope=ANY_SCOPE, tags=TAG,
          responses={200: Accepted})
def revoke_current() -> Response:
    """Revoke the calling token now (an integration retiring itself)."""
    apitokens.revoke_token(get_session(), actor=g.principal.user, token=g.principal.token, reason="revoked by itself")
    get_session().commit()
    return answer(Accepted())


@bp.post("/tokens/revoke")
@endpoint(operation_id="revokeTokenByValue", permission_name=PUBLIC, scope=None, tags=TAG, body=LeakedToken,
          responses={202: Accepted})
def revoke_by_value() -> Response:
    """Revoke a leaked token by its value, whoever found it (as GitHub's credential revocation does).

    The answer is the same whether or not the value named a live token, so it tells a guesser nothing.
    """
    session = get_session()
    if apitokens.revoke_by_value(session, body_of(LeakedToken).token.strip()):
        session.commit()
    return answer(Accepted(), status=202)
