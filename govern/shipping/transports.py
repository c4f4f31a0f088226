"""Sending batches to a sink: syslog over TCP (TLS optional, RFC 5425 framing) and HTTPS POST of JSON.

A send either returns (the receiver has the batch: TCP accepted every byte, or HTTP answered 2xx)
or raises ShipError with what went wrong in plain words; the shipper then keeps its cursor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from govern.shipping.formats import cef_message, frame, json_message, ocsf_object, syslog_line

#: Seconds a receiver has to accept a connection or answer a batch.
TIMEOUT = 10.0


class ShipError(Exception):
    """A batch that did not reach the receiver; the message is safe to show an admin."""


class Transport(Protocol):
    def send(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Deliver ``records`` in order, or raise ShipError."""

    def close(self) -> None:
        """Release the connection."""


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    except (OSError, ssl.SSLError) as exc:
        raise ShipError(f"cannot read the CA file {ca_file}: {exc}") from None


class SyslogTransport:
    """RFC 5424 lines over one TCP connection, octet-counted (RFC 5425/6587); TLS with a CA file if asked."""

    def __init__(self, host: str, port: int, *, tls: bool = False, ca_file: str | None = None,
                 line_format: str = "rfc5424") -> None:
        self.host, self.port, self.tls, self.ca_file, self.line_format = host, port, tls, ca_file, line_format
        self._socket: socket.socket | None = None

    def _connect(self) -> socket.socket:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        except OSError as exc:
            raise ShipError(f"syslog receiver {self.host}:{self.port} unreachable: {exc.strerror or exc}") from None
        if not self.tls:
            return raw
        try:
            return _tls_context(self.ca_file).wrap_socket(raw, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise ShipError(f"the syslog receiver's TLS certificate was refused: {exc.verify_message}") from None
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise ShipError(f"TLS with the syslog receiver failed: {exc}") from None

    def send(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self._socket is None:
            self._socket = self._connect()
        message = cef_message if self.line_format == "cef" else json_message
        payload = b"".join(frame(syslog_line(record, message=message(record))) for record in records)
        try:
            self._socket.sendall(payload)
        except OSError as exc:
            self.close()
            raise ShipError(f"the syslog receiver dropped the connection: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            finally:
                self._socket = None


def new_signing_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and the base64 of 32 random bytes (the bytes are the HMAC key)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_headers(secret: bytes, body: bytes, message_id: str, *, now: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers: webhook-id, webhook-timestamp, webhook-signature (v1, HMAC-SHA256 keyed
    with the secret's decoded bytes, as the specification's libraries verify it)."""
    text = secret.decode()
    key = base64.b64decode(text.removeprefix("whsec_"))
    timestamp = str(int(now if now is not None else time.time()))
    signed = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}


class HttpsTransport:
    """POST {"events": [...]} as OCSF-shaped JSON, signed as a Standard Webhook when there is a secret."""

    def __init__(self, url: str, *, ca_file: str | None = None, secret: bytes | None = None) -> None:
        self.url, self.secret = url, secret
        verify: ssl.SSLContext | bool = _tls_context(ca_file) if urlsplit(url).scheme == "https" else False
        self._client = httpx.Client(timeout=TIMEOUT, verify=verify, follow_redirects=False)

    def send(self, records: Sequence[Mapping[str, Any]]) -> None:
        body = json.dumps({"events": [ocsf_object(record) for record in records]}, separators=(",", ":"),
                          default=str).encode()
        first, last = records[0], records[-1]
        headers = {"content-type": "application/json", "user-agent": "govern-audit-shipper"}
        if self.secret:
            message_id = f"audit_{first.get('id')}_{last.get('id')}_{first['type']}"
            headers.update(signature_headers(self.secret, body, message_id))
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.ConnectError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLCertVerificationError):
                raise ShipError(f"the receiver's TLS certificate was refused: {cause.verify_message}") from None
            raise ShipError(f"HTTPS receiver unreachable: {exc}") from None
        except httpx.HTTPError as exc:
            raise ShipError(f"HTTPS receiver failed: {exc.__class__.__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise ShipError(f"HTTPS receiver answered {response.status_code} {response.reason_phrase}")

    def close(self) -> None:
        self._client.close()
