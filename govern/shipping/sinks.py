"""Sinks an admin configures: validated, their signing secret sealed, every change audited."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govern import audit
from govern.audit.models import AuditChainHead, AuditEvent
from govern.audit.services import Actor
from govern.crypto.secretbox import SecretBox, derive_key
from govern.db import utcnow
from govern.errors import InvalidError, NotFoundError
from govern.shipping.models import AuditSink
from govern.shipping.transports import new_signing_secret

SECRET_PURPOSE = "govern/shipping.sink_secret/v1"  # noqa: S105 (a key-derivation label)
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def secret_box(secret_keys: Sequence[str]) -> SecretBox:
    """The box that seals HTTPS sinks' signing secrets (a key derived from SECRET_KEY and its fallbacks)."""
    return SecretBox([derive_key(key.encode(), SECRET_PURPOSE) for key in secret_keys])


def _context(sink_id: int) -> bytes:
    return f"audit_sink:{sink_id}".encode()


@dataclass(frozen=True)
class SinkInput:
    """What the form or the CLI gives to create a sink."""

    name: str
    kind: str
    host: str = ""
    port: int | None = None
    tls: bool = False
    ca_file: str = ""
    line_format: str = "rfc5424"
    url: str = ""
    sign: bool = True


def _check(data: SinkInput, *, allow_plain_loopback: bool) -> tuple[str, dict[str, Any]]:
    errors: dict[str, str] = {}
    name = data.name.strip()
    if not name or len(name) > 80:
        errors["name"] = "Give the sink a name of 1 to 80 characters."
    settings: dict[str, Any] = {}
    if data.ca_file.strip():
        ca = Path(data.ca_file.strip())
        if not ca.is_file():
            errors["ca_file"] = "No file there: give the path of a PEM file of the receiver's CA on this server."
        settings["ca_file"] = str(ca)
    if data.kind == "syslog":
        host = data.host.strip()
        if not host or any(c.isspace() for c in host) or len(host) > 255:
            errors["host"] = "Give the syslog receiver's host name or address."
        if data.port is None or not 1 <= data.port <= 65535:
            errors["port"] = "A port is a number from 1 to 65535 (6514 for syslog over TLS, 514 or 601 without)."
        if data.line_format not in ("rfc5424", "cef"):
            errors["line_format"] = "Choose RFC 5424 (JSON message) or CEF."
        settings.update(host=host, port=data.port, tls=bool(data.tls))
        fmt = data.line_format
    elif data.kind == "https":
        url = data.url.strip()
        parts = urlsplit(url)
        loopback = (parts.hostname or "") in _LOOPBACK
        if parts.scheme not in ("https", "http") or not parts.hostname:
            errors["url"] = "Give the receiver's address, starting with https://."
        elif parts.scheme == "http" and not (loopback and allow_plain_loopback):
            errors["url"] = "The address must start with https:// (events are sent over TLS)."
        elif parts.username or parts.password:
            errors["url"] = "Put no user name or password in the address; the batches are signed instead."
        settings.update(url=url)
        fmt = "ocsf"
    else:
        errors["kind"] = "Choose syslog or HTTPS."
        fmt = "rfc5424"
    if errors:
        raise InvalidError("The sink was not added: correct the fields below.", errors)
    return fmt, settings


def create_sink(session: Session, *, actor: Actor | None, data: SinkInput, box: SecretBox,
                allow_plain_loopback: bool = False) -> tuple[AuditSink, str | None]:
    """Add a sink that starts at the current head (no backfill); returns it and its signing secret, shown once."""
    fmt, settings = _check(data, allow_plain_loopback=allow_plain_loopback)
    if session.scalar(select(AuditSink.id).where(AuditSink.name == data.name.strip())) is not None:
        raise InvalidError("A sink with that name exists already.", {"name": "Choose another name."})
    head = session.scalar(select(AuditChainHead.last_event_id)) or 0
    sink = AuditSink(name=data.name.strip(), kind=data.kind, format=fmt, settings_json=json.dumps(settings),
                     cursor=head, created_by_id=actor.id if actor else None)
    session.add(sink)
    session.flush()
    secret = None
    if data.kind == "https" and data.sign:
        secret = new_signing_secret()
        sink.secret_sealed = box.seal(secret.encode(), _context(sink.id))
    audit.record(session, "audit.sink_created", actor=actor, target_type="audit_sink", target_id=sink.id,
                 details={"name": sink.name, "kind": sink.kind, "format": sink.format, "destination": destination(sink),
                          "starts_after_event": head, "signed": secret is not None})
    session.flush()
    return sink, secret


def sink_secret(sink: AuditSink, box: SecretBox) -> bytes | None:
    """The HTTPS sink's signing secret, or None when it sends unsigned batches."""
    if sink.secret_sealed is None:
        return None
    plain, _stale = box.open(sink.secret_sealed, _context(sink.id))
    return plain


def destination(sink: AuditSink) -> str:
    """Where the sink sends, for pages and audit details (host and port, or the URL's host)."""
    settings = sink.settings
    if sink.kind == "syslog":
        scheme = "syslog+tls" if settings.get("tls") else "syslog"
        host = settings.get("host", "")
        shown = f"[{host}]" if _is_ipv6(host) else host
        return f"{scheme}://{shown}:{settings.get('port')}"
    parts = urlsplit(settings.get("url", ""))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def get_sink(session: Session, sink_id: int) -> AuditSink:
    sink = session.get(AuditSink, sink_id)
    if sink is None:
        raise NotFoundError("No such sink.")
    return sink


def set_enabled(session: Session, *, actor: Actor | None, sink_id: int, enabled: bool) -> AuditSink:
    """Pause or resume a sink; a resumed sink goes on from its cursor (nothing is skipped)."""
    sink = get_sink(session, sink_id)
    if sink.enabled != enabled:
        sink.enabled = enabled
        sink.next_attempt_at = None
        if enabled:
            audit.record(session, "audit.sink_enabled", actor=actor, target_type="audit_sink", target_id=sink.id,
                         details={"name": sink.name, "cursor": sink.cursor})
        else:
            audit.record(session, "audit.sink_disabled", actor=actor, target_type="audit_sink", target_id=sink.id,
                         details={"name": sink.name, "cursor": sink.cursor})
        session.flush()
    return sink


def delete_sink(session: Session, *, actor: Actor | None, sink_id: int) -> None:
    """Remove a sink (the events it had not acknowledged stay in govern, of course)."""
    sink = get_sink(session, sink_id)
    audit.record(session, "audit.sink_deleted", actor=actor, target_type="audit_sink", target_id=sink.id,
                 details={"name": sink.name, "destination": destination(sink), "cursor": sink.cursor})
    session.delete(sink)
    session.flush()


@dataclass(frozen=True)
class SinkLag:
    """How far a sink is behind the chain head."""

    sink: AuditSink
    events: int
    seconds: int


def lags(session: Session, *, now: datetime | None = None) -> list[SinkLag]:
    """Every sink with its lag in events and in seconds (the age of its oldest unshipped event); one query each
    for the head and the oldest unshipped events, whatever the number of sinks."""
    now = now or utcnow()
    head = session.scalar(select(AuditChainHead.last_event_id)) or 0
    sinks = session.scalars(select(AuditSink).order_by(AuditSink.name)).all()
    cursors = {sink.cursor + 1 for sink in sinks if sink.cursor < head}
    oldest: Mapping[int, datetime] = dict(session.execute(
        select(AuditEvent.id, AuditEvent.occurred_at).where(AuditEvent.id.in_(cursors))
    ).all()) if cursors else {}
    result = []
    for sink in sinks:
        behind = max(head - sink.cursor, 0)
        since = oldest.get(sink.cursor + 1)
        result.append(SinkLag(sink, behind, int((now - since).total_seconds()) if behind and since else 0))
    return result


def count_sinks(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditSink)) or 0
