"""Secret values and metadata: their limits, validation and the payload that gets encrypted."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from govern.crypto import totp
from govern.crypto.totp import TotpFormatError, TotpParams
from govern.errors import InvalidError
from govern.vault.models import SECRET_KINDS

MAX_LABEL = 200
MAX_LOGIN = 320
MAX_URL = 500
MAX_NOTES = 4000
MAX_REASON = 500
MAX_VALUE = {"password": 1024, "api_token": 16384, "note": 20000, "totp": 2048}
MAX_RECOVERY_CODES = 100
MAX_RECOVERY_CODE = 200
# --- values and their validation --------------------------------------------------------------------


def invalid_field(field_name: str, message: str) -> InvalidError:
    """An InvalidError that puts ``message`` on the form field ``field_name``."""
    return InvalidError(message, {field_name: message})


def parse_totp(value: str) -> TotpParams:
    """Validate a base32 seed or an otpauth://totp/ URI; keep digits, period and algorithm."""
    if len(value or "") > MAX_VALUE["totp"]:
        raise invalid_field("value", "That is too long to be a 2FA seed.")
    try:
        return totp.parse(value)
    except TotpFormatError as exc:
        raise invalid_field("value", str(exc)) from None


def totp_params(payload: dict[str, Any]) -> TotpParams:
    """The parameters of a stored 2FA seed (older versions may lack some: the defaults apply)."""
    return TotpParams(str(payload["seed"]), int(payload.get("digits", 6)), int(payload.get("period", 30)),
                      str(payload.get("algorithm", "SHA1")).upper())


def payload_of(kind: str, value: str | list[str]) -> dict[str, Any]:
    """Validate a value of ``kind`` and return what gets encrypted."""
    if kind == "recovery_codes":
        items = value.splitlines() if isinstance(value, str) else list(value)
        codes = [str(c).strip() for c in items if str(c).strip()]
        if not codes:
            raise invalid_field("value", "Enter at least one recovery code, one per line.")
        if len(codes) > MAX_RECOVERY_CODES or any(len(c) > MAX_RECOVERY_CODE for c in codes):
            raise invalid_field("value", f"Up to {MAX_RECOVERY_CODES} codes of up to {MAX_RECOVERY_CODE} characters each.")
        return {"codes": [{"code": c, "used_at": None} for c in codes]}
    if not isinstance(value, str):
        raise invalid_field("value", "Enter the value as text.")
    if kind == "totp":
        params = parse_totp(value)
        # The parameters are sealed with the seed in the one encrypted value, not in a column: they
        # belong to this version (a rotation may change seed and parameters together, and an old
        # version keeps its own), they need no migration, and an edit to them is caught by the
        # envelope's authentication like an edit to the seed.
        return {"seed": params.seed, "digits": params.digits, "period": params.period, "algorithm": params.algorithm}
    if not value.strip():
        raise invalid_field("value", "Enter the value to keep in the vault.")
    if len(value) > MAX_VALUE[kind]:
        raise invalid_field("value", f"Keep the value under {MAX_VALUE[kind]} characters.")
    # Passwords and tokens are kept exactly as typed; a note may lose trailing blank space.
    return {"value": value.rstrip() if kind == "note" else value}


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The bytes that get encrypted: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _secret_strings(payload: dict[str, Any]) -> list[str]:
    if "codes" in payload:
        return [c["code"] for c in payload["codes"]]
    return [str(payload.get("seed") or payload.get("value") or "")]


@dataclass
class Metadata:
    """The non-secret fields of a secret, validated."""

    label: str
    login: str | None
    url: str | None
    notes: str | None
    token_expires_at: date | None


def check_metadata(kind: str, label: str, login: str | None, url: str | None, notes: str | None,
              token_expires_at: date | None) -> Metadata:
    """Validate the non-secret fields of a secret of ``kind``; InvalidError names every bad field."""
    label = (label or "").strip()
    errors: dict[str, str] = {}
    if not label:
        errors["label"] = "Give the secret a name, e.g. “Instagram login”."
    elif len(label) > MAX_LABEL:
        errors["label"] = f"Keep the name under {MAX_LABEL} characters."
    login = (login or "").strip() or None
    if login and len(login) > MAX_LOGIN:
        errors["login"] = f"Keep the login under {MAX_LOGIN} characters."
    url = (url or "").strip() or None
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL:
            errors["url"] = "Enter a web address starting with https:// (or leave it empty)."
    notes = (notes or "").strip() or None
    if notes and len(notes) > MAX_NOTES:
        errors["notes"] = f"Keep the notes under {MAX_NOTES} characters."
    if token_expires_at is not None and kind != "api_token":
        errors["token_expires_at"] = "Only API tokens have an expiry date."  # noqa: S105 - a message
    if errors:
        raise InvalidError(next(iter(errors.values())), errors)
    return Metadata(label, login, url, notes, token_expires_at)


def refuse_value_in_metadata(meta: Metadata, payload: dict[str, Any]) -> None:
    """Metadata is shown on ordinary pages: it must never carry the value itself."""
    fields = {"label": meta.label, "login": meta.login, "url": meta.url, "notes": meta.notes}
    for secret_text in _secret_strings(payload):
        if len(secret_text) < 6:
            continue
        for name, text in fields.items():
            if text and secret_text in text:
                raise invalid_field(name, "This field contains the secret itself; keep the value only in the value field.")


def kinds() -> Iterable[str]:
    """The kinds of secret, in display order."""
    return SECRET_KINDS
