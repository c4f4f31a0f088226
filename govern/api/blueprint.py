"""The /api/v1 blueprint: token callers, JSON in and out, problems for every error, the description."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError, PendingRollbackError
from werkzeug.exceptions import HTTPException

from govern import web
from govern.api import cursors
from govern.api import spec as api_spec
from govern.api.auth import TokenBearer, rate_headers
from govern.api.models import IdempotentRequest
from govern.api.problems import ApiProblem, from_exception, problem
from govern.db import get_session
from govern.errors import AuditWriteError, GovernError, InvalidError, ThrottledError
from govern.web import PUBLIC, permission

bp = Blueprint("api", __name__, url_prefix=api_spec.PREFIX)

JSON = "application/json"
MAX_IDEMPOTENCY_KEY = 200


@bp.record_once
def _register(_state: Any) -> None:
    web.register_bearer_blueprint(bp.name, TokenBearer())


def is_api_request() -> bool:
    """Whether this request is the API's (its errors are problems, never pages)."""
    return request.path == api_spec.PREFIX or request.path.startswith(api_spec.PREFIX + "/")


@bp.before_request
def _json_only() -> Response | None:
    if request.method in ("POST", "PUT", "PATCH") and (request.content_length or request.data):
        if request.mimetype != JSON:
            return problem(415, "Send the body as application/json.", kind="unsupported-media-type")
        try:
            json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            return problem(400, "The body is not valid JSON.", kind="malformed-json")
    return None


@bp.after_request
def _rate_headers(response: Response) -> Response:
    verdict = g.get("rate_verdict")
    if verdict is not None:
        for name, value in rate_headers(verdict).items():
            response.headers.setdefault(name, value)
    return response


# --- errors ----------------------------------------------------------------------------------------------


def _rollback() -> None:
    if "db_session" in g and not g.get("database_down"):
        g.db_session.rollback()


@bp.errorhandler(ApiProblem)
def _problem(exc: ApiProblem) -> Response:
    _rollback()
    return from_exception(exc)


@bp.errorhandler(InvalidError)
def _invalid(exc: InvalidError) -> Response:
    _rollback()
    errors = [{"location": "body", "field": name, "message": message} for name, message in exc.reasons.items()]
    return problem(422, exc.message, kind="validation-error", errors=errors)


@bp.errorhandler(ThrottledError)
def _throttled(exc: ThrottledError) -> Response:
    _rollback()
    return problem(429, exc.message, kind="throttled", headers={"Retry-After": str(exc.retry_after)})


@bp.errorhandler(AuditWriteError)
def _audit_failed(exc: AuditWriteError) -> Response:
    _rollback()
    return problem(503, "govern could not record this in the audit trail, so it did not do it. Retry later.")


@bp.errorhandler(GovernError)
def _domain(exc: GovernError) -> Response:
    _rollback()
    status = exc.status_code if exc.status_code in (400, 403, 404, 409, 412, 429) else 400
    return problem(status, exc.message)


@bp.errorhandler(DataError)
@bp.errorhandler(OverflowError)
def _unstorable(_exc: Exception) -> Response:
    _rollback()
    return problem(422, "A value is out of range or malformed for govern to store.", kind="validation-error")


def http_problem(exc: HTTPException) -> Response:
    """An HTTP error of an API request (routing, method, size) as a problem."""
    status = exc.code or 500
    if status == 405 and not _path_exists():
        status = 404  # werkzeug answers 405 for an id past its converter's range on some methods
    details = {404: "No such resource, or this token may not know it exists.",
               405: "This resource does not accept that method.", 413: "The request is too large."}
    return problem(status, details.get(status, exc.description or "The request could not be completed."))


def _path_exists() -> bool:
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        adapter.match(request.path, method="GET")
    except HTTPException as exc:
        return getattr(exc, "code", 404) != 404
    return True


def down_problem() -> Response:
    """The 503 of an API request whose database is unreachable."""
    return problem(503, "govern cannot reach its database. Nothing was changed; retry later.",
                   headers={"Retry-After": "30"})


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
@bp.errorhandler(PendingRollbackError)
def _down(_exc: Exception) -> Response:
    g.database_down = True
    if "db_session" in g:
        try:
            g.db_session.rollback()
        except Exception:  # noqa: BLE001 - a dead connection may refuse even that
            current_app.logger.warning("rollback failed after a database error")
    return down_problem()


# --- answers ---------------------------------------------------------------------------------------------


def etag_of(body: bytes) -> str:
    """A strong ETag of a representation."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def answer(model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None, *,
           tagged: bool = False) -> Response:
    """A JSON answer; ``tagged`` adds the ETag an update's If-Match must name."""
    body = model.model_dump_json().encode()
    response = Response(body, status=status, mimetype=JSON, headers=dict(headers or {}))
    if tagged:
        response.headers["ETag"] = etag_of(body)
    return response


def answer_page(list_model: type[BaseModel], items: Sequence[BaseModel], next_cursor: str | None) -> Response:
    """One page of a list: its items and the next page's URL, in the body (``next``) and a Link header."""
    link = cursors.next_link(next_cursor)
    return answer(list_model(items=items, next=link), headers=cursors.link_header(link))


def require_match(current: BaseModel) -> None:
    """An update with If-Match: the resource must still be as the caller read it (else 412)."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        return
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    if "*" in tags:
        return
    if etag_of(current.model_dump_json().encode()) not in tags:
        raise ApiProblem(412, "The resource changed since you read it: read it again, then resend your change.",
                         kind="precondition-failed")


def _fingerprint() -> str:
    return hashlib.sha256(b"\n".join([request.method.encode(), request.path.encode(),
                                      request.get_data(cache=True) or b""])).hexdigest()


def _replay(row: IdempotentRequest) -> Response:
    if row.fingerprint != _fingerprint():
        raise ApiProblem(422, "This Idempotency-Key was used for another request: use a new key.",
                         kind="idempotency-key-reused")
    headers = {"Idempotent-Replayed": "true", "ETag": etag_of(row.body.encode())}
    if row.location:
        headers["Location"] = row.location
    return Response(row.body, status=row.status, mimetype=JSON, headers=headers)


def created(change: Callable[[], tuple[BaseModel, str]]) -> Response:
    """Run a POST that creates something, once per Idempotency-Key: commit, answer 201 with Location."""
    key = request.headers.get("Idempotency-Key")
    session = get_session()
    token_id = g.principal.token.id
    if key is not None:
        if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
            raise ApiProblem(400, f"An Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
                             kind="bad-idempotency-key")
        existing = session.scalar(select(IdempotentRequest).where(IdempotentRequest.token_id == token_id,
                                                                  IdempotentRequest.key == key))
        if existing is not None:
            return _replay(existing)
    model, location = change()
    body = model.model_dump_json()
    if key is not None:
        session.add(IdempotentRequest(token_id=token_id, key=key, fingerprint=_fingerprint(), status=201,
                                      body=body, location=location))
    try:
        session.commit()
    except IntegrityError:
        # The same key raced this request and won: nothing of this one was kept; answer as the winner did.
        session.rollback()
        winner = session.scalar(select(IdempotentRequest).where(IdempotentRequest.token_id == token_id,
                                                                IdempotentRequest.key == key))
        if winner is None:
            raise
        return _replay(winner)
    return Response(body, status=201, mimetype=JSON, headers={"Location": location, "ETag": etag_of(body.encode())})


def changed(model_of: Callable[[], BaseModel]) -> Response:
    """Commit a change and answer the resource as it now is."""
    get_session().commit()
    return answer(model_of(), tagged=True)


# --- the description -------------------------------------------------------------------------------------


@bp.get("/openapi.json")
@permission(PUBLIC)
def openapi() -> Response:
    """The OpenAPI 3.1 description of this API (public, like the reference page)."""
    cached = current_app.extensions.get("govern.api_document")
    if cached is None:
        cached = json.dumps(api_spec.document(api_spec.spec.spec))
        current_app.extensions["govern.api_document"] = cached
    return Response(cached, mimetype=JSON, headers={"Cache-Control": "no-cache"})


@bp.get("/docs")
@permission(PUBLIC)
def reference() -> str:
    """A browsable reference of the API, rendered on the server (no script from elsewhere: govern's CSP holds)."""
    doc = api_spec.document(api_spec.spec.spec)
    operations = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            operations.append({"method": method.upper(), "path": path, "op": op})
    operations.sort(key=lambda o: (o["op"].get("tags") or ["~"])[0])
    return render_template("api/reference.html", doc=doc, operations=operations,
                           schemas=doc["components"]["schemas"])
