"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, state and nonce.

Authlib makes the PKCE verifier and challenge; the code is exchanged with govern's httpx client
(Authlib's httpx integration is deprecated in favour of httpx2); joserfc (Authlib's JOSE library) checks
the id token's signature against the keys the provider publishes, then its issuer, audience,
expiry and nonce, with a bounded clock skew. Nothing here writes a code, state, nonce, token or
client secret to the audit trail or the logs.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from govern import audit
from govern.auth.models import APP_ROLES, User, UserRole
from govern.db import utcnow
from govern.directory.models import Person
from govern.directory.services import normalise_email
from govern.errors import ForbiddenError, InvalidError, NotFoundError
from govern.groups import mappings as group_mappings
from govern.groups import services as directory_groups
from govern.notifications.services import notify
from govern.scim.models import ScimIdentity
from govern.sso.models import SsoIdentity, SsoProvider, SsoSettings

#: The clock skew accepted on exp, iat and nbf (seconds).
LEEWAY_SECONDS = 60
#: How long a sign-in may spend at the provider before its state is forgotten.
PENDING_SECONDS = 600
#: How long discovery documents and key sets are kept before being read again.
DISCOVERY_TTL_SECONDS = 300
#: Signature algorithms accepted on id tokens (never "none", never HMAC with the client secret).
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]
#: amr values (RFC 8176) that mean more than a password happened at the provider.
MFA_AMR = frozenset({"mfa", "hwk", "swk", "otp", "sc", "fpt", "face", "iris", "retina", "vbm", "pop"})
#: acr values that providers use for multi-factor or phishing-resistant sign-in.
MFA_ACR = frozenset({
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor", "phr", "phrh",
    "urn:okta:loa:2fa:any", "urn:okta:loa:2fa:any:ifpossible", "possessionorinherence",
})
GENERIC_SSO_ERROR = "Single sign-on did not complete. Try again, or ask an administrator."
SCOPES = "openid email profile"


@dataclass
class SsoKit:
    """How govern talks to providers; tests swap the transport (a proxy) or the clock."""

    transport: httpx.BaseTransport | None = None
    timeout: float = 10.0

    def client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport, timeout=self.timeout, follow_redirects=False)


@dataclass
class SsoResult:
    """A completed sign-in: the user, when the provider checked a second factor (if it did), the groups."""

    user: User
    identity: SsoIdentity
    mfa_at: datetime | None
    groups: list[str]


_cache: dict[str, tuple[float, Any]] = {}


def _cached_json(kit: SsoKit, url: str) -> Any:
    hit = _cache.get(url)
    if hit is not None and time.monotonic() - hit[0] < DISCOVERY_TTL_SECONDS:
        return hit[1]
    with kit.client() as client:
        response = client.get(url)
    response.raise_for_status()
    value = response.json()
    _cache[url] = (time.monotonic(), value)
    return value


def forget_cached_metadata() -> None:
    """Drop cached discovery documents and key sets (a provider rotated its keys; tests)."""
    _cache.clear()


def discover(kit: SsoKit, provider: SsoProvider) -> dict[str, Any]:
    """The provider's metadata; its issuer must be the configured one (OpenID Discovery 4.3)."""
    metadata = _cached_json(kit, provider.issuer.rstrip("/") + "/.well-known/openid-configuration")
    if not isinstance(metadata, dict) or metadata.get("issuer") != provider.issuer:
        raise InvalidError("The provider's discovery document names another issuer.")
    return metadata


def client_secret(provider: SsoProvider) -> str:
    """The client secret, read from the environment variable the provider names."""
    secret = os.environ.get(provider.client_secret_env, "")
    if not secret:
        raise InvalidError(f"The client secret is missing: set {provider.client_secret_env}.")
    return secret


# --- configuration ----------------------------------------------------------------------------------


def create_provider(session: Session, *, actor: User | None, slug: str, name: str, issuer: str, client_id: str,
                    client_secret_env: str, allowed_domains: str = "", groups_claim: str = "groups") -> SsoProvider:
    """Add an identity provider (the secret stays in the environment; only its variable's name is stored)."""
    slug = slug.strip().lower()
    reasons: dict[str, str] = {}
    if not slug or not slug.replace("-", "").isalnum() or len(slug) > 40:
        reasons["slug"] = "Use letters, digits and dashes (at most 40)."
    if not issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        reasons["issuer"] = "The issuer must be an https:// address."
    if not client_id.strip():
        reasons["client_id"] = "Give the client id the provider issued."
    if not client_secret_env.strip().replace("_", "").isalnum():
        reasons["client_secret_env"] = "Name the environment variable that holds the client secret."  # noqa: S105 - a message
    if session.scalar(select(SsoProvider.id).where(SsoProvider.slug == slug)) is not None:
        reasons["slug"] = "Another provider already uses this name."
    if reasons:
        raise InvalidError("Check the provider's settings.", reasons=reasons)
    provider = SsoProvider(slug=slug, name=name.strip() or slug, issuer=issuer.strip(), client_id=client_id.strip(),
                           client_secret_env=client_secret_env.strip(), allowed_domains=allowed_domains.strip(),
                           groups_claim=groups_claim.strip() or "groups")
    session.add(provider)
    session.flush()
    audit.record(session, "sso.provider.created", actor=actor, target_type="sso_provider", target_id=provider.id,
                 details={"slug": slug, "issuer": provider.issuer})
    return provider


def settings_of(session: Session) -> SsoSettings:
    """The SSO requirement (a default row when none was saved)."""
    return session.get(SsoSettings, 1) or SsoSettings(id=1, required_for_all=False, required_roles="")


def set_requirement(session: Session, *, actor: User | None, required_for_all: bool, required_roles: list[str],
                    break_glass_user_id: int | None) -> SsoSettings:
    """Require SSO of everyone or of the holders of some app roles; name the break-glass admin."""
    unknown = [r for r in required_roles if r not in APP_ROLES]
    if unknown:
        raise InvalidError("Unknown app role.", reasons={"required_roles": ", ".join(unknown)})
    if break_glass_user_id is not None:
        glass = session.get(User, break_glass_user_id)
        if glass is None or not glass.is_active or "admin" not in glass.roles:
            raise InvalidError("The break-glass account must be an active admin.", reasons={"break_glass_user_id": "Choose an admin."})
    row = session.get(SsoSettings, 1)
    if row is None:
        row = SsoSettings(id=1)
        session.add(row)
    row.required_for_all = required_for_all
    row.required_roles = " ".join(sorted(set(required_roles)))
    row.break_glass_user_id = break_glass_user_id
    session.flush()
    audit.record(session, "sso.settings.changed", actor=actor, target_type="sso_settings", target_id=1,
                 details={"required_for_all": required_for_all, "required_roles": sorted(set(required_roles)),
                          "break_glass_user_id": break_glass_user_id})
    return row


def sso_required_for(session: Session, user: User) -> bool:
    """Whether this user must sign in through SSO (the break-glass admin is checked separately)."""
    settings = settings_of(session)
    return settings.required_for_all or bool(set(settings.required_roles.split()) & set(user.roles))


def check_password_allowed(session: Session, user: User) -> bool:
    """Refuse password sign-in to whoever must use SSO; returns True for a break-glass use.

    Called after the password was found right, so the refusal reveals nothing to a guesser.
    """
    if not sso_required_for(session, user):
        return False
    if settings_of(session).break_glass_user_id == user.id:
        return True
    audit.record(session, "sso.password_refused", actor=user, target_type="user", target_id=user.id, outcome="denied")
    raise ForbiddenError("Your organisation requires single sign-on: use the button for your identity provider.")


def record_break_glass(session: Session, *, user: User) -> None:
    """The break-glass admin signed in with a password: audit it and tell every other admin."""
    audit.record(session, "sso.break_glass.used", actor=user, target_type="user", target_id=user.id,
                 details={"factor": "password"})
    others = session.scalars(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == "admin", User.is_active.is_(True), User.id != user.id)
    ).all()
    notify(session, kind="security", users=others,
           title=f"{user.email} signed in with the break-glass password, bypassing single sign-on")


def enabled_providers(session: Session) -> list[SsoProvider]:
    return list(session.scalars(select(SsoProvider).where(SsoProvider.enabled.is_(True)).order_by(SsoProvider.name)))


def provider_by_slug(session: Session, slug: str) -> SsoProvider:
    provider = session.scalar(select(SsoProvider).where(SsoProvider.slug == slug, SsoProvider.enabled.is_(True)))
    if provider is None:
        raise NotFoundError("No such identity provider.")
    return provider


# --- the flow -------------------------------------------------------------------------------------


def begin(kit: SsoKit, provider: SsoProvider, *, redirect_uri: str, reauth: bool = False) -> tuple[str, dict[str, Any]]:
    """The authorization URL to send the browser to, and what the session keeps until the callback."""
    metadata = discover(kit, provider)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), generate_token(64)
    params = {
        "response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri,
        "scope": SCOPES, "state": state, "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    if reauth:
        params.update(prompt="login", max_age="0")
    pending = {"provider_id": provider.id, "state": state, "nonce": nonce, "verifier": verifier,
               "at": time.time(), "reauth": reauth}
    return metadata["authorization_endpoint"] + "?" + urlencode(params), pending


def _fail(session: Session, provider: SsoProvider, reason: str, *, user: User | None = None) -> InvalidError:
    audit.record(session, "sso.login.failed", actor=user, target_type="sso_provider", target_id=provider.id,
                 outcome="failure", details={"reason": reason, "provider": provider.slug})
    return InvalidError(GENERIC_SSO_ERROR)


def complete(session: Session, kit: SsoKit, provider: SsoProvider, *, pending: Mapping[str, Any] | None,
             args: Mapping[str, str], redirect_uri: str) -> SsoResult:
    """Check the callback, exchange the code, verify the id token and find the person's user."""
    if not pending or pending.get("provider_id") != provider.id or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        raise _fail(session, provider, "no_pending_sign_in")
    if not secrets.compare_digest(str(args.get("state", "")), str(pending.get("state", ""))):
        raise _fail(session, provider, "state_mismatch")
    if args.get("error"):
        raise _fail(session, provider, "provider_error")
    code = args.get("code")
    if not code:
        raise _fail(session, provider, "no_code")
    metadata = discover(kit, provider)
    try:
        # client_secret_basic (RFC 6749 2.3.1: both parts form-encoded first), PKCE's verifier in the body.
        credentials = (quote(provider.client_id, safe=""), quote(client_secret(provider), safe=""))
        with kit.client() as client:
            response = client.post(metadata["token_endpoint"], auth=credentials, headers={"Accept": "application/json"},
                                   data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                         "code_verifier": pending["verifier"]})
        response.raise_for_status()
        token = response.json()
    except Exception:  # noqa: BLE001 - the provider refused or could not be reached; the reason is not shown
        raise _fail(session, provider, "code_exchange_failed") from None
    claims = _verify_id_token(session, kit, provider, metadata, str(token.get("id_token") or ""), str(pending["nonce"]))
    return _link(session, provider, claims, reauth=bool(pending.get("reauth")))


def _verify_id_token(session: Session, kit: SsoKit, provider: SsoProvider, metadata: Mapping[str, Any],
                     id_token: str, nonce: str) -> dict[str, Any]:
    if not id_token:
        raise _fail(session, provider, "no_id_token")
    try:
        keys = KeySet.import_key_set(_cached_json(kit, metadata["jwks_uri"]))
        decoded = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, KeyError, httpx.HTTPError):
        raise _fail(session, provider, "bad_signature") from None
    claims = dict(decoded.claims)
    registry = jwt.JWTClaimsRegistry(
        now=int(utcnow().timestamp()), leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True}, iat={"essential": True}, sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        reason = {"iss": "wrong_issuer", "aud": "wrong_audience", "exp": "expired"}.get(getattr(exc, "claim", ""), "invalid_claims")
        raise _fail(session, provider, reason) from None
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != provider.client_id:
        raise _fail(session, provider, "wrong_audience")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
        raise _fail(session, provider, "nonce_mismatch")
    return claims


def _mfa_at(claims: Mapping[str, Any]) -> datetime | None:
    """When the provider checked a second factor, if amr or acr say it did."""
    amr = claims.get("amr") or []
    acr = claims.get("acr")
    if not (isinstance(amr, list) and MFA_AMR & {str(v) for v in amr}) and acr not in MFA_ACR:
        return None
    stamp = claims.get("auth_time") or claims.get("iat")
    try:
        return datetime.fromtimestamp(int(str(stamp)), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _groups(provider: SsoProvider, claims: Mapping[str, Any]) -> list[str]:
    raw = claims.get(provider.groups_claim) or []
    if isinstance(raw, str):
        raw = [raw]
    return sorted({str(g)[:200] for g in raw if isinstance(g, (str, int))}) if isinstance(raw, list) else []


def _link(session: Session, provider: SsoProvider, claims: Mapping[str, Any], *, reauth: bool) -> SsoResult:
    subject = str(claims["sub"])[:255]
    identity = session.scalar(select(SsoIdentity).where(SsoIdentity.provider_id == provider.id, SsoIdentity.subject == subject))
    user = session.get(User, identity.user_id) if identity is not None else _first_link_user(session, provider, claims)
    if user is None or not user.is_active or user.person.status != "active":
        raise _fail(session, provider, "person_not_active" if user is not None else "no_user", user=user)
    now = utcnow()
    groups = _groups(provider, claims)
    if identity is None:
        identity = SsoIdentity(provider_id=provider.id, subject=subject, user_id=user.id, groups_json="[]")
        session.add(identity)
        session.flush()
        audit.record(session, "sso.identity.linked", actor=user, target_type="user", target_id=user.id,
                     details={"provider": provider.slug})
    before = set(json.loads(identity.groups_json or "[]"))
    if before != set(groups):
        audit.record(session, "sso.groups.changed", actor=user, target_type="user", target_id=user.id,
                     details={"provider": provider.slug, "added": sorted(set(groups) - before),
                              "removed": sorted(before - set(groups))})
        identity.groups_json = json.dumps(groups)
    # The claim decides this provider's memberships of the groups SCIM (or an admin) made; never creates one.
    directory_groups.sync_claim(session, actor=user, provider_slug=provider.slug, person=user.person, claim_values=groups)
    # A mapping's app role may have waited for this person's first login.
    group_mappings.reconcile_person(session, actor=user, person_id=user.person_id)
    identity.last_login_at = now
    mfa_at = _mfa_at(claims)
    audit.record(session, "sso.reauth.succeeded" if reauth else "sso.login.succeeded", actor=user, target_type="user",
                 target_id=user.id, details={"provider": provider.slug, "provider_mfa": mfa_at is not None})
    session.flush()
    return SsoResult(user=user, identity=identity, mfa_at=mfa_at, groups=groups)


def _first_link_user(session: Session, provider: SsoProvider, claims: Mapping[str, Any]) -> User | None:
    """The user of the person with this verified email (or SCIM externalId), in an allowed domain."""
    email = normalise_email(str(claims.get("email") or ""))
    if not email or claims.get("email_verified") is not True:
        raise _fail(session, provider, "email_not_verified")
    domain = email.rpartition("@")[2]
    if provider.domains and domain not in provider.domains:
        raise _fail(session, provider, "domain_not_allowed")
    person = session.scalar(select(Person).where(Person.email == email))
    if person is None:
        person = _person_by_external_id(session, claims)
    if person is None:
        raise _fail(session, provider, "unknown_email")
    user = session.scalar(select(User).where(User.person_id == person.id))
    if user is None:
        user = _login_for(session, provider, person)
    return user


def _login_for(session: Session, provider: SsoProvider, person: Person) -> User:
    """A login created at the first sign-in (just in time) for an active person who has none: plain staff, no
    app role (an admin grants those), no password or authenticator (it signs in through the provider)."""
    if person.status != "active":
        raise _fail(session, provider, "person_not_active")
    email = normalise_email(person.email or "")
    if not email or session.scalar(select(User.id).where(User.email == email)) is not None:
        raise _fail(session, provider, "no_user")
    user = User(person=person, email=email)
    session.add(user)
    session.flush()
    audit.record(session, "sso.user.created", actor=user, target_type="user", target_id=user.id,
                 details={"provider": provider.slug, "person_id": person.id})
    return user


def _person_by_external_id(session: Session, claims: Mapping[str, Any]) -> Person | None:
    """The person SCIM provisioned under this externalId: Okta's user id is the id token's ``sub``,
    Entra ID's object id its ``oid`` (when the SCIM mapping sends objectId as externalId)."""
    candidates = [str(claims[name]) for name in ("sub", "oid") if claims.get(name)]
    if not candidates:
        return None
    return session.scalar(select(Person).join(ScimIdentity, ScimIdentity.person_id == Person.id)
                          .where(ScimIdentity.external_id.in_(candidates)).limit(1))


def mfa_is_recent(mfa_at: datetime | None, window: timedelta) -> bool:
    """Whether the provider's second factor is recent enough to count as govern's step-up."""
    return mfa_at is not None and utcnow() - mfa_at <= window


def end_session_url(kit: SsoKit, provider: SsoProvider, *, post_logout_redirect_uri: str) -> str | None:
    """RP-initiated logout at the provider, when its metadata offers an end_session_endpoint."""
    try:
        endpoint = discover(kit, provider).get("end_session_endpoint")
    except (InvalidError, httpx.HTTPError, ValueError):
        return None
    if not endpoint:
        return None
    return str(endpoint) + "?" + urlencode({"client_id": provider.client_id,
                                            "post_logout_redirect_uri": post_logout_redirect_uri})
