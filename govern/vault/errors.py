"""The vault's own errors: sealed, step-up needed, a value that does not decrypt."""

from __future__ import annotations

from govern.errors import GovernError


class VaultSealedError(GovernError):
    """The vault has no valid keyring; the operator must supply one."""

    status_code = 503


class StepUpRequiredError(GovernError):
    """A second factor verified within the last 5 minutes is needed."""

    status_code = 401


class SecretDecryptError(GovernError):
    """A stored value does not decrypt (tampered row or a missing key); the attempt is audited."""

    status_code = 409


