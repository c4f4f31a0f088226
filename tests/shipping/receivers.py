"""Real receivers on loopback for the shipping tests: an HTTP collector that checks Standard Webhooks
signatures, rsyslogd from Debian writing what it receives to a file, and a TLS syslog listener."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOGD = "/usr/sbin/rsyslogd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


@dataclass
class Collector:
    """What the HTTP receiver got: each batch's events (OCSF objects) and whether its signature held."""

    secret: bytes | None = None
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    #: Status codes to answer, one per request, then 200.
    answers: list[int] = field(default_factory=list)
    #: Seconds to wait before answering (to kill a shipper mid-request).
    delay: float = 0.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, headers: Any, body: bytes) -> bool:
        """The Standard Webhooks check a receiver makes: v1 HMAC-SHA256 of "id.timestamp.body", fresh timestamp."""
        message_id, timestamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
        if self.secret is None:
            return True
        if not message_id or not timestamp or abs(time.time() - int(timestamp)) > 300:
            return False
        key = base64.b64decode(self.secret.decode().removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, f"{message_id}.{timestamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(f"v1,{expected}", sig) for sig in headers.get("webhook-signature", "").split())

    @property
    def event_ids(self) -> list[int]:
        return [int(e["metadata"]["uid"]) for batch in self.batches for e in batch if e["class_uid"] != 6003
                or not str(e["metadata"]["uid"]).startswith("checkpoint-")]


def start_collector(collector: Collector) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with collector.lock:
                collector.requests += 1
                status = collector.answers.pop(0) if collector.answers else 200
            if collector.delay:
                time.sleep(collector.delay)
            if status == 200:
                if collector.verify(self.headers, body):
                    with collector.lock:
                        collector.batches.append(json.loads(body)["events"])
                        collector.message_ids.append(self.headers.get("webhook-id", ""))
                else:
                    collector.bad_signatures += 1
                    status = 401
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/collect"


@dataclass
class Rsyslog:
    """rsyslogd listening on a TCP port (octet-counted frames), writing each message to a file."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> Path:
        return self.folder / "received.log"

    def start(self) -> None:
        config = self.folder / "rsyslog.conf"
        config.write_text(f'''
global(workDirectory="{self.folder}")
module(load="imtcp")
template(name="raw" type="string" string="%msg%\\n")
ruleset(name="govern") {{
  action(type="omfile" file="{self.output}" template="raw" flushOnTXEnd="on" asyncWriting="off" ioBufferSize="4k")
}}
input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="govern")
''')
        self.process = subprocess.Popen([RSYSLOGD, "-n", "-f", str(config), "-i", str(self.folder / "rsyslog.pid")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for(lambda: _listening(self.port), timeout=15):
            self.stop()
            raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def messages(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        return [json.loads(line) for line in self.output.read_text().splitlines() if line.startswith("{")]


def rsyslog_available() -> bool:
    return shutil.which(RSYSLOGD) is not None or Path(RSYSLOGD).exists()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def make_ca(folder: Path, name: str) -> tuple[Path, Any, Any]:
    """A throwaway CA: its certificate file, key and certificate object."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def tls_listener(folder: Path, ca_key: Any, ca_cert: Any) -> tuple[int, list[bytes], threading.Event]:
    """A TLS syslog listener on loopback with a certificate for 127.0.0.1 signed by the given CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(ca_key, hashes.SHA256()))
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    while chunk := tls.recv(65536):
                        received.append(chunk)
            except (ssl.SSLError, OSError):
                continue
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(listener.getsockname()[1]), received, stop
