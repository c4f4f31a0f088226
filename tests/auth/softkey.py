"""A software authenticator for tests: answers WebAuthn ceremonies as a browser and a passkey would.

It builds clientDataJSON, authenticator data, a "none" attestation and ES256 signatures with
``cryptography`` and ``cbor2``, so the server's checks (py_webauthn) run on real bytes; each answer can be
bent (another origin, no user verification, a counter that goes back, a changed backup flag).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftKey:
    def __init__(self, rp_id: str = "localhost", origin: str = "http://localhost", *, synced: bool = False,
                 counts: bool = True) -> None:
        self.rp_id, self.origin, self.synced, self.counts = rp_id, origin, synced, counts
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _flags(self, *, uv: bool, synced: bool, attested: bool = False) -> int:
        return UP | (UV if uv else 0) | ((BE | BS) if synced else 0) | (AT if attested else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin or self.origin,
                           "crossOrigin": False}).encode()

    def register(self, options: str | dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
                 uv: bool = True) -> str:
        opts = json.loads(options) if isinstance(options, str) else options
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + self._cose()
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest()
                     + bytes([self._flags(uv=uv, synced=self.synced, attested=True)])
                     + struct.pack(">I", self.sign_count) + attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                           "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                                        "transports": ["internal"]},
                           "clientExtensionResults": {}})

    def answer(self, options: str | dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
               uv: bool = True, count: int | None = None, synced: bool | None = None) -> str:
        opts = json.loads(options) if isinstance(options, str) else options
        if count is not None:
            self.sign_count = count
        elif self.counts:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest()
                     + bytes([self._flags(uv=uv, synced=self.synced if synced is None else synced)])
                     + struct.pack(">I", self.sign_count))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps({"id": b64url(self.credential_id), "rawId": b64url(self.credential_id), "type": "public-key",
                           "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                                        "signature": b64url(signature), "userHandle": None},
                           "clientExtensionResults": {}})
