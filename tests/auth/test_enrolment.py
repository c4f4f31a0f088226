"""Setting up a login: setup secrets are spent once."""

from __future__ import annotations

from govern.auth import enrolment, users
from govern.auth.models import User
from govern.errors import InvalidError
from tests.factories import csrf_from, make_user


def test_one_setup_secret_redeemed_at_once_by_two_sessions_is_accepted_once(tmp_path, scratch_database_url):
    """Two connections race to redeem one setup secret; the atomic update lets exactly one win."""
    import threading

    from govern.app import create_app
    from govern.db import database
    from govern.schema import upgrade
    from tests.support import app_config

    upgrade(scratch_database_url)
    app = create_app(app_config(tmp_path, scratch_database_url))
    kit = app.extensions["govern.auth"]
    with database(app).session_scope() as session:
        who = make_user(session, kit, with_mfa=False)
        with app.test_request_context():
            secret = enrolment.issue_setup_token(session, kit, user=session.get(User, who.id), purpose="setup", actor=None)
        session.commit()
    barrier = threading.Barrier(2)
    results: list[str] = []

    def attempt() -> None:
        barrier.wait()
        with app.test_request_context(), database(app).session_scope() as session:
            try:
                enrolment.redeem_setup_token(session, kit, token=secret, ip="10.0.0.9")
                session.commit()
                results.append("redeemed")
            except InvalidError as exc:
                session.commit()
                results.append(exc.message)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == sorted(["redeemed", enrolment.SETUP_TOKEN_ERROR])
    database(app).engine.dispose()


def test_the_mfa_reset_password_check_honours_the_lockout(app, db, kit):
    admin, who = make_user(db, kit, roles=("admin",)), make_user(db, kit)
    with app.test_request_context():
        secret = users.reset_mfa(db, kit, actor=admin.user, user=who.user)
    db.commit()
    client = app.test_client()
    page = client.get("/setup")
    client.post("/setup", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "token": secret})
    page = client.get("/setup/password")
    token = csrf_from(page.get_data(as_text=True))
    for _ in range(5):
        client.post("/setup/password", data={"csrf_token": token, "current_password": "wrong guess here"})
    response = client.post("/setup/password", data={"csrf_token": token, "current_password": who.password})
    assert response.status_code == 429
