"""Schemathesis against the live /api/v1/openapi.json of a real server (gunicorn), with a personal and a
service token: every operation, the stateful links included; no server error, no answer outside the
description. The number of requests it sent is printed (pytest -s shows it) and kept in the report."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from govern.accounts.models import Account
from govern.auth import apitokens
from govern.db import database, utcnow
from govern.web import POLICY
from tests.browser.helpers import REPO_ROOT, VENV_BIN, server_app, server_env
from tests.factories import make_user

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "ada.admin@acme.example"
#: Checks of every answer: no 5xx, the documented status codes, content types and bodies.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
#: Revoking the calling token would end the run early; tests/api/test_tokens.py covers it.
EXCLUDED = "revokeCurrentToken"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(tmp_path: Path, url: str) -> dict[str, str]:
    """A demo company, one user holding every app role, a personal token and an approved service token."""
    app = server_app(tmp_path, url)
    kit = app.extensions["govern.auth"]
    db = database(app).sessionmaker()
    try:
        boss = make_user(db, kit, roles=("admin", "hr", "it", "manager", "auditor"), email="boss@acme.example",
                         full_name="Bea Boss")
        it = make_user(db, kit, roles=("it",), email="ivan.it@acme.example", full_name="Ivan IT")
        it2 = make_user(db, kit, roles=("it",), email="iris.it@acme.example", full_name="Iris IT")
        db.commit()
        scopes = [s for s in apitokens.SCOPES if not apitokens.SCOPES[s].service_only]
        expiry = utcnow() + timedelta(days=30)
        _, personal = apitokens.create_personal_token(db, actor=boss.user, request=apitokens.TokenRequest(
            name="schemathesis personal", scopes=scopes, expires_at=expiry), policy=POLICY)
        account_ids = list(db.scalars(select(Account.id).limit(5)))
        token, service = apitokens.create_service_token(db, actor=it.user, request=apitokens.TokenRequest(
            name="schemathesis service", scopes=[*scopes, "secrets:reveal"], expires_at=expiry, owner=boss.user.person,
            roles=["admin", "hr", "it", "manager"], account_ids=account_ids), policy=POLICY)
        apitokens.approve_service_token(db, actor=it2.user, token=token)
        db.commit()
        return {"personal": personal, "service": service}
    finally:
        db.close()
        database(app).engine.dispose()


@pytest.fixture
def api_server(tmp_path: Path, scratch_database_url: str) -> Any:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = server_env(tmp_path, scratch_database_url, base_url) | {"GOVERN_API_RATE_LIMIT": "1000000"}
    for command in (["init", "--admin-email", ADMIN_EMAIL], ["demo", "seed"]):
        done = subprocess.run([str(VENV_BIN / "govern"), *command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        if done.returncode != 0:
            pytest.fail(f"govern {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    tokens = _seed(tmp_path, scratch_database_url)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([str(VENV_BIN / "gunicorn"), "--config", "python:govern.gunicorn_conf", "--workers", "2",
                                "--bind", f"127.0.0.1:{port}", "govern.wsgi:app"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2):  # noqa: S310 - our own local server
                break
        except OSError:
            time.sleep(0.3)
    try:
        yield base_url, tokens, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _run(base_url: str, token: str, report: Path) -> tuple[int, str, int]:
    done = subprocess.run(
        [str(VENV_BIN / "schemathesis"), "run", f"{base_url}/api/v1/openapi.json", "--header",
         f"Authorization: Bearer {token}", "--checks", CHECKS, "--exclude-operation-id", EXCLUDED,
         "--max-examples", "15", "--seed", "20261204", "--report", "ndjson", "--report-ndjson-path", str(report),
         "--no-color"],
        cwd=report.parent, capture_output=True, text=True, timeout=1200, check=False)
    requests = 0
    for line in report.read_text(encoding="utf-8").splitlines() if report.exists() else []:
        event = json.loads(line)
        for value in _walk(event):
            requests += value
    return done.returncode, done.stdout + done.stderr, requests


def _walk(event: Any) -> list[int]:
    """Each recorded interaction of the ndjson report counts one request."""
    found: list[int] = []
    if isinstance(event, dict):
        if "request" in event and "response" in event and isinstance(event.get("request"), dict):
            found.append(1)
        for value in event.values():
            found += _walk(value)
    elif isinstance(event, list):
        for value in event:
            found += _walk(value)
    return found


@pytest.mark.parametrize("kind", ["personal", "service"])
def test_schemathesis_finds_no_server_error_and_no_schema_break(api_server: Any, kind: str) -> None:
    base_url, tokens, tmp_path = api_server
    code, output, requests = _run(base_url, tokens[kind], tmp_path / f"schemathesis-{kind}.ndjson")
    print(f"schemathesis with the {kind} token: {requests} requests; exit {code}")  # noqa: T201 - the report
    assert code == 0, output[-6000:]
    assert "stateful" in output.lower() or "Stateful" in output, output[-3000:]
    assert requests > 100
