"""Imports every model module so that Base.metadata knows every table (Alembic, tests)."""

from govern.accounts import models as accounts_models
from govern.api import models as api_models
from govern.audit import models as audit_models
from govern.auth import models as auth_models
from govern.backup import models as backup_models
from govern.connectors import models as connectors_models
from govern.directory import models as directory_models
from govern.grants import models as grants_models
from govern.groups import models as groups_models
from govern.incidents import models as incidents_models
from govern.jobs import models as jobs_models
from govern.notifications import models as notifications_models
from govern.offboarding import models as offboarding_models
from govern.policies import models as policies_models
from govern.reviews import models as reviews_models
from govern.rotation import models as rotation_models
from govern.scim import models as scim_models
from govern.shipping import models as shipping_models
from govern.sso import models as sso_models
from govern.vault import models as vault_models
from govern.vault import rule_models as vault_rule_models
from govern.webhooks import models as webhooks_models

__all__ = [
    "accounts_models", "audit_models", "auth_models", "directory_models", "grants_models",
    "policies_models", "reviews_models", "vault_models", "jobs_models", "notifications_models",
    "vault_rule_models", "rotation_models", "incidents_models", "offboarding_models", "scim_models",
    "backup_models", "shipping_models", "webhooks_models", "api_models", "connectors_models", "sso_models",
    "groups_models",
]
