"""A real SMTP server on loopback (aiosmtpd) for tests that send email, and what it received."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Inbox:
    """The handler: keeps every accepted message; ``refuse`` makes it answer DATA with an error."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    refuse: str | None = None
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refused += 1
            return self.refuse
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A running server: its port, inbox and the settings that point govern at it."""

    port: int
    inbox: Inbox
    controller: Controller
    ca_file: Path | None = None

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_FROM": "govern@example.com", **extra}


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key (the client trusts it as its CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


def start_server(tmp: Path, *, starttls: bool = False, password: str | None = None) -> SmtpServer:
    """Start aiosmtpd on a free loopback port; with ``starttls`` it demands STARTTLS, with
    ``password`` it demands AUTH as user "govern" with that password."""
    inbox = Inbox()
    kwargs: dict[str, Any] = {}
    ca_file = None
    if starttls:
        ca_file, key_file = self_signed(tmp)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca_file, key_file)
        kwargs.update(tls_context=context, require_starttls=True)
    if password is not None:
        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"govern" and auth_data.password == password.encode()
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=starttls)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=30, **kwargs)
    controller.start()
    return SmtpServer(port=port, inbox=inbox, controller=controller, ca_file=ca_file)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback."""
    server = start_server(tmp_path)
    yield server
    server.controller.stop()
