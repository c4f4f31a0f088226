"""One small HTTP base for the platform clients: timeouts, retries with backoff on rate limits, a
request count, and errors in plain words. A token never appears in an error, a log line or a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("govern.connectors")

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
MAX_ATTEMPTS = 5
#: Seconds before the first retry; doubled each time, capped, or the platform's Retry-After.
BACKOFF_START = 1.0
BACKOFF_CAP = 60.0


class ConnectorError(Exception):
    """The platform refused or failed; ``message`` says it in plain words for a person."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 expired_token: bool = False, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.expired_token = expired_token
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Member:
    """Someone holding a role on a platform account, as the platform describes them."""

    id: str
    name: str
    roles: tuple[str, ...]
    #: Only when the platform gives a verified email.
    email: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The compact form a snapshot stores."""
        return {"id": self.id, "name": self.name, "email": self.email, "roles": sorted(self.roles)}


@dataclass
class Answer:
    """A platform's answer: the HTTP status and the decoded JSON body."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpBase:
    """Sends requests to one platform with retries; subclasses say what is an error and what is a rate limit."""

    platform = "platform"

    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, backoff_start: float = BACKOFF_START,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=False)
        self._sleep = sleep
        self.backoff_start = backoff_start
        self.max_attempts = max_attempts
        self.requests = 0
        self.waited = 0.0

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def auth_headers(self) -> dict[str, str]:
        """The headers that carry the token."""
        raise NotImplementedError

    def check(self, answer: Answer) -> None:
        """Raise ConnectorError for an error answer (``rate_limited`` for one worth retrying)."""
        raise NotImplementedError

    def _wait(self, attempt: int, answer: Answer | None) -> float:
        retry_after = (answer.headers.get("retry-after") if answer else None) or ""
        if retry_after.strip().isdigit():
            return min(float(retry_after.strip()), BACKOFF_CAP)
        return min(self.backoff_start * (2 ** attempt), BACKOFF_CAP)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, headers: Mapping[str, str] | None = None, absolute: bool = False) -> Answer:
        """Send one request, retrying rate limits and server errors with backoff; return the checked answer."""
        url = path if absolute else f"{self.base_url}{path}"
        last: ConnectorError | None = None
        for attempt in range(self.max_attempts):
            self.requests += 1
            answer: Answer | None = None
            try:
                response = self._client.request(method, url, params=params, json=json,
                                                headers={**self.auth_headers(), **(headers or {})})
                try:
                    body = response.json() if response.content else {}
                except ValueError:
                    body = {"raw": response.text[:200]}
                answer = Answer(response.status_code, body, {k.lower(): v for k, v in response.headers.items()})
                self.check(answer)
                if response.status_code >= 500:
                    raise ConnectorError(f"{self.platform} answered HTTP {response.status_code}.",
                                         status=response.status_code, rate_limited=True)
                return answer
            except httpx.TransportError as exc:
                last = ConnectorError(f"{self.platform} could not be reached ({type(exc).__name__}).", rate_limited=True)
            except ConnectorError as exc:
                if not exc.rate_limited:
                    raise
                last = exc
            if attempt + 1 < self.max_attempts:
                delay = self._wait(attempt, answer)
                log.info("%s: %s; retrying in %.1f s", self.platform, last.message, delay)
                self.waited += delay
                self._sleep(delay)
        assert last is not None
        raise ConnectorError(f"{last.message} Gave up after {self.max_attempts} attempts.", code=last.code,
                             status=last.status, rate_limited=True)
