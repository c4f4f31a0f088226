"""The SSO tests' fixtures: the provider (tests/sso/idp.py) for the whole session, the proxy per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from govern.sso import services
from govern.sso.services import SsoKit
from tests.sso.idp import (
    BASE,
    CALLBACK,
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    SECRET_ENV,
    TamperingTransport,
    TestProvider,
    start_provider,
    stop_provider,
)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[TestProvider]:
    clients = [
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [CALLBACK],
         "post_logout_redirect_uris": [f"{BASE}/login"], "token_endpoint_auth_method": "client_secret_basic",
         "require_auth_time": True},
        {"client_id": OTHER_CLIENT_ID, "client_secret": "other-secret", "redirect_uris": [f"{BASE}/other/callback"],
         "token_endpoint_auth_method": "client_secret_basic"},
    ]
    provider, process = start_provider(clients)
    try:
        yield provider
    finally:
        stop_provider(process)


@pytest.fixture
def proxy(app: Any, monkeypatch: pytest.MonkeyPatch) -> TamperingTransport:
    transport = TamperingTransport()
    app.extensions["govern.sso"] = SsoKit(transport=transport)
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    services.forget_cached_metadata()
    return transport
