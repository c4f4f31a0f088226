"""Rotation pages: permissions of every endpoint, the dashboard and its SVG charts, the queue's
query count, the stage-confirm flow, intervals and "rotate now" through the web."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from govern.db import utcnow
from govern.rotation.models import RotationTask
from govern.rotation.schedules import schedules
from govern.rotation.tasks import open_task
from govern.vault.models import SecretVersion
from tests.factories import make_user
from tests.rotation.conftest import ROLE_CASES, age, check_endpoints, client_for, post_form, vault_secret
from tests.sql_capture import statements

READS = ["/rotation/", "/rotation/secrets", "/rotation/tasks/{task}"]
WRITES = ["/rotation/tasks/{task}/stage", "/rotation/tasks/{task}/staged", "/rotation/tasks/{task}/confirm",
          "/rotation/tasks/{task}/cancel", "/rotation/tasks/{task}/assign", "/rotation/secrets/{secret}/rollback",
          "/rotation/secrets/{secret}/rotate", "/rotation/secrets/{secret}/interval"]


@pytest.mark.parametrize(("roles", "may_read", "may_write"), ROLE_CASES)
def test_every_rotation_endpoint_checks_its_permission(app, db, kit, world, setup, roles, may_read, may_write):
    secret, task = setup
    ids = {"task": task.id, "secret": secret.id}
    client = client_for(app, db, make_user(db, kit, roles=roles))
    check_endpoints(client, READS, WRITES, ids, may_read=may_read, may_write=may_write)


def test_unknown_objects_are_not_found(app, db, world, setup):
    client = client_for(app, db, world.it)
    for path in ("/rotation/tasks/99999",):
        assert client.get(path).status_code == 404
    assert post_form(client, "/rotation/secrets/99999/rotate", {"note": "x"}).status_code == 404


def test_get_never_changes_state(app, db, world, setup):
    client = client_for(app, db, world.it)
    _, task = setup
    for path in (f"/rotation/tasks/{task.id}/stage", f"/rotation/tasks/{task.id}/confirm", f"/rotation/tasks/{task.id}/cancel"):
        assert client.get(path).status_code == 405


def test_the_dashboard_shows_counts_the_queue_and_two_svg_charts_without_inline_styles_or_scripts(app, db, world, setup):
    client = client_for(app, db, world.it)
    page = client.get("/rotation/").get_data(as_text=True)
    assert "Instagram" in page and "Task queue (1)" in page and "Instagram login" in page
    assert page.count("<svg") == 2 and 'id="age-chart"' in page and 'id="compliance-chart"' in page
    assert "style=" not in page and "<style" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "Rotation" in client.get("/").get_data(as_text=True) and 'href="/rotation/"' in client.get("/").get_data(as_text=True)


def test_the_queue_costs_the_same_number_of_queries_for_2_or_20_tasks(app, db, ring, world, connection):
    client = client_for(app, db, world.auditor)
    for i in range(2):
        s = vault_secret(db, ring, world, label=f"few {i}")
        open_task(db, actor=None, secret=s, reason="scheduled")
    db.commit()
    few = len(statements(connection, lambda: client.get("/rotation/")))
    for i in range(18):
        s = vault_secret(db, ring, world, account=world.other_account, label=f"many {i}")
        open_task(db, actor=world.it.user, secret=s, reason="manual", note="x")
    db.commit()
    many = len(statements(connection, lambda: client.get("/rotation/")))
    assert many == few
    page = client.get("/rotation/").get_data(as_text=True)
    assert page.count('class="queue-row"') == 20


def test_the_queue_is_paginated(app, db, ring, world):
    for i in range(30):
        s = vault_secret(db, ring, world, label=f"s{i}")
        open_task(db, actor=None, secret=s, reason="scheduled")
    db.commit()
    client = client_for(app, db, world.it)
    first = client.get("/rotation/").get_data(as_text=True)
    second = client.get("/rotation/?page=2").get_data(as_text=True)
    assert first.count('class="queue-row"') == 25 and second.count('class="queue-row"') == 5
    assert client.get("/rotation/?page=abc").status_code == 200


def test_it_generates_stages_and_confirms_through_the_pages(app, db, world, setup):
    secret, task = setup
    client = client_for(app, db, world.it)
    staged = post_form(client, f"/rotation/tasks/{task.id}/stage", {"mode": "generate"}, f"/rotation/tasks/{task.id}")
    assert staged.status_code == 303 and staged.headers["Location"] == f"/rotation/tasks/{task.id}"
    html = client.get(staged.headers["Location"]).get_data(as_text=True)
    generated = re.search(r'id="generated-value">([^<]+)<', html).group(1)
    later = client.get(f"/rotation/tasks/{task.id}").get_data(as_text=True)
    assert generated not in later and "Show the staged value" in later
    shown = post_form(client, f"/rotation/tasks/{task.id}/staged", token_page=f"/rotation/tasks/{task.id}").get_data(as_text=True)
    assert "Staged value" in shown
    response = post_form(client, f"/rotation/tasks/{task.id}/confirm", {"checklist": ["changed", "sessions"]}, f"/rotation/tasks/{task.id}")
    assert response.status_code == 302
    db.expire_all()
    assert db.get(RotationTask, task.id).status == "done"
    again = post_form(client, f"/rotation/tasks/{task.id}/confirm", {"checklist": ["changed"]}, f"/rotation/tasks/{task.id}")
    assert again.status_code == 302
    assert "Conflict: This rotation was done by" in client.get(again.headers["Location"]).get_data(as_text=True)
    dashboard = client.get("/rotation/").get_data(as_text=True)
    assert "Task queue (0)" in dashboard and generated not in dashboard


def test_bad_input_changes_nothing_and_says_why(app, db, world, setup):
    secret, task = setup
    client = client_for(app, db, world.it)
    response = post_form(client, f"/rotation/tasks/{task.id}/stage", {"mode": "typed", "value": ""}, f"/rotation/tasks/{task.id}")
    assert response.status_code == 400 and "Enter the value" in response.get_data(as_text=True)
    response = post_form(client, f"/rotation/secrets/{secret.id}/interval", {"choice": "days", "interval_days": "0"})
    assert response.status_code == 302
    response = post_form(client, f"/rotation/tasks/{task.id}/confirm", {}, f"/rotation/tasks/{task.id}")
    assert response.status_code == 302
    db.expire_all()
    assert db.get(RotationTask, task.id).status == "open"
    assert db.scalar(select(func.count()).select_from(SecretVersion).where(SecretVersion.secret_id == secret.id)) == 1


def test_staging_needs_a_fresh_second_factor(app, db, world, setup):
    _, task = setup
    client = client_for(app, db, world.it)
    from govern.auth.models import WebSession

    db.execute(WebSession.__table__.update().values(mfa_verified_at=utcnow() - timedelta(hours=1)))
    db.commit()
    response = post_form(client, f"/rotation/tasks/{task.id}/stage", {"mode": "generate"}, f"/rotation/tasks/{task.id}")
    assert response.status_code == 401
    db.expire_all()
    assert db.get(RotationTask, task.id).status == "open"


def test_rotate_now_and_interval_forms(app, db, world, setup):
    secret, _ = setup
    other = vault_secret(db, app.extensions["govern.keyring"], world, label="Fresh one")
    client = client_for(app, db, world.it)
    response = post_form(client, f"/rotation/secrets/{other.id}/rotate", {"note": "suspicious login alert"})
    assert response.status_code == 302 and "/rotation/tasks/" in response.headers["Location"]
    saved = post_form(client, f"/rotation/secrets/{other.id}/interval", {"choice": "days", "interval_days": "30"})
    client.get(saved.headers["Location"])  # consume the flash
    assert schedules(db, [other])[0].interval_days == 30
    listing = client.get("/rotation/secrets?state=overdue").get_data(as_text=True)
    assert "Instagram login" in listing and "Fresh one" not in listing


def test_the_vault_secret_page_shows_rotation_state_and_it_rotates_from_there(app, db, world, ring):
    secret = vault_secret(db, ring, world, label="Instagram login")
    age(db, secret, 120)
    it = client_for(app, db, world.it)
    page = it.get(f"/vault/secrets/{secret.id}").get_data(as_text=True)
    assert 'id="rotation-state"' in page and "overdue" in page and "every 90 days" in page
    assert 'id="rotate-now"' in page and 'id="open-task"' not in page
    # A refusal (no reason) returns to the secret page, nothing opened.
    refused = post_form(it, f"/rotation/secrets/{secret.id}/rotate", {"note": "", "from": "vault"}, f"/vault/secrets/{secret.id}")
    assert refused.headers["Location"].endswith(f"/vault/secrets/{secret.id}")
    assert db.scalar(select(func.count()).select_from(RotationTask)) == 0
    opened = post_form(it, f"/rotation/secrets/{secret.id}/rotate", {"note": "platform asked", "from": "vault"},
                       f"/vault/secrets/{secret.id}")
    task = db.scalars(select(RotationTask).where(RotationTask.secret_id == secret.id)).one()
    assert opened.headers["Location"].endswith(f"/rotation/tasks/{task.id}")
    page = it.get(f"/vault/secrets/{secret.id}").get_data(as_text=True)
    assert f'href="/rotation/tasks/{task.id}" id="open-task"' in page and 'id="rotate-now"' not in page
    assert f'href="/vault/secrets/{secret.id}"' in it.get(f"/rotation/tasks/{task.id}").get_data(as_text=True)
    # Admins read rotation but may not start one; a publisher sees no rotation section at all.
    admin_page = client_for(app, db, world.admin).get(f"/vault/secrets/{secret.id}").get_data(as_text=True)
    assert 'id="rotation-state"' in admin_page and 'id="rotate-now"' not in admin_page
    publisher_page = client_for(app, db, world.publisher).get(f"/vault/secrets/{secret.id}")
    assert publisher_page.status_code == 200 and 'id="rotation-state"' not in publisher_page.get_data(as_text=True)


def test_the_account_page_shows_each_secrets_rotation_state_to_rotation_readers(app, db, world, ring):
    old = vault_secret(db, ring, world, label="Old login")
    age(db, old, 120)
    vault_secret(db, ring, world, label="Fresh login")
    task = open_task(db, actor=None, secret=old, reason="exposure", note="lost access").task
    db.commit()
    page = client_for(app, db, world.it).get(f"/accounts/{world.account.id}").get_data(as_text=True)
    secrets_card = page.split('id="secrets"')[1].split('id="exposures"')[0]
    assert "<th>Rotation</th>" in secrets_card and "overdue" in secrets_card and "fine" in secrets_card
    assert f'href="/rotation/tasks/{task.id}">rotate now</a>' in secrets_card
    manager = client_for(app, db, world.manager).get(f"/accounts/{world.account.id}").get_data(as_text=True)
    assert "<th>Rotation</th>" not in manager
