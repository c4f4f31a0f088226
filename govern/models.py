"""Imports every model module so that Base.metadata knows every table (Alembic, tests)."""

from govern.accounts import models as accounts_models
from govern.audit import models as audit_models
from govern.auth import models as auth_models
from govern.directory import models as directory_models
from govern.grants import models as grants_models
from govern.offboarding import models as offboarding_models
from govern.policies import models as policies_models
from govern.reviews import models as reviews_models
from govern.scim import models as scim_models

__all__ = [
    "accounts_models", "audit_models", "auth_models", "directory_models", "grants_models",
    "offboarding_models", "policies_models", "reviews_models", "scim_models",
]
