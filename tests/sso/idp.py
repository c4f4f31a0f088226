"""A real OpenID provider (panva/oidc-provider, from npm) on loopback, and a way through its sign-in page.

The provider's packages are installed once with ``npm ci`` from tests/sso/provider/package-lock.json
into a cache directory (GOVERN_TEST_NODE_CACHE, default ~/.cache/govern-tests), keyed by the lock
file's hash; each test session starts the provider on a free port and stops it at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

HERE = Path(__file__).parent / "provider"
CLIENT_ID = "govern"
CLIENT_SECRET = "govern-test-client-secret"  # noqa: S105 - the test provider's client
SECRET_ENV = "GOVERN_TEST_SSO_SECRET"  # noqa: S105 - a variable's name
OTHER_CLIENT_ID = "other-app"
BASE = "http://localhost"
CALLBACK = f"{BASE}/login/sso/test/callback"


def _installed() -> Path:
    lock = (HERE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("GOVERN_TEST_NODE_CACHE", Path.home() / ".cache" / "govern-tests"))
    target = cache / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules" / "oidc-provider").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, target / name)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=target, check=True,  # noqa: S607
                       capture_output=True, timeout=300)
    shutil.copy(HERE / "provider.mjs", target / "provider.mjs")
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestProvider:
    """The running provider: its issuer, and the people it knows (login -> claims, amr, acr)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def set_accounts(self, accounts: dict[str, dict[str, Any]]) -> None:
        httpx.post(f"{self.issuer}/test/accounts", content=json.dumps(accounts)).raise_for_status()

    def sign_in(self, authorize_url: str, login: str) -> str:
        """Go through the provider's sign-in page as ``login``; return where it sends the browser back."""
        with httpx.Client(follow_redirects=False, timeout=10) as browser:
            response = browser.get(authorize_url)
            for _ in range(10):
                if response.status_code not in (302, 303):
                    raise AssertionError(f"provider answered {response.status_code}: {response.text[:300]}")
                location = str(response.headers["location"])
                if location.startswith("/"):
                    location = self.issuer + location
                if not location.startswith(self.issuer):
                    return location
                if "/interaction/" in location:
                    page = browser.get(location)
                    uid = urlsplit(location).path.rsplit("/", 1)[-1]
                    assert page.status_code == 200, page.text
                    response = browser.post(f"{self.issuer}/interaction/{uid}/login", data={"login": login})
                else:
                    response = browser.get(location)
        raise AssertionError("too many redirects at the provider")

    def id_token_for(self, login: str, *, client_id: str, client_secret: str, redirect_uri: str, nonce: str) -> str:
        """A genuine id token from this provider, obtained outside govern (for another client or nonce)."""
        verifier = secrets.token_urlsafe(48)
        metadata = httpx.get(f"{self.issuer}/.well-known/openid-configuration").json()
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": "openid email profile", "state": "s", "nonce": nonce,
                           "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"})
        back = self.sign_in(f"{metadata['authorization_endpoint']}?{query}", login)
        code = parse_qs(urlsplit(back).query)["code"][0]
        token = httpx.post(metadata["token_endpoint"], auth=(client_id, client_secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier})
        token.raise_for_status()
        return str(token.json()["id_token"])


def start_provider(clients: list[dict[str, Any]], accounts: dict[str, Any] | None = None) -> tuple[TestProvider, subprocess.Popen[str]]:
    """Start the provider on a free loopback port with these clients; returns it and its process."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the OpenID provider")
    directory = _installed()
    env = {**os.environ, "PORT": str(_free_port()), "CLIENTS": json.dumps(clients), "ACCOUNTS": json.dumps(accounts or {}),
           "NODE_ENV": "test"}
    process = subprocess.Popen(["node", "provider.mjs"], cwd=directory, env=env,  # noqa: S607
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("ready ") or process.poll() is not None:
            break
    if not line.startswith("ready "):
        process.kill()
        raise AssertionError(f"the OpenID provider did not start: {line}{process.stdout.read()[:2000]}")
    return TestProvider(line.split()[1]), process


def stop_provider(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=10)


class TamperingTransport(httpx.BaseTransport):
    """Between govern and the provider: forwards everything, and may swap the id token it returns."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.swap_id_token: Callable[[str], str] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.swap_id_token is None or not request.url.path.endswith("/token"):
            return response
        response.read()
        body = json.loads(response.content)
        body["id_token"] = self.swap_id_token(body["id_token"])
        return httpx.Response(response.status_code, json=body)
