"""The platform clients against a local HTTP server answering the documented shapes: pagination, every
error code, rate limits with backoff, an expired token, a refused removal."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from govern.connectors.clients.base import ConnectorError, Member
from govern.connectors.clients.linkedin import LinkedInClient
from govern.connectors.clients.meta import MetaClient
from govern.connectors.clients.tiktok import TikTokClient
from tests.connectors.fakeplatforms import LINKEDIN_TOKEN, META_TOKEN, TIKTOK_TOKEN, Platforms, serve


@pytest.fixture
def platforms() -> Platforms:
    p = Platforms()
    p.business_users["b1"] = {f"u{i}": {"id": f"u{i}", "name": f"User {i}", "email": f"User{i}@acme.test", "role": "EMPLOYEE"}
                              for i in range(5)}
    p.pages["p1"] = {f"u{i}": ["ANALYZE", "CREATE_CONTENT"] for i in range(5)}
    p.orgs["9"] = [{"role": "ADMINISTRATOR", "roleAssignee": f"urn:li:person:m{i}", "state": "APPROVED",
                    "organization": "urn:li:organization:9"} for i in range(5)]
    p.orgs["9"].append({"role": "ANALYST", "roleAssignee": "urn:li:person:gone", "state": "REVOKED",
                        "organization": "urn:li:organization:9"})
    p.bcs["bc1"] = [{"user_id": f"t{i}", "user_name": f"T {i}", "user_email": f"t{i}@acme.test", "user_role": "STANDARD",
                     "relation_status": "BOUND"} for i in range(5)]
    # An invitation not accepted and a refused one: no access.
    p.bcs["bc1"] += [{"user_id": "t8", "user_name": "Invited", "user_email": "inv@acme.test", "user_role": "ADMIN",
                      "relation_status": "PENDING"},
                     {"user_id": "t9", "user_name": "Refused", "user_email": "no@acme.test", "user_role": "ADMIN",
                      "relation_status": "REJECTED"}]
    return p


@pytest.fixture
def url(platforms: Platforms) -> Iterator[str]:
    with serve(platforms) as base:
        yield base


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def meta(url: str, token: str = META_TOKEN, sleeps: Sleeps | None = None) -> MetaClient:
    return MetaClient(url, token, sleep=sleeps if sleeps is not None else Sleeps(), backoff_start=0.5)


def test_meta_paginates_to_the_end_and_joins_emails(url: str, platforms: Platforms) -> None:
    with meta(url) as client:
        members = client.page_members("p1", "b1")
    assert [m.id for m in members] == [f"u{i}" for i in range(5)]
    assert members[0].email == "user0@acme.test" and members[0].roles == ("ANALYZE", "CREATE_CONTENT")
    # 3 pages of business users + 3 pages of assigned users (2 a page)
    assert client.requests == 6
    assert len(meta(url).instagram_accounts("b1")) == 1


@pytest.mark.parametrize(("code", "words"), [(200, "lacks a permission"), (10, "lacks a permission"),
                                             (100, "rejected a parameter"), (190, "expired")])
def test_meta_error_codes_in_plain_words(url: str, platforms: Platforms, code: int, words: str) -> None:
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "boom", "code": code}})
    with pytest.raises(ConnectorError) as caught:
        meta(url).business_users("b1")
    assert words in caught.value.message and caught.value.code == str(code)
    assert META_TOKEN not in caught.value.message


def test_meta_expired_token(url: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        meta(url, token="old").business_users("b1")
    assert caught.value.expired_token and "old" not in caught.value.message


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_meta_rate_limits_back_off_then_succeed(url: str, platforms: Platforms, code: int) -> None:
    usage = json.dumps({"b1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 1}]})
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "limit", "code": code}},
                    {"X-Business-Use-Case-Usage": usage}, times=2)
    sleeps = Sleeps()
    client = meta(url, sleeps=sleeps)
    assert len(client.business_users("b1")) == 5
    assert sleeps == [60.0, 60.0]  # the header's estimated_time_to_regain_access (1 minute) beats the backoff


def test_meta_rate_limit_gives_up_after_the_attempts(url: str, platforms: Platforms) -> None:
    platforms.fault("GET", "/b1/business_users", 400, {"error": {"message": "limit", "code": 4}}, times=10)
    sleeps = Sleeps()
    with pytest.raises(ConnectorError) as caught:
        meta(url, sleeps=sleeps).business_users("b1")
    assert caught.value.rate_limited and "Gave up after 5 attempts" in caught.value.message
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_meta_server_error_retried(url: str, platforms: Platforms) -> None:
    platforms.fault("GET", "/b1/business_users", 503, {})
    assert len(meta(url).business_users("b1")) == 5


def test_meta_removal_and_refusal(url: str, platforms: Platforms) -> None:
    client = meta(url)
    answer = client.remove_member("p1", "b1", Member("u1", "User 1", ("MANAGE",)))
    assert answer.body == {"success": True} and "u1" not in platforms.pages["p1"]
    platforms.refuse_removal["p1"] = (400, {"error": {"message": "(#200) Cannot remove the last admin", "code": 200}})
    with pytest.raises(ConnectorError) as caught:
        client.remove_member("p1", "b1", Member("u2", "User 2", ("MANAGE",)))
    assert "Cannot remove the last admin" in caught.value.message


def test_linkedin_paginates_keeps_approved_and_sends_version(url: str, platforms: Platforms) -> None:
    with LinkedInClient(url, LINKEDIN_TOKEN, version="202411", sleep=Sleeps()) as client:
        members = client.members("9")
        assert [m.id for m in members] == [f"urn:li:person:m{i}" for i in range(5)]
        assert client.requests == 3  # total 6 elements, 2 a page
        client.remove_member("9", members[0])
    assert len(platforms.orgs["9"]) == 5


def test_linkedin_paging_without_a_total_reads_to_the_end(url: str, platforms: Platforms) -> None:
    platforms.linkedin_total = False
    with LinkedInClient(url, LINKEDIN_TOKEN, version="202411", sleep=Sleeps()) as client:
        members = client.members("9")
    assert [m.id for m in members] == [f"urn:li:person:m{i}" for i in range(5)]  # 6 ACLs, 2 a page, no total


def test_linkedin_429_backoff_and_retry_after(url: str, platforms: Platforms) -> None:
    platforms.fault("GET", "/rest/organizationAcls", 429, {"status": 429, "message": "Too many requests"},
                    {"Retry-After": "7"})
    platforms.fault("GET", "/rest/organizationAcls", 429, {"status": 429, "message": "Too many requests"})
    sleeps = Sleeps()
    assert len(LinkedInClient(url, LINKEDIN_TOKEN, sleep=sleeps, backoff_start=0.5).members("9")) == 5
    assert sleeps == [7.0, 1.0]


@pytest.mark.parametrize(("status", "words", "expired"), [(401, "expired", True), (403, "rw_organization_admin", False),
                                                          (400, "HTTP 400", False)])
def test_linkedin_errors(url: str, platforms: Platforms, status: int, words: str, expired: bool) -> None:
    platforms.fault("GET", "/rest/organizationAcls", status, {"status": status, "message": "no"})
    with pytest.raises(ConnectorError) as caught:
        LinkedInClient(url, LINKEDIN_TOKEN, sleep=Sleeps()).members("9")
    assert words in caught.value.message and caught.value.expired_token is expired


def test_linkedin_expired_token(url: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        LinkedInClient(url, "stale", sleep=Sleeps()).members("9")
    assert caught.value.expired_token


def test_linkedin_refused_removal(url: str, platforms: Platforms) -> None:
    platforms.refuse_removal["9"] = (403, {"status": 403, "message": "Not enough permissions to access"})
    with pytest.raises(ConnectorError) as caught:
        LinkedInClient(url, LINKEDIN_TOKEN, sleep=Sleeps()).remove_member(
            "9", Member("urn:li:person:m1", "m1", ("ADMINISTRATOR",)))
    assert "Not enough permissions" in caught.value.message


def test_tiktok_pages_errors_and_removal(url: str, platforms: Platforms) -> None:
    sleeps = Sleeps()
    client = TikTokClient(url, TIKTOK_TOKEN, sleep=sleeps, backoff_start=0.5)
    members = client.members("bc1")
    assert len(members) == 5 and client.requests == 4 and members[0].email == "t0@acme.test"  # 7 rows, 2 a page
    assert "t8" not in {m.id for m in members} and "t9" not in {m.id for m in members}
    platforms.fault("GET", "/open_api/v1.3/bc/member/get/", 200, {"code": 40100, "message": "Too many requests"})
    assert len(client.members("bc1")) == 5 and sleeps == [0.5]
    platforms.fault("GET", "/open_api/v1.3/bc/member/get/", 200, {"code": 40001, "message": "No permission"})
    with pytest.raises(ConnectorError, match="may not do this"):
        client.members("bc1")
    platforms.fault("GET", "/open_api/v1.3/bc/member/get/", 200, {"code": 40002, "message": "bc_id is invalid"})
    with pytest.raises(ConnectorError, match="bc_id is invalid"):
        client.members("bc1")
    client.remove_member("bc1", members[0])  # by user_id: the documented way for a member who joined
    assert "t0" not in {m["user_id"] for m in platforms.bcs["bc1"]} and len(platforms.bcs["bc1"]) == 6
    client.remove_member("bc1", Member("t3", "T 3", ("STANDARD",)))  # no email needed
    assert "t3" not in {m["user_id"] for m in platforms.bcs["bc1"]}
    platforms.refuse_removal["bc1"] = (200, {"code": 40001, "message": "Cannot remove the owner"})
    with pytest.raises(ConnectorError, match="Cannot remove the owner"):
        client.remove_member("bc1", members[1])
    with pytest.raises(ConnectorError) as caught:
        TikTokClient(url, "old", sleep=sleeps).members("bc1")
    assert caught.value.expired_token
