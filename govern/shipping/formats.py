"""What a shipped audit event looks like: govern's own record, an RFC 5424 syslog line (its message
the record as JSON, or a CEF line for ArcSight-style collectors), and an OCSF-shaped JSON object.

Every shape carries the event's id, hash, previous hash and key id, so a receiver can check the
chain itself and tell a duplicate (the same id twice, after a crash) from a new event.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from govern.audit.models import AuditCheckpoint, AuditEvent
from govern.crypto.auditkeys import AuditKeys

#: RFC 5424: facility 13 is "log audit"; severity notice (5) for a success, warning (4) otherwise.
FACILITY_LOG_AUDIT = 13
#: govern's private enterprise number for structured data is not registered: 32473 is the number
#: RFC 5612 reserves for documentation and examples.
SD_ID = "govern@32473"
OCSF_VERSION = "1.3.0"


def _version() -> str:
    try:
        return metadata.version("govern")
    except metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()
HOSTNAME = socket.gethostname()[:255] or "-"


def event_record(event: AuditEvent, sentence: str | None = None) -> dict[str, Any]:
    """govern's own record of an event: every hashed field exactly as hashed, and the link."""
    return {
        "type": "event",
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(timespec="microseconds"),
        "actor_user_id": event.actor_user_id,
        "actor_label": event.actor_label,
        "ip": event.ip,
        "session_ref": event.session_ref,
        "request_id": event.request_id,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "outcome": event.outcome,
        "details": json.loads(event.details_json or "{}"),
        "details_json": event.details_json,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "key_id": event.key_id,
        "sentence": sentence,
    }


def checkpoint_record(checkpoint: AuditCheckpoint, keys: AuditKeys | None) -> dict[str, Any]:
    """A signed checkpoint, with the public key that verifies it (the receiver pins it)."""
    public = keys.public_key(checkpoint.key_id) if keys else None
    return {
        "type": "checkpoint",
        "id": checkpoint.id,
        "event_id": checkpoint.event_id,
        "event_hash": checkpoint.event_hash,
        "created_at": checkpoint.created_at.isoformat(),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
        "public_key_pem": public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode() if public else None,
    }


# --- syslog --------------------------------------------------------------------------------------


def _sd_value(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(text: str, limit: int) -> str:
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in text)
    return cleaned[:limit] or "-"


def _timestamp(moment: str) -> str:
    # RFC 5424 TIMESTAMP: RFC 3339 with at most 6 fractional digits; "+00:00" is written "Z".
    return moment.replace("+00:00", "Z")


def syslog_line(record: Mapping[str, Any], *, message: str) -> bytes:
    """One RFC 5424 line: header, structured data with the chain fields, then ``message``."""
    if record["type"] == "checkpoint":
        pri, msgid = FACILITY_LOG_AUDIT * 8 + 5, "checkpoint"
        sd = (f'[{SD_ID} checkpoint="{record["id"]}" event="{record["event_id"]}" '
              f'hash="{_sd_value(record["event_hash"])}" key="{_sd_value(record["key_id"])}"]')
        stamp = _timestamp(record["created_at"])
    else:
        pri = FACILITY_LOG_AUDIT * 8 + (5 if record["outcome"] == "success" else 4)
        msgid = _printable(record["action"], 32)
        sd = (f'[{SD_ID} id="{record["id"]}" hash="{_sd_value(record["hash"])}" prev="{_sd_value(record["prev_hash"])}" '
              f'key="{_sd_value(record["key_id"])}" outcome="{_sd_value(record["outcome"])}"]')
        stamp = _timestamp(record["occurred_at"])
    header = f"<{pri}>1 {stamp} {_printable(HOSTNAME, 255)} govern - {msgid} {sd} "
    return header.encode() + message.encode()


def json_message(record: Mapping[str, Any]) -> str:
    """The record as one line of JSON (no newline inside, whatever the details hold)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def _cef_header(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(text: object) -> str:
    return (str(text).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n"))


def cef_message(record: Mapping[str, Any]) -> str:
    """A CEF:0 line (ArcSight's Common Event Format) for an event or a checkpoint."""
    if record["type"] == "checkpoint":
        extension = {"rt": record["created_at"], "externalId": f"checkpoint-{record['id']}",
                     "cs1Label": "eventHash", "cs1": record["event_hash"], "cs2Label": "signature",
                     "cs2": record["signature"], "cn1Label": "eventId", "cn1": record["event_id"]}
        name, signature_id, severity = "audit chain checkpoint", "audit.checkpoint", 3
    else:
        extension = {"rt": record["occurred_at"], "externalId": record["id"], "act": record["action"],
                     "suser": record["actor_label"], "src": record["ip"], "outcome": record["outcome"],
                     "cs1Label": "hash", "cs1": record["hash"], "cs2Label": "prevHash", "cs2": record["prev_hash"],
                     "cs3Label": "target", "cs3": f"{record['target_type']}:{record['target_id']}",
                     "cs4Label": "keyId", "cs4": record["key_id"]}
        name = record.get("sentence") or record["action"]
        signature_id, severity = record["action"], 3 if record["outcome"] == "success" else 6
    ext = " ".join(f"{key}={_cef_value(value)}" for key, value in extension.items() if value is not None)
    return (f"CEF:0|govern|govern|{_cef_header(VERSION)}|{_cef_header(signature_id)}|{_cef_header(name)}|"
            f"{severity}|{ext}")


def frame(line: bytes) -> bytes:
    """RFC 5425 / 6587 octet counting: the length, a space, the message (no newline needed)."""
    return f"{len(line)} ".encode() + line


# --- OCSF -----------------------------------------------------------------------------------------

#: (class_uid, class_name, category_uid) by the first part of the action code.
_OCSF_CLASSES = {
    "auth": (3002, "Authentication", 3),
    "user": (3001, "Account Change", 3),
    "grant": (3001, "Account Change", 3),
    "person": (3001, "Account Change", 3),
    "scim": (3001, "Account Change", 3),
}
_API_ACTIVITY = (6003, "API Activity", 6)


def _epoch_ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def ocsf_object(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record shaped after OCSF (API Activity, Account Change or Authentication); govern's own
    fields are kept whole under ``unmapped``."""
    if record["type"] == "checkpoint":
        return {"class_uid": 6003, "class_name": "API Activity", "category_uid": 6, "activity_id": 99,
                "activity_name": "audit.checkpoint", "time": _epoch_ms(record["created_at"]), "severity_id": 1,
                "metadata": {"version": OCSF_VERSION, "uid": f"checkpoint-{record['id']}",
                             "product": {"name": "govern", "vendor_name": "govern", "version": VERSION}},
                "unmapped": dict(record)}
    class_uid, class_name, category_uid = _OCSF_CLASSES.get(record["action"].split(".", 1)[0], _API_ACTIVITY)
    success = record["outcome"] == "success"
    shaped: dict[str, Any] = {
        "class_uid": class_uid, "class_name": class_name, "category_uid": category_uid,
        "type_uid": class_uid * 100 + 99, "activity_id": 99, "activity_name": record["action"],
        "time": _epoch_ms(record["occurred_at"]), "severity_id": 1 if success else 3,
        "status": "Success" if success else "Failure", "status_id": 1 if success else 2,
        "status_detail": record["outcome"], "message": record.get("sentence") or record["action"],
        "actor": {"user": {"name": record["actor_label"],
                           "uid": None if record["actor_user_id"] is None else str(record["actor_user_id"])},
                  "session": {"uid": record["session_ref"]} if record["session_ref"] else None},
        "metadata": {"version": OCSF_VERSION, "uid": str(record["id"]), "correlation_uid": record["request_id"],
                     "log_name": "audit", "product": {"name": "govern", "vendor_name": "govern", "version": VERSION}},
        "unmapped": dict(record),
    }
    if record["ip"]:
        shaped["src_endpoint"] = {"ip": record["ip"]}
    if record["target_type"]:
        shaped["resources"] = [{"type": record["target_type"], "uid": record["target_id"]}]
    return shaped
