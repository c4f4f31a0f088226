"""Settings: defaults, GOVERN_* environment variables and files in the instance folder.

Bad configuration fails fast with one line that says what to change (ConfigError).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context

from govern.crypto.keyring import write_private_file
from govern.timezones import DEFAULT_ZONE, is_zone_name

ENVIRONMENTS = ("development", "production", "testing")

#: Secret keys that ship in tutorials and defaults; production refuses them.
KNOWN_DEV_SECRET_KEYS = frozenset({"dev", "development", "secret", "changeme", "change-me", "test"})

#: ASVS 5.0 Appendix C floor for argon2id with t=2.
ARGON2_MIN_TIME_COST = 2
ARGON2_MIN_MEMORY_KIB = 19456


#: Where `scripts/serve` (gunicorn) listens and how many workers it runs, unless GOVERN_BIND / GOVERN_WORKERS say.
DEFAULT_BIND = "127.0.0.1:5000"
DEFAULT_WORKERS = 2


class ConfigError(Exception):
    """The configuration cannot work; the message says what to change."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"GOVERN_{name}")
    return default if value is None or value == "" else value


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"GOVERN_{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"GOVERN_{name} must be at least {minimum}, got {value}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"GOVERN_{name} must be true or false, got {raw!r}")


def bind_address() -> str:
    """GOVERN_BIND: HOST:PORT (or gunicorn's unix:/path) the server listens on."""
    bind = (_env("BIND") or DEFAULT_BIND).strip()
    base_url_for_bind(bind)  # refuses a malformed address
    return bind


def worker_count() -> int:
    """GOVERN_WORKERS: how many gunicorn worker processes serve requests."""
    return _int("WORKERS", DEFAULT_WORKERS, minimum=1)


def base_url() -> str:
    """The address links in emails start with: the app's BASE_URL, or "" outside an app context."""
    return str(current_app.config.get("BASE_URL", "")) if has_app_context() else ""


def base_url_for_bind(bind: str) -> str:
    """The address users open when govern listens on ``bind`` (an unspecified host means this machine)."""
    if bind.startswith(("unix:", "fd://")):
        return "http://localhost"  # behind a proxy: GOVERN_BASE_URL names the public address
    host, sep, port = bind.rpartition(":")
    if bind.startswith("[") and "]" in bind:  # [::1]:5000
        host, sep, port = bind.partition("]")[0] + "]", ":", bind.partition("]:")[2]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"GOVERN_BIND must be HOST:PORT (e.g. 127.0.0.1:5000) or unix:/path, got {bind!r}")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)  # noqa: S104 - reading, not binding
    return f"http://{host}:{int(port)}"


def default_instance_path() -> Path:
    """The instance folder: GOVERN_INSTANCE_PATH, else ./instance."""
    return Path(_env("INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration from defaults, the environment and ``overrides``."""
    overrides = dict(overrides or {})
    env = overrides.get("ENV") or _env("ENV", "development")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"GOVERN_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env!r}")
    instance = Path(overrides.get("INSTANCE_PATH") or default_instance_path())
    is_production = env == "production"

    config: dict[str, Any] = {
        "ENV": env,
        "INSTANCE_PATH": instance,
        "DEBUG": _bool("DEBUG", False),
        "TESTING": env == "testing",
        "DATABASE_URL": _env("DATABASE_URL", f"sqlite:///{instance / 'govern.db'}"),
        "SECRET_KEY": _env("SECRET_KEY"),
        "SECRET_KEY_FALLBACKS": [k for k in (_env("SECRET_KEY_FALLBACKS") or "").split(",") if k],
        "SECRET_KEY_FILE": Path(_env("SECRET_KEY_FILE") or instance / "secret_key"),
        "VAULT_KEY_FILE": Path(_env("VAULT_KEY_FILE") or instance / "vault.key"),
        "VAULT_KEYRING_JSON": _env("VAULT_KEYRING"),
        # The audit trail's HMAC chain keys and checkpoint signing keys (outside the database).
        "AUDIT_KEY_FILE": Path(_env("AUDIT_KEY_FILE") or instance / "audit.key"),
        "AUDIT_KEYS_JSON": _env("AUDIT_KEYS"),
        # A sink whose oldest unshipped event is older than this makes the admins be told.
        "AUDIT_SINK_MAX_LAG_MINUTES": _int("AUDIT_SINK_MAX_LAG_MINUTES", 30, minimum=1),
        #: Retired secret versions are kept this long for rollback, then crypto-shredded.
        "VAULT_RETENTION_DAYS": _int("VAULT_RETENTION_DAYS", 30, minimum=1),
        "REDIS_URL": _env("REDIS_URL"),
        # Requests a minute one API token may send, counted across every worker (then 429 and Retry-After).
        "API_RATE_LIMIT": _int("API_RATE_LIMIT", 600, minimum=1),
        # PostgreSQL: how long a statement may wait for a lock, or run, before it fails (0 = no limit).
        "DB_LOCK_TIMEOUT_SECONDS": _int("DB_LOCK_TIMEOUT_SECONDS", 10),
        "DB_STATEMENT_TIMEOUT_SECONDS": _int("DB_STATEMENT_TIMEOUT_SECONDS", 120),
        "PROXY_HOPS": _int("PROXY_HOPS", 0),
        # The address in setup links and emails: GOVERN_BASE_URL, else where GOVERN_BIND listens.
        "BASE_URL": (_env("BASE_URL") or base_url_for_bind(bind_address())).rstrip("/"),
        # Passkeys are bound to this domain (default: BASE_URL's host) and to BASE_URL's origin.
        "WEBAUTHN_RP_ID": _env("WEBAUTHN_RP_ID"),
        "SESSION_IDLE_TIMEOUT": timedelta(minutes=_int("SESSION_IDLE_MINUTES", 30, minimum=1)),
        "SESSION_ABSOLUTE_TIMEOUT": timedelta(hours=_int("SESSION_MAX_HOURS", 12, minimum=1)),
        "FRESH_MFA_WINDOW": timedelta(minutes=5),
        "SETUP_TOKEN_TTL": timedelta(hours=_int("SETUP_TOKEN_HOURS", 72, minimum=1)),
        "LOGIN_MAX_FAILURES": _int("LOGIN_MAX_FAILURES", 5, minimum=1),
        "LOGIN_IP_MAX_FAILURES": _int("LOGIN_IP_MAX_FAILURES", 20, minimum=1),
        "LOGIN_LOCKOUT_SECONDS": _int("LOGIN_LOCKOUT_SECONDS", 60, minimum=1),
        "LOGIN_LOCKOUT_MAX_SECONDS": _int("LOGIN_LOCKOUT_MAX_SECONDS", 3600, minimum=1),
        "ARGON2_TIME_COST": _int("ARGON2_TIME_COST", 3, minimum=1),
        "ARGON2_MEMORY_KIB": _int("ARGON2_MEMORY_KIB", 65536, minimum=1),
        "SMTP_HOST": _env("SMTP_HOST"),
        "SMTP_PORT": _int("SMTP_PORT", 25, minimum=1),
        "SMTP_USERNAME": _env("SMTP_USERNAME"),
        "SMTP_PASSWORD": _env("SMTP_PASSWORD"),
        "SMTP_STARTTLS": _bool("SMTP_STARTTLS", False),
        "SMTP_FROM": _env("SMTP_FROM", "govern@localhost"),
        #: How long a sender's claim on an outbox email holds: a sender killed mid-send leaves its email
        #: unsent until then (longer than any one SMTP exchange, so a slow send is never sent twice).
        "OUTBOX_CLAIM_SECONDS": _int("OUTBOX_CLAIM_SECONDS", 600, minimum=60),
        "SMTP_CA_FILE": _env("SMTP_CA_FILE"),
        "OFFBOARDING_DEADLINE_HOURS": _int("OFFBOARDING_DEADLINE_HOURS", 24, minimum=1),
        "OFFBOARDING_IMMEDIATE_DEADLINE_HOURS": _int("OFFBOARDING_IMMEDIATE_DEADLINE_HOURS", 1, minimum=1),
        "OFFBOARDING_LAST_DAY_HOUR": _int("OFFBOARDING_LAST_DAY_HOUR", 17),
        "OFFBOARDING_ESCALATION_HOURS": _int("OFFBOARDING_ESCALATION_HOURS", 24, minimum=1),
        # Scheduled backups (the jobs step "backup.make"): where, how often, how many kept, encrypted to what.
        "BACKUP_DIR": _env("BACKUP_DIR"),
        "BACKUP_EVERY_HOURS": _int("BACKUP_EVERY_HOURS", 24, minimum=1),
        "BACKUP_KEEP": _int("BACKUP_KEEP", 7, minimum=1),
        "BACKUP_RECIPIENTS": [r.strip() for r in (_env("BACKUP_RECIPIENTS") or "").split(",") if r.strip()],
        "BACKUP_PASSPHRASE_FILE": _env("BACKUP_PASSPHRASE_FILE"),
        # Platform connectors: where each platform's API answers (a test or a proxy points them elsewhere).
        "META_GRAPH_URL": (_env("META_GRAPH_URL") or "https://graph.facebook.com/v21.0").rstrip("/"),
        "LINKEDIN_API_URL": (_env("LINKEDIN_API_URL") or "https://api.linkedin.com").rstrip("/"),
        "LINKEDIN_VERSION": (_env("LINKEDIN_VERSION") or "202411").strip(),
        "TIKTOK_API_URL": (_env("TIKTOK_API_URL") or "https://business-api.tiktok.com").rstrip("/"),
        # How long the "Sync now" button reads before it leaves the rest to the next jobs run (under the worker timeout).
        "CONNECTORS_WEB_SYNC_SECONDS": _int("CONNECTORS_WEB_SYNC_SECONDS", 20, minimum=1),
        "REQUIRE_CURRENT_SCHEMA": True,
        "ORGANISATION_NAME": _env("ORGANISATION_NAME"),
        # The zone pages show times in for users who chose none (an IANA name such as Europe/Paris).
        "TIME_ZONE": (_env("TIME_ZONE") or DEFAULT_ZONE).strip(),
        # Rotation: could_have_seen (every secret a leaver could have revealed) or revealed (only what they saw).
        "ROTATION_EXPOSURE_MODE": (_env("ROTATION_EXPOSURE_MODE") or "could_have_seen").strip().lower(),
        # Flask and Flask-WTF settings that follow from the above.
        "WTF_CSRF_TIME_LIMIT": None,  # tokens live as long as the server-side session
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "PROPAGATE_EXCEPTIONS": False,
        "TRAP_HTTP_EXCEPTIONS": False,
    }
    config.update(overrides)
    config["INSTANCE_PATH"] = Path(config["INSTANCE_PATH"])
    config["IS_PRODUCTION"] = is_production
    _resolve_secret_key(config, create=not is_production)
    validate(config)
    return config


def _resolve_secret_key(config: dict[str, Any], *, create: bool) -> None:
    """Take the secret key from the environment, else the instance file (created outside production)."""
    if config.get("SECRET_KEY"):
        return
    path: Path = config["SECRET_KEY_FILE"]
    if path.exists():
        config["SECRET_KEY"] = path.read_text(encoding="utf-8").strip()
    elif create:
        key = secrets.token_urlsafe(48)
        write_private_file(path, key + "\n")
        config["SECRET_KEY"] = key


def validate(config: Mapping[str, Any]) -> None:
    """Refuse configurations that would run insecurely or not at all."""
    if config["ARGON2_TIME_COST"] < ARGON2_MIN_TIME_COST or config["ARGON2_MEMORY_KIB"] < ARGON2_MIN_MEMORY_KIB:
        raise ConfigError(
            "argon2id parameters below the ASVS floor (t>=2, m>=19456 KiB): "
            "raise GOVERN_ARGON2_TIME_COST / GOVERN_ARGON2_MEMORY_KIB"
        )
    if not 0 <= config.get("OFFBOARDING_LAST_DAY_HOUR", 17) <= 23:
        raise ConfigError("GOVERN_OFFBOARDING_LAST_DAY_HOUR is an hour of the day, 0 to 23 (UTC)")
    key = config.get("SECRET_KEY")
    if config["IS_PRODUCTION"]:
        if config["DEBUG"] or os.environ.get("FLASK_DEBUG") in {"1", "true", "True"}:
            raise ConfigError("production refuses to start with debug on: unset GOVERN_DEBUG and FLASK_DEBUG")
        if not key:
            raise ConfigError("production needs a secret key: set GOVERN_SECRET_KEY or GOVERN_SECRET_KEY_FILE")
        if key.lower() in KNOWN_DEV_SECRET_KEYS or len(key) < 32:
            raise ConfigError(
                "production refuses the development secret key: set GOVERN_SECRET_KEY to 32+ random characters"
            )
        if not config.get("VAULT_KEYRING_JSON") and not Path(config["VAULT_KEY_FILE"]).exists():
            raise ConfigError(
                f"production needs the vault key file: none at {config['VAULT_KEY_FILE']} "
                "(create it with `govern keys init` or set GOVERN_VAULT_KEYRING)"
            )
        if not config.get("AUDIT_KEYS_JSON") and not Path(config["AUDIT_KEY_FILE"]).exists():
            raise ConfigError(
                f"production needs the audit key file: none at {config['AUDIT_KEY_FILE']} "
                "(create it with `govern audit keys init` or `govern init`, or set GOVERN_AUDIT_KEYS)"
            )
    if config.get("ROTATION_EXPOSURE_MODE", "could_have_seen") not in ("could_have_seen", "revealed"):
        raise ConfigError("GOVERN_ROTATION_EXPOSURE_MODE must be could_have_seen or revealed")
    if not is_zone_name(config.get("TIME_ZONE", DEFAULT_ZONE)):
        raise ConfigError(f"GOVERN_TIME_ZONE must be an IANA time zone such as Europe/Paris or UTC, got {config['TIME_ZONE']!r}")
    if not key:
        raise ConfigError("no secret key: set GOVERN_SECRET_KEY or create the instance folder with `govern init`")
    if config.get("VAULT_KEYRING_JSON") and key in config["VAULT_KEYRING_JSON"]:
        raise ConfigError("the secret key and the vault keyring must be different keys")
