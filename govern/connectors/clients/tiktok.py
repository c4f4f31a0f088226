"""TikTok Business Center API: members, and deleting one. Errors are in the JSON body's code (0 = ok).

Only members whose relation_status is BOUND hold access; pages hold at most 20 members."""

from __future__ import annotations

from govern.connectors.clients.base import Answer, ConnectorError, HttpBase, Member

#: The documented maximum page size of /bc/member/get/.
PAGE_SIZE = 20
#: relation_status of a member who joined; PENDING (an invitation not accepted) and REJECTED hold no access.
JOINED = "BOUND"
RATE_LIMIT_CODES = {40100, 40133, 50002}
EXPIRED_CODES = {40102, 40104, 40105}
PERMISSION_CODES = {40001, 40300, 40301}


class TikTokClient(HttpBase):
    """One TikTok Business Center."""

    platform = "TikTok"

    def auth_headers(self) -> dict[str, str]:
        return {"Access-Token": self._token}

    def check(self, answer: Answer) -> None:
        body = answer.body if isinstance(answer.body, dict) else {}
        code = body.get("code")
        if code == 0 and answer.status < 400:
            return
        text = str(body.get("message") or f"HTTP {answer.status}")[:300]
        if code in RATE_LIMIT_CODES or answer.status == 429:
            raise ConnectorError(f"TikTok's rate limit was reached (code {code}).", code=str(code), status=answer.status,
                                 rate_limited=True)
        if code in EXPIRED_CODES:
            raise ConnectorError(f"TikTok refused the access token: it expired or was revoked ({text}). Put a new "
                                 "token in the vault.", code=str(code), status=answer.status, expired_token=True)
        if code in PERMISSION_CODES:
            raise ConnectorError(f"TikTok says the token may not do this (code {code}: {text}). The app needs the "
                                 "Business Center member permissions and an admin's authorisation.",
                                 code=str(code), status=answer.status)
        if answer.status >= 500 and code is None:
            return
        raise ConnectorError(f"TikTok answered an error (code {code}: {text}).", code=str(code), status=answer.status)

    def members(self, bc_id: str) -> list[Member]:
        """Every member of the Business Center with their role, page by page to the last."""
        page = 1
        members: list[Member] = []
        while True:
            data = self.request("GET", "/open_api/v1.3/bc/member/get/",
                                params={"bc_id": bc_id, "page": page, "page_size": PAGE_SIZE}).body.get("data") or {}
            for row in data.get("list") or []:
                uid = str(row.get("user_id") or "")
                if uid and str(row.get("relation_status") or JOINED) == JOINED:
                    email = row.get("user_email")
                    members.append(Member(id=uid, name=str(row.get("user_name") or uid),
                                          roles=(str(row.get("user_role") or "STANDARD"),),
                                          email=str(email).lower() if email else None))
            total_pages = int((data.get("page_info") or {}).get("total_page") or 1)
            if page >= total_pages:
                return members
            page += 1

    def remove_member(self, bc_id: str, member: Member) -> Answer:
        """POST /bc/member/delete/: a member who joined by their user_id (the API takes user_email only to
        revoke an invitation, which is not access)."""
        return self.request("POST", "/open_api/v1.3/bc/member/delete/", json={"bc_id": bc_id, "user_id": member.id})
