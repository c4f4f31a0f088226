"""A form sent after the session expired: sign in again and get the form back (issue 16)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select, update

from govern.auth.models import WebSession
from govern.db import utcnow
from govern.grants.models import Grant
from tests.factories import csrf_from, login, make_account, make_person, make_user


def _expire_sessions(db) -> None:
    db.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(days=3)))
    db.commit()


def _grants(db) -> int:
    return db.scalar(select(func.count()).select_from(Grant)) or 0


def _signed_in_manager(app, db, kit):
    manager = make_user(db, kit, roles=("manager",), password="An old manager's password 1")
    account = make_account(db, display_name="Acme Resumed", business_owner_id=manager.user.person_id)
    make_person(db, full_name="Gus Grantee", email="gus@example.com")
    db.commit()
    client = app.test_client()
    login(client, db, manager)
    return manager, account, client


def test_a_grant_form_sent_after_the_session_expired_comes_back_filled_after_sign_in(app, db, kit):
    manager, account, client = _signed_in_manager(app, db, kit)
    path = f"/grants/new?account_id={account.id}"
    token = csrf_from(client.get(path).get_data(as_text=True))
    _expire_sessions(db)
    response = client.post(path, data={"csrf_token": token, "account_id": str(account.id), "person": "gus@example.com",
                                       "role_code": "analyst", "reason": "Covers the summer campaign",
                                       "password": "never-kept", "totp_code": "123456"})
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [path]
    assert _grants(db) == 0  # nothing was done
    # What the session keeps: the safe fields only.
    db.expire_all()
    stored = " ".join(db.scalars(select(WebSession.data)).all())
    assert "Covers the summer campaign" in stored and "gus@example.com" in stored
    assert "never-kept" not in stored and "123456" not in stored and token not in stored

    assert "Sign in again" in client.get(response.headers["Location"]).get_data(as_text=True)
    landed = login(client, db, manager, next_path=path)
    assert landed.headers["Location"] == path
    page = client.get(path).get_data(as_text=True)
    assert 'value="gus@example.com"' in page
    assert "Covers the summer campaign" in page
    assert 'value="analyst" checked' in page
    assert "Here is the form as you left it" in page
    assert "never-kept" not in page and "123456" not in page
    # Shown once: a reload shows the empty form.
    again = client.get(path).get_data(as_text=True)
    assert "Covers the summer campaign" not in again
    # Sent again, with the new session's token, it works.
    sent = client.post(path, data={"csrf_token": csrf_from(page), "account_id": str(account.id), "person": "gus@example.com",
                                   "role_code": "analyst", "reason": "Covers the summer campaign"})
    assert sent.status_code == 302 and _grants(db) == 1


def test_someone_else_signing_in_on_that_browser_does_not_get_the_input(app, db, kit):
    manager, account, client = _signed_in_manager(app, db, kit)
    other = make_user(db, kit, roles=("manager",))
    db.commit()
    path = f"/grants/new?account_id={account.id}"
    token = csrf_from(client.get(path).get_data(as_text=True))
    _expire_sessions(db)
    client.post(path, data={"csrf_token": token, "person": "gus@example.com", "reason": "Private reason"})
    login(client, db, other, next_path=path)
    page = client.get(path).get_data(as_text=True)
    assert "Private reason" not in page and "gus@example.com" not in page


def test_a_post_only_button_after_expiry_goes_back_to_its_page_and_forged_posts_still_get_400(app, db, kit):
    manager, account, client = _signed_in_manager(app, db, kit)
    grant_page = f"/accounts/{account.id}"
    token = csrf_from(client.get("/grants/").get_data(as_text=True))
    _expire_sessions(db)
    response = client.post("/grants/1/approve", data={"csrf_token": token},
                           headers={"Referer": f"http://localhost{grant_page}"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == [grant_page]
    # A referrer elsewhere is not followed.
    _expire_sessions(db)
    login(client, db, manager)
    _expire_sessions(db)
    response = client.post("/grants/1/approve", data={"csrf_token": token}, headers={"Referer": "https://evil.example/x"})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == ["/"]
    # No session at all (a forged cross-site post) and a live session with a bad token: the 400 page.
    fresh = app.test_client()
    assert fresh.post(f"/grants/new?account_id={account.id}", data={"person": "x"}).status_code == 400
    login(client, db, manager)
    refused = client.post(f"/grants/new?account_id={account.id}", data={"csrf_token": "forged", "person": "x"})
    assert refused.status_code == 400 and "The form expired" in refused.get_data(as_text=True)
