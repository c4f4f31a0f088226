"""The configuration the auth services are handed by create_app: hashing, MFA box, throttling."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from govern.auth.passwords import PasswordHashing
from govern.auth.throttle import ThrottlePolicy, ThrottleStore
from govern.crypto.secretbox import SecretBox


@dataclass
class AuthKit:
    """Everything the auth services need that comes from configuration (injected by create_app)."""

    hashing: PasswordHashing
    mfa_box: SecretBox
    throttle: ThrottleStore
    account_policy: ThrottlePolicy
    ip_policy: ThrottlePolicy
    setup_token_ttl: timedelta
    issuer: str
    #: GOVERN_ORGANISATION_NAME: refused in passwords as a context word.
    organisation_name: str = ""
