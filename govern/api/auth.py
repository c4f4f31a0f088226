"""Who calls the API: the bearer token, the user it acts as, its scopes, throttling and rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g, request

from govern import audit
from govern.api import ratelimit
from govern.api.problems import ApiProblem, problem
from govern.auth import apitokens
from govern.auth.kit import AuthKit
from govern.auth.models import ApiToken, User
from govern.auth.throttle import ThrottleUnavailableError, ip_key
from govern.db import get_session
from govern.web import client_ip

#: Attribute of an API view: the scope a token needs to call it (govern.auth.apitokens.SCOPES).
SCOPE_ATTRIBUTE = "govern_api_scope"


@dataclass(frozen=True)
class TokenPrincipal:
    """The caller of an API request: a token and the user it acts as (their roles capped by the token)."""

    token: ApiToken
    user: User
    scopes: frozenset[str]

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def roles(self) -> frozenset[str]:
        return self.user.roles

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def audit_user_id(self) -> int:
        return self.user.id

    @property
    def audit_ref(self) -> str:
        """What the audit events of this request carry in place of a session: the token's id."""
        return f"token:{self.token.id}"


def _throttle_key() -> str:
    return "api-" + ip_key(client_ip())


class TokenBearer:
    """Bearer-token authentication of /api/v1 (see govern.web.BEARER_BLUEPRINTS)."""

    def authenticate(self) -> TokenPrincipal | None:
        scheme, _, text = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not text.strip():
            return None
        session = get_session()
        kit: AuthKit = current_app.extensions["govern.auth"]
        found = apitokens.usable_token(session, text.strip())
        if isinstance(found, apitokens.Refusal):
            self._refused(session, kit, found)
            return None
        user = found.user
        cap = apitokens.role_cap_of(found)
        if cap is not None:
            user.cap_roles(cap)
        principal = TokenPrincipal(token=found, user=user, scopes=apitokens.scopes_of(found))
        if apitokens.touch(found, client_ip()):
            session.commit()
        try:
            verdict = ratelimit.check(current_app.extensions["govern.api_rate_store"], session, f"token:{found.id}",
                                      current_app.config["API_RATE_LIMIT"])
        except ratelimit.RateStoreUnavailableError as exc:
            current_app.logger.error("API rate-limit store unreachable; request refused")
            raise ApiProblem(503, "The API is paused: its rate limiter is unreachable. Retry later.",
                             headers={"Retry-After": "30"}) from exc
        g.rate_verdict = verdict
        if not verdict.allowed:
            raise ApiProblem(429, f"This token sent more than {verdict.limit} requests this minute.",
                             kind="rate-limited", headers={"Retry-After": str(verdict.reset_in), **rate_headers(verdict)})
        # Flask-Login's current user for this request is the token's user: views and services see its capped roles.
        g._login_user = user
        return principal

    @staticmethod
    def _refused(session: Any, kit: AuthKit, refusal: apitokens.Refusal) -> None:
        """A token that does not work: throttled per address (429 once locked), audited, said in the 401.

        Only failures consult the throttle: a live token (about 238 random bits) is not guessed, so the lock
        stops the noise of bad attempts without making every good request read the throttle store.
        """
        key = _throttle_key()
        try:
            locked = kit.throttle.locked_for(session, [key])
            if not locked:
                kit.throttle.fail(session, key, kit.ip_policy)
        except ThrottleUnavailableError as exc:
            raise ApiProblem(503, "Token checks are paused: a safety service is unreachable.") from exc
        if locked:
            raise ApiProblem(429, "Too many failed token attempts from this address; wait before trying again.",
                             kind="too-many-failures", headers={"Retry-After": str(locked)})
        audit.record(session, "api_token.refused", outcome="denied", target_type="api_token",
                     target_id=refusal.token_id, details={"reason_code": refusal.reason})
        session.commit()
        g.token_refusal = refusal.reason

    def admits(self, principal: Any, view: Any) -> bool:
        """Whether the token holds the scope the view names (a view without one is refused)."""
        scope = getattr(view, SCOPE_ATTRIBUTE, None)
        return scope is not None and (scope == "any" or scope in principal.scopes)

    def refuse(self, status: int) -> Response:
        if status == 401:
            why = {"expired": "The token has expired.", "revoked": "The token was revoked.",
                   "awaiting_approval": "The token waits for a second IT user's approval.",
                   "owner_inactive": "The person the token acts as may no longer use govern."}
            detail = why.get(g.get("token_refusal", ""), "A valid API token is required (Authorization: Bearer ...).")
            return problem(401, detail, kind="invalid-token")
        return problem(403, "This token may not do this: its scopes or its owner's roles do not allow it.",
                       kind="forbidden")


def rate_headers(verdict: ratelimit.Verdict) -> dict[str, str]:
    """The rate-limit headers of every answer to a token (the IETF draft's names)."""
    return {"RateLimit-Limit": str(verdict.limit), "RateLimit-Remaining": str(verdict.remaining),
            "RateLimit-Reset": str(verdict.reset_in)}
