"""A local HTTP server on loopback answering the documented request and response shapes of the Meta Graph
API, LinkedIn's organizationAcls and TikTok's Business Center members, with scripted faults.

Not the live platforms: the shapes come from their public documentation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

META_TOKEN = "meta-system-user-token-123"
LINKEDIN_TOKEN = "linkedin-token-456"
TIKTOK_TOKEN = "tiktok-token-789"


@dataclass
class Platforms:
    """The platforms' state and the faults to answer next."""

    #: Meta: business id -> {user id: {"id", "name", "email", "role"}}.
    business_users: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Meta: page id -> {user id: [tasks]}.
    pages: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    #: LinkedIn: organisation id -> list of ACL elements.
    orgs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: TikTok: bc id -> list of members.
    bcs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: (method, path prefix) -> answers to give before the normal one: (status, body, headers).
    faults: dict[tuple[str, str], list[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    #: Refuse removals on these ids (page, org or bc) with this answer.
    refuse_removal: dict[str, tuple[int, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 2
    #: LinkedIn's paging carries "total" on some finders and versions, not on others.
    linkedin_total: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault(self, method: str, prefix: str, status: int, body: Any, headers: dict[str, str] | None = None,
              times: int = 1) -> None:
        """Answer the next ``times`` matching requests with this."""
        self.faults.setdefault((method, prefix), []).extend([(status, body, headers or {})] * times)


def _page(rows: list[Any], after: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(after or 0)
    chunk = rows[start:start + size]
    return chunk, (str(start + size) if start + size < len(rows) else None)


class Handler(BaseHTTPRequestHandler):
    platforms: Platforms

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def _handle(self, method: str) -> None:
        p = self.platforms
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with p.lock:
            p.requests.append((method, path))
            for (m, prefix), answers in p.faults.items():
                if m == method and path.startswith(prefix) and answers:
                    status, body, headers = answers.pop(0)
                    return self._send(status, body, headers)
        if path.startswith("/open_api/"):
            return self._tiktok(method, path, query)
        if path.startswith("/rest/"):
            return self._linkedin(method, url.query, query)
        return self._meta(method, path, query)

    # --- Meta Graph API ---------------------------------------------------------------------------
    def _meta(self, method: str, path: str, query: dict[str, str]) -> None:
        p = self.platforms
        if self.headers.get("Authorization") != f"Bearer {META_TOKEN}":
            return self._send(400, {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException",
                                              "code": 190, "fbtrace_id": "x"}})
        parts = path.strip("/").split("/")
        if parts[-1] == "business_users":
            rows = sorted(p.business_users.get(parts[0], {}).values(), key=lambda r: r["id"])
        elif parts[-1] == "client_instagram_accounts":
            rows = [{"id": "ig1", "username": "acme"}]
        elif parts[-1] == "assigned_users" and method == "GET":
            if query.get("business") not in p.business_users:
                return self._send(400, {"error": {"message": "(#100) Param business must be valid", "code": 100}})
            users = p.pages.get(parts[0])
            if users is None:
                return self._send(400, {"error": {"message": "(#200) Permissions error", "code": 200}})
            rows = [{"id": uid, "name": p.business_users[query["business"]].get(uid, {}).get("name", uid), "tasks": tasks}
                    for uid, tasks in sorted(users.items())]
        elif parts[-1] == "assigned_users" and method == "DELETE":
            if set(query) - {"user"}:  # the edge's one documented parameter
                return self._send(400, {"error": {"message": f"(#100) Param {sorted(set(query) - {'user'})[0]} is not "
                                                             "valid", "code": 100}})
            if parts[0] in p.refuse_removal:
                status, body = p.refuse_removal[parts[0]]
                return self._send(status, body)
            with p.lock:
                removed = p.pages.get(parts[0], {}).pop(query.get("user", ""), None)
            return self._send(200, {"success": removed is not None})
        else:
            return self._send(404, {"error": {"message": "Unknown path", "code": 803}})
        chunk, after = _page(rows, query.get("after"), p.page_size)
        paging: dict[str, Any] = {"cursors": {"before": "0", "after": after or "end"}}
        if after:
            paging["next"] = f"http://{self.headers.get('Host')}{path}?after={after}"
        return self._send(200, {"data": chunk, "paging": paging})

    # --- LinkedIn -----------------------------------------------------------------------------------
    def _linkedin(self, method: str, raw_query: str, query: dict[str, str]) -> None:
        p = self.platforms
        if self.headers.get("Authorization") != f"Bearer {LINKEDIN_TOKEN}":
            return self._send(401, {"status": 401, "serviceErrorCode": 65601, "code": "EXPIRED_ACCESS_TOKEN",
                                    "message": "The token used in the request has expired"})
        if not self.headers.get("LinkedIn-Version"):
            return self._send(426, {"status": 426, "message": "A version must be present"})
        if method == "GET":
            org = query.get("organization", "").rsplit(":", 1)[-1]
            rows = p.orgs.get(org, [])
            start, count = int(query.get("start", 0)), int(query.get("count", 10))
            count = min(count, p.page_size)
            paging: dict[str, Any] = {"start": start, "count": count, "links": []}
            if p.linkedin_total:
                paging["total"] = len(rows)
            return self._send(200, {"elements": rows[start:start + count], "paging": paging})
        if method == "DELETE":
            ids = unquote(raw_query.split("ids=", 1)[1])
            results: dict[str, Any] = {}
            for key in ids[len("List("):-1].split("),("):
                key = key.strip("()")
                fields = dict(part.split(":", 1) for part in key.split(","))
                org = fields["organization"].rsplit(":", 1)[-1]
                if org in p.refuse_removal:
                    status, body = p.refuse_removal[org]
                    return self._send(status, body)
                with p.lock:
                    p.orgs[org] = [e for e in p.orgs.get(org, []) if not (
                        e["role"] == fields["role"] and e["roleAssignee"] == fields["roleAssignee"])]
                results[f"({key})"] = {"status": 204}
            return self._send(200, {"results": results, "errors": {}})
        return self._send(405, {"status": 405, "message": "Method not allowed"})

    # --- TikTok Business Center --------------------------------------------------------------------------
    def _tiktok(self, method: str, path: str, query: dict[str, str]) -> None:
        p = self.platforms
        if self.headers.get("Access-Token") != TIKTOK_TOKEN:
            return self._send(200, {"code": 40105, "message": "Access token is invalid or expired.", "data": {}})
        if path.endswith("/bc/member/get/"):
            rows = p.bcs.get(query.get("bc_id", ""), [])
            page, size = int(query.get("page", 1)), int(query.get("page_size", 10))
            if size > 20:  # the documented maximum
                return self._send(200, {"code": 40002, "message": "page_size: must be at most 20", "data": {}})
            size = min(size, p.page_size)
            total_page = max(1, -(-len(rows) // size))
            return self._send(200, {"code": 0, "message": "OK", "request_id": "r", "data": {
                "list": rows[(page - 1) * size: page * size],
                "page_info": {"page": page, "page_size": size, "total_number": len(rows), "total_page": total_page}}})
        if path.endswith("/bc/member/delete/"):
            body = self._body()
            if body.get("bc_id") in p.refuse_removal:
                status, refusal = p.refuse_removal[body["bc_id"]]
                return self._send(status, refusal)
            with p.lock:
                # An existing member by user_id; user_email revokes an invitation (a PENDING row) only.
                p.bcs[body["bc_id"]] = [m for m in p.bcs.get(body["bc_id"], []) if not (
                    (body.get("user_id") and m["user_id"] == body["user_id"]) or
                    (body.get("user_email") and m.get("relation_status") == "PENDING"
                     and m["user_email"] == body["user_email"]))]
            return self._send(200, {"code": 0, "message": "OK", "data": {}})
        return self._send(200, {"code": 40002, "message": "Unknown endpoint", "data": {}})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


@contextmanager
def serve(platforms: Platforms) -> Iterator[str]:
    """Run the fake platforms on 127.0.0.1 (a real socket); yield the base URL."""
    handler = type("BoundHandler", (Handler,), {"platforms": platforms})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
