"""Errors as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 412: "Precondition failed",
    413: "Payload too large", 415: "Unsupported media type", 422: "Validation failed", 428: "Precondition required",
    429: "Too many requests", 500: "Internal error", 503: "Service unavailable",
}


class ApiProblem(Exception):
    """Raised anywhere in an API request to answer with a problem."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None,
                 errors: Sequence[Mapping[str, str]] | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = list(errors or [])
        self.headers = dict(headers or {})


def problem(status: int, detail: str, *, kind: str | None = None, errors: Sequence[Mapping[str, str]] | None = None,
            headers: Mapping[str, str] | None = None, instance: str | None = None) -> Response:
    """A problem response: ``kind`` names govern's problem type (urn:govern:problem:<kind>), else about:blank."""
    body: dict[str, Any] = {
        "type": f"urn:govern:problem:{kind}" if kind else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [dict(e) for e in errors]
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE, headers=dict(headers or {}))
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="govern API"')
    return response


def from_exception(exc: ApiProblem) -> Response:
    """The response of a raised ApiProblem."""
    return problem(exc.status, exc.detail, kind=exc.kind, errors=exc.errors, headers=exc.headers)


def field_errors(pydantic_errors: Sequence[Mapping[str, Any]], location: str) -> list[dict[str, str]]:
    """Pydantic's errors as one entry per field: where it is, which field, what is wrong (never the value sent)."""
    out: list[dict[str, str]] = []
    for error in pydantic_errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
        out.append({"location": location, "field": where or "(whole)", "message": str(error.get("msg", "not valid"))[:300]})
    return out
