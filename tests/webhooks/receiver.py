"""A real HTTP endpoint on loopback for the webhook tests: it keeps what it got and, for a standard webhook,
verifies each request with the Standard Webhooks reference library (as a subscriber's program would)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Endpoint:
    secret: str | None = None
    #: Status codes to answer, one per request, then 200.
    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    refused: int = 0
    url: str = ""
    server: ThreadingHTTPServer | None = None

    @property
    def ids(self) -> list[str]:
        return [headers.get("webhook-id", "") for headers, _ in self.received]

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.received]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start(endpoint: Endpoint) -> Endpoint:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            endpoint.attempts.append(headers.get("webhook-id", ""))
            status = endpoint.answers.pop(0) if endpoint.answers else 200
            if status == 200 and endpoint.secret is not None:
                try:
                    Webhook(endpoint.secret).verify(raw, headers)
                except WebhookVerificationError:
                    endpoint.refused += 1
                    status = 401
            if status == 200:
                endpoint.received.append((headers, json.loads(raw)))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    endpoint.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=endpoint.server.serve_forever, daemon=True).start()
    endpoint.url = f"http://127.0.0.1:{endpoint.server.server_address[1]}/hook"
    return endpoint
