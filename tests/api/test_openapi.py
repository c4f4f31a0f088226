"""The OpenAPI 3.1 description is generated from the code and covers every operation; the reference page
renders on the server under govern's CSP."""

from __future__ import annotations

import re

from govern import web


def _operations(doc):  # type: ignore[no-untyped-def]
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


def test_the_description_covers_every_api_route_with_its_scope_and_problems(app) -> None:
    answer = app.test_client().get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    doc = answer.json
    assert doc["openapi"].startswith("3.1") and doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    described = {(path, method.upper()) for path, method, _ in _operations(doc)}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint not in ("api.openapi", "api.reference"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert described == routed
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, op in _operations(doc):
        problem = op["responses"]["422"]["content"]
        assert "application/problem+json" in problem, (path, method)
        if path != "/api/v1/tokens/revoke":
            assert op["security"] == [{"token": []}] and "Scope: " in op["description"], (path, method)
        if method == "post" and op.get("requestBody"):
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
    creates = [op for _, method, op in _operations(doc) if method == "post" and "201" in op["responses"]]
    assert creates and all(any(p["name"] == "Idempotency-Key" for p in op["parameters"]) for op in creates)
    patches = [op for _, method, op in _operations(doc) if method == "patch"]
    assert patches and all(any(p["name"] == "If-Match" for p in op["parameters"]) for op in patches)
    assert all("links" in op["responses"]["201"] for op in creates if op["operationId"] != "acceptPolicy")


def test_the_reference_page_needs_no_script_from_elsewhere(app) -> None:
    answer = app.test_client().get("/api/v1/docs")
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert answer.headers["Content-Security-Policy"] == web.CONTENT_SECURITY_POLICY
    assert "getPerson" in html and "revealSecret" in html and "secrets:reveal" in html
    assert not re.search(r"<script[^>]+src=\"(https?:)?//", html)
