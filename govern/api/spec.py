"""The API's OpenAPI 3.1 description, built by spectree from the pydantic models that validate requests.

spectree walks the app's URL map and reads, for each API view, the models its ``endpoint`` decorator
names; ``document()`` then adds what is the same for every operation (the bearer scheme, the problem
answers, the Idempotency-Key and If-Match headers, the links between operations).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Response as FlaskResponse
from flask import request
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData

from govern.api.auth import SCOPE_ATTRIBUTE
from govern.api.problems import ApiProblem, field_errors
from govern.auth.apitokens import SCOPES
from govern.web import POLICY, PUBLIC, permission

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

PREFIX = "/api/v1"

API_DESCRIPTION = (
    "govern's API: everything the pages do, under the same rules. Authenticate with a token "
    "(`Authorization: Bearer govp_...` personal, `govs_...` service); each operation names the scope it needs "
    "and the app roles allowed (the token's owner must hold one). Errors are RFC 9457 problem details. Lists are "
    "cursor-paged: follow `next`. Send `If-Match` with the ETag you read to update safely, and an "
    "`Idempotency-Key` on POSTs that create, so a retry creates once."
)

spec = SpecTree(
    "flask",
    title="govern API",
    version="1",
    description=API_DESCRIPTION,
    mode="strict",
    annotations=False,
    security_schemes=[SecurityScheme(name="token", data=SecuritySchemeData(
        type=SecureType.HTTP, scheme="bearer", description="A personal or service token of govern."))],
)


def _answer_as_built(response: Any, model: Any, skip_validation: bool, force_serialize: bool) -> tuple[Any, Any]:
    """spectree's response check, except for the answers govern's views build themselves.

    Every view answers with ``blueprint.answer`` (or ``created``), which serialises the very model the
    description names: re-reading that JSON to validate it again cost each answer as much as its own
    query (a list of 50 people, twice as much). Schemathesis checks every answer against the description
    in the suite (tests/api/test_schemathesis.py); anything else a view might return is still checked.
    """
    if isinstance(response, FlaskResponse):
        return response, None
    return _spectree_response_check(response, model, skip_validation, force_serialize)


# The Flask plugin's own method (BasePlugin declares none); replaced on this one instance only.
_backend: Any = spec.backend
_spectree_response_check = _backend.validate_response
_backend.validate_response = _answer_as_built


class _Hooks:
    """spectree's hooks: a request that fails validation becomes a 422 problem listing each field."""

    @staticmethod
    def before(_req: Any, _resp: Any, error: Exception | None, _instance: Any, *_rest: Any) -> None:
        if isinstance(error, ValidationError):
            where = "query" if request.method in ("GET", "DELETE") else "body"
            raise ApiProblem(422, "The request does not validate: see errors, one per field.", kind="validation-error",
                             errors=field_errors(error.errors(include_input=False), where))

    @staticmethod
    def after(_req: Any, _resp: Any, error: Exception | None, _instance: Any, *_rest: Any) -> None:
        if error is not None:  # the view built an answer its own description does not allow: a bug, never sent
            raise RuntimeError(f"response of {request.endpoint} breaks its schema: {str(error)[:300]}")


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: the operation to call next with a value of this answer (stateful tests follow them)."""

    operation_id: str
    parameters: Mapping[str, str]


#: The scope of an endpoint any live token may call (the token itself: who am I, revoke me).
ANY_SCOPE = "any"

#: operationId -> extras document() adds: created (Idempotency-Key), conditional (If-Match), links.
_EXTRAS: dict[str, dict[str, Any]] = {}


def endpoint(*, operation_id: str, permission_name: str, scope: str | None, tags: list[str],
             responses: Mapping[int, type[BaseModel] | None], query: type[BaseModel] | None = None,
             body: type[BaseModel] | None = None, creates: bool = False, conditional: bool = False,
             links: Mapping[str, Link] | None = None) -> Callable[[F], F]:
    """Declare an API view: its permission (POLICY), the token scope it needs, its models and answers."""
    if scope is not None and scope != ANY_SCOPE and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; add it to govern.auth.apitokens.SCOPES")
    codes = {f"HTTP_{code}": model for code, model in responses.items()}

    def decorate(view: F) -> F:
        validated = spec.validate(query=query, json=body, resp=Response(**codes), tags=tags, operation_id=operation_id,
                                  security=None if permission_name == PUBLIC else {"token": []},
                                  before=_Hooks.before, after=_Hooks.after)(view)
        setattr(validated, SCOPE_ATTRIBUTE, scope)
        _EXTRAS[operation_id] = {"creates": creates, "conditional": conditional, "links": dict(links or {}),
                                 "scope": scope, "permission": permission_name, "has_input": bool(query or body)}
        return cast(F, permission(permission_name)(validated))

    return decorate


def body_of(model: type[M]) -> M:
    """The validated JSON body of this request."""
    value = cast(Any, request).context.json
    assert isinstance(value, model)
    return value


def query_of(model: type[M]) -> M:
    """The validated query of this request."""
    value = cast(Any, request).context.query
    assert isinstance(value, model)
    return value


# --- the document --------------------------------------------------------------------------------------

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "location": {"type": "string"}, "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}
_PROBLEM_RESPONSES = {
    "400": "Malformed request (bad JSON, bad cursor).",
    "401": "No valid token.",
    "403": "The token's scopes or its owner's roles do not allow this.",
    "415": "The body is not JSON.",
    "422": "The request does not validate; `errors` lists each field.",
    "429": "Rate limit or failed-token throttle; see Retry-After.",
    "503": "The database is unreachable; retry later.",
}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def document(raw: Mapping[str, Any]) -> dict[str, Any]:
    """spectree's document with what every operation shares added."""
    doc = copy.deepcopy(dict(raw))
    doc["paths"] = {path: item for path, item in doc["paths"].items() if path.startswith(PREFIX)}
    doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
    doc["tags"] = sorted(doc.get("tags", []), key=lambda t: t["name"])
    for item in doc["paths"].values():
        for method, op in item.items():
            extras = _EXTRAS.get(op.get("operationId", ""), {})
            responses = op.setdefault("responses", {})
            # spectree answers 422 with its own schema; govern answers every error as a problem.
            responses.pop("422", None)
            for code, text in _PROBLEM_RESPONSES.items():
                if extras.get("permission") == PUBLIC and code in ("401", "403"):
                    continue
                if code == "415" and method not in ("post", "put", "patch"):
                    continue
                responses.setdefault(code, _problem_response(text))
            for code, response in list(responses.items()):
                if code in ("404", "409", "412") or (code.startswith(("4", "5")) and "content" not in response):
                    responses[code] = _problem_response(response.get("description") or "See detail.")
            scope = extras.get("scope")
            if scope == ANY_SCOPE:
                op["description"] = (op.get("description") or "") + "\n\nScope: any; every live token may call this."
            elif scope:
                roles = ", ".join(sorted(POLICY[extras["permission"]])).replace("staff", "any user")
                op["description"] = (op.get("description") or "") + \
                    f"\n\nScope: `{scope}`. Permission `{extras['permission']}`: app roles {roles}."
            params = op.setdefault("parameters", [])
            if extras.get("creates"):
                params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "description": "Any unique string: the same key answers the first result again.",
                               "schema": {"type": "string", "maxLength": 200}})
            if extras.get("conditional"):
                params.append({"name": "If-Match", "in": "header", "required": False,
                               "description": "The ETag you read: a change in between answers 412.",
                               "schema": {"type": "string"}})
                responses.setdefault("412", _problem_response("The resource changed since you read it."))
            links = extras.get("links") or {}
            if links:
                for code, response in responses.items():
                    if code in ("200", "201"):
                        response["links"] = {name: {"operationId": link.operation_id,
                                                    "parameters": dict(link.parameters)}
                                             for name, link in links.items()}
            if not params:
                op.pop("parameters")
    doc["x-scopes"] = {name: scope.description for name, scope in SCOPES.items()}
    return doc
