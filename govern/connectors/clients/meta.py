"""Meta Graph API: business users, a Page's assigned users (tasks), removing one, Instagram accounts (read only).

Needs a system-user token with business_management and pages_manage_metadata.
"""

from __future__ import annotations

import json
from typing import Any

from govern.connectors.clients.base import Answer, ConnectorError, HttpBase, Member

RATE_LIMIT_CODES = {4, 17, 32, 613}
PERMISSION_CODES = {10, 200}
EXPIRED_CODES = {190}
INVALID_CODES = {100}
PAGE_SIZE = 100


def _usage_wait(header: str | None) -> float:
    """Seconds Meta says to wait, from X-Business-Use-Case-Usage's estimated_time_to_regain_access (minutes)."""
    try:
        usage = json.loads(header or "{}")
    except ValueError:
        return 0.0
    minutes = 0.0
    for entries in usage.values() if isinstance(usage, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                minutes = max(minutes, float(entry.get("estimated_time_to_regain_access") or 0))
    return minutes * 60


class MetaClient(HttpBase):
    """The Graph API of one Meta business."""

    platform = "Meta"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _wait(self, attempt: int, answer: Answer | None) -> float:
        told = _usage_wait(answer.headers.get("x-business-use-case-usage")) if answer else 0.0
        return max(super()._wait(attempt, answer), min(told, 300.0))

    def check(self, answer: Answer) -> None:
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        if not error and answer.status < 400:
            return
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        text = str(error.get("message") or f"HTTP {answer.status}")[:300]
        if code in EXPIRED_CODES:
            raise ConnectorError(f"Meta refused the token: it expired or was revoked ({text}). Put a new system-user "
                                 "token in the vault.", code=str(code), status=answer.status, expired_token=True)
        if code in RATE_LIMIT_CODES:
            raise ConnectorError(f"Meta's rate limit was reached (code {code}).", code=str(code), status=answer.status,
                                 rate_limited=True)
        if code in PERMISSION_CODES:
            raise ConnectorError(f"Meta says the token lacks a permission (code {code}: {text}). The system user needs "
                                 "business_management and pages_manage_metadata, and access to this Page.",
                                 code=str(code), status=answer.status)
        if code in INVALID_CODES:
            raise ConnectorError(f"Meta rejected a parameter (code 100: {text}). Check the business and Page ids.",
                                 code=str(code), status=answer.status)
        if answer.status >= 500:
            return  # the base retries server errors
        raise ConnectorError(f"Meta answered an error (code {code}: {text}).", code=str(code) if code else None,
                             status=answer.status)

    def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        params = {**params, "limit": PAGE_SIZE}
        while True:
            body = self.request("GET", path, params=params).body
            rows.extend(body.get("data") or [])
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return rows
            params = {**params, "after": after}

    def business_users(self, business_id: str) -> dict[str, dict[str, Any]]:
        """The business's users by id: name, email, role (ADMIN or EMPLOYEE)."""
        rows = self._pages(f"/{business_id}/business_users", {"fields": "id,name,email,role"})
        return {str(r["id"]): r for r in rows if r.get("id")}

    def page_members(self, page_id: str, business_id: str,
                     users: dict[str, dict[str, Any]] | None = None) -> list[Member]:
        """Who holds which tasks on a Page (MANAGE, CREATE_CONTENT, MODERATE, MESSAGING, ADVERTISE, ANALYZE)."""
        users = users if users is not None else self.business_users(business_id)
        rows = self._pages(f"/{page_id}/assigned_users", {"business": business_id, "fields": "id,name,tasks"})
        members = []
        for row in rows:
            uid = str(row.get("id") or "")
            if not uid:
                continue
            known = users.get(uid, {})
            members.append(Member(id=uid, name=str(row.get("name") or known.get("name") or uid),
                                  roles=tuple(sorted(str(t) for t in row.get("tasks") or [])),
                                  email=(str(known["email"]).lower() if known.get("email") else None)))
        return members

    def instagram_accounts(self, business_id: str) -> list[dict[str, Any]]:
        """The business's client Instagram accounts (read only)."""
        return self._pages(f"/{business_id}/client_instagram_accounts", {"fields": "id,username"})

    def remove_member(self, page_id: str, business_id: str, member: Member) -> Answer:
        """Remove a user's tasks on a Page: DELETE /{page_id}/assigned_users?user= (its one documented parameter;
        ``business_id`` is for the reads)."""
        answer = self.request("DELETE", f"/{page_id}/assigned_users", params={"user": member.id})
        if not (isinstance(answer.body, dict) and answer.body.get("success") is True):
            raise ConnectorError(f"Meta did not confirm the removal (answer: {json.dumps(answer.body)[:200]}).",
                                 status=answer.status)
        return answer
