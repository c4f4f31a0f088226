"""LinkedIn Community Management API: an organisation's ACLs (who holds which role) and revoking one.

Needs a token with rw_organization_admin; every request carries the LinkedIn-Version header.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from govern.connectors.clients.base import Answer, ConnectorError, HttpBase, Member

PAGE_SIZE = 100


def _last_page(paging: dict[str, Any], elements: list[Any], read: int) -> bool:
    """Whether the page just read is the last: by "total" when LinkedIn sends it (not every finder or version
    does), else by a "next" link, else by a page shorter than the count the server says it served."""
    if not elements:
        return True
    if paging.get("total") is not None:
        return read >= int(paging["total"])
    if any(isinstance(link, dict) and link.get("rel") == "next" for link in paging.get("links") or []):
        return False
    return len(elements) < int(paging.get("count") or PAGE_SIZE)


class LinkedInClient(HttpBase):
    """The organisation ACLs of LinkedIn organisations."""

    platform = "LinkedIn"

    def __init__(self, base_url: str, token: str, *, version: str = "202411", **kwargs: Any) -> None:
        super().__init__(base_url, token, **kwargs)
        self.version = version

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "LinkedIn-Version": self.version,
                "X-Restli-Protocol-Version": "2.0.0"}

    def check(self, answer: Answer) -> None:
        if answer.status < 400:
            return
        body = answer.body if isinstance(answer.body, dict) else {}
        text = str(body.get("message") or f"HTTP {answer.status}")[:300]
        code = str(body.get("serviceErrorCode") or body.get("code") or answer.status)
        if answer.status == 429:
            raise ConnectorError("LinkedIn's rate limit was reached (HTTP 429).", code=code, status=429, rate_limited=True)
        if answer.status == 401:
            raise ConnectorError(f"LinkedIn refused the token: it expired or was revoked ({text}). Put a new token in "
                                 "the vault.", code=code, status=401, expired_token=True)
        if answer.status == 403:
            raise ConnectorError(f"LinkedIn says the token may not do this ({text}). It needs rw_organization_admin "
                                 "and its member must be a super admin of the organisation.", code=code, status=403)
        if answer.status >= 500:
            return
        raise ConnectorError(f"LinkedIn answered HTTP {answer.status} ({text}).", code=code, status=answer.status)

    def members(self, organization_id: str) -> list[Member]:
        """Every approved role on the organisation, grouped by member (REVOKED and REQUESTED are left out)."""
        urn = f"urn:li:organization:{organization_id}"
        start = 0
        roles: dict[str, set[str]] = {}
        while True:
            body = self.request("GET", "/rest/organizationAcls",
                                params={"q": "organization", "organization": urn, "start": start, "count": PAGE_SIZE}).body
            elements = body.get("elements") or []
            for element in elements:
                if element.get("state") == "APPROVED" and element.get("roleAssignee"):
                    roles.setdefault(str(element["roleAssignee"]), set()).add(str(element.get("role")))
            start += len(elements)
            if _last_page(body.get("paging") or {}, elements, start):
                break
        return [Member(id=assignee, name=assignee, roles=tuple(sorted(r))) for assignee, r in sorted(roles.items())]

    def remove_member(self, organization_id: str, member: Member) -> Answer:
        """Delete each of the member's ACLs on the organisation (one BATCH_DELETE of their role keys)."""
        org = quote(f"urn:li:organization:{organization_id}", safe="")
        person = quote(member.id, safe="")
        keys = [f"(organization:{org},role:{role},roleAssignee:{person})" for role in member.roles]
        answer = self.request("DELETE", f"/rest/organizationAcls?ids=List({','.join(keys)})",
                              headers={"X-RestLi-Method": "BATCH_DELETE"})
        results = answer.body.get("results") if isinstance(answer.body, dict) else None
        failed = {k: v for k, v in (results or {}).items() if isinstance(v, dict) and int(v.get("status", 204)) >= 300}
        if failed:
            raise ConnectorError(f"LinkedIn refused part of the removal: {json.dumps(failed)[:200]}", status=answer.status)
        return answer
