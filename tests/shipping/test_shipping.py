"""Shipping the audit trail to real receivers on loopback: an HTTP collector that checks signatures, rsyslogd,
and a TLS listener whose certificate the configured CA did not sign."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from govern import audit
from govern.audit.models import AuditEvent
from govern.audit.services import verify_chain, write_checkpoint
from govern.auth.models import User
from govern.db import get_session, utcnow
from govern.notifications.models import Notification
from govern.shipping import shipper
from govern.shipping.export import compare_with_export
from govern.shipping.formats import cef_message, event_record, syslog_line
from govern.shipping.models import AuditSink
from govern.shipping.sinks import SinkInput, create_sink, secret_box
from govern.shipping.transports import ShipError, new_signing_secret
from tests.factories import Company, allow_tampering, csrf_from
from tests.shipping.receivers import (
    Collector,
    Rsyslog,
    free_port,
    make_ca,
    rsyslog_available,
    start_collector,
    tls_listener,
    wait_for,
)
from tests.support import TEST_SECRET_KEY, cli_env, require_service

BOX = secret_box([TEST_SECRET_KEY])
GOVERN = str(Path(sys.executable).parent / "govern")


def _events(session, count: int, action: str = "test.shipped") -> list[int]:
    ids = [audit.record(session, action, target_type="account", target_id=n, details={"n": n}).id for n in range(count)]
    session.commit()
    return ids


def _https_sink(session, url: str, *, name: str = "collector", sign: bool = True) -> tuple[AuditSink, str | None]:
    sink, secret = create_sink(session, actor=None, data=SinkInput(name=name, kind="https", url=url, sign=sign), box=BOX,
                               allow_plain_loopback=True)
    session.commit()
    return sink, secret


def _ship(session, sink: AuditSink, **kwargs):
    keys = kwargs.pop("keys", None)
    return shipper.ship_sink(session, sink.id, box=BOX, keys=keys, **kwargs)


def test_a_receiver_that_is_down_gets_everything_in_order_once_it_is_back(scratch_app):
    collector = Collector()
    server, url = start_collector(collector)
    with scratch_app.app_context():
        session = get_session()
        sink, secret = _https_sink(session, url)
        collector.secret = secret.encode()
        first = _events(session, 30)
        # A sink starts with the event of its own creation, then everything after it.
        assert _ship(session, sink, batch_size=10).events == 31
        assert collector.event_ids == [first[0] - 1, *first] and collector.bad_signatures == 0

        server.shutdown()
        server.server_close()  # the receiver is down
        second = _events(session, 25)
        failed = _ship(session, sink, batch_size=10)
        assert failed.error and "unreachable" in failed.error and failed.events == 0
        session.refresh(sink)
        assert sink.cursor == first[-1]  # kept: the next attempt starts after the last acknowledged event
        assert sink.failures == 1 and sink.next_attempt_at > utcnow() and "unreachable" in sink.last_error
        assert _ship(session, sink).skipped == "backing off"

        later = _events(session, 5)
        server2, url2 = start_collector(collector)  # back, on a new port: the admin points the sink at it
        sink.settings_json = json.dumps({"url": url2})
        sink.next_attempt_at = None
        session.commit()
        resumed = _ship(session, sink, batch_size=10)
        assert resumed.error is None and resumed.events >= 30
        shipped = collector.event_ids
        assert shipped == sorted(shipped) and len(shipped) == len(set(shipped))  # in order, each once
        assert set(second + later) <= set(shipped) and set(first) <= set(shipped)
        session.refresh(sink)
        assert sink.failures == 0 and sink.last_error is None
        server2.shutdown()


def test_a_receiver_that_answers_500_then_200_gets_each_event_once(scratch_app):
    collector = Collector(answers=[500])
    server, url = start_collector(collector)
    with scratch_app.app_context():
        session = get_session()
        sink, secret = _https_sink(session, url)
        collector.secret = secret.encode()
        ids = _events(session, 12)
        result = _ship(session, sink)
        assert result.error == "HTTPS receiver answered 500 Internal Server Error"
        session.refresh(sink)
        sink.next_attempt_at = None  # the backoff has passed
        session.commit()
        assert _ship(session, sink).events == 13  # with the sink's own creation
        assert collector.event_ids == [ids[0] - 1, *ids] and collector.requests == 2
        event = collector.batches[0][0]
        assert event["class_name"] == "API Activity" and event["unmapped"]["hash"] and event["unmapped"]["prev_hash"]
        assert event["metadata"]["product"]["name"] == "govern" and event["status"] == "Success"
    server.shutdown()


def test_a_signature_made_with_another_secret_is_refused_by_the_receiver(scratch_app):
    collector = Collector(secret=new_signing_secret().encode())
    server, url = start_collector(collector)
    with scratch_app.app_context():
        session = get_session()
        sink, _secret = _https_sink(session, url)
        _events(session, 3)
        result = _ship(session, sink)
        assert result.error == "HTTPS receiver answered 401 Unauthorized" and collector.bad_signatures == 1
    server.shutdown()


@pytest.mark.slow
def test_a_shipper_killed_mid_batch_resends_only_that_batch(scratch_app, tmp_path):
    """kill -9 of `govern audit ship` while the receiver holds a batch: after a restart nothing is lost and the
    only duplicates are that batch's events, with the same ids."""
    collector = Collector(delay=0.0)
    server, url = start_collector(collector)
    database_url = scratch_app.config["DATABASE_URL"]
    with scratch_app.app_context():
        session = get_session()
        sink, secret = _https_sink(session, url)
        collector.secret = secret.encode()
        ids = _events(session, 200)
    env = cli_env(tmp_path, database_url)
    env["GOVERN_SECRET_KEY"] = TEST_SECRET_KEY  # the key that sealed the sink's signing secret
    collector.delay = 3.0  # the third batch's request hangs...
    collector.answers = [200, 200]
    process = subprocess.Popen([GOVERN, "audit", "ship", "--batch-size", "50"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: collector.requests >= 1, timeout=30)
    collector.delay = 0.0
    # ...let two batches through, then kill the shipper while a batch is in flight.
    assert wait_for(lambda: len(collector.batches) >= 2 and collector.requests >= 3, timeout=30)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    received_before = list(collector.event_ids)

    done = subprocess.run([GOVERN, "audit", "ship", "--batch-size", "50"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    shipped = collector.event_ids
    assert set(shipped) == {ids[0] - 1, *ids}  # nothing lost
    duplicates = sorted({i for i in shipped if shipped.count(i) > 1})
    assert len(duplicates) <= 50 and all(i in received_before for i in duplicates)  # only the batch in flight
    assert shipped[len(received_before):] == sorted(shipped[len(received_before):])  # in order after the restart
    server.shutdown()


def test_a_tls_certificate_the_ca_did_not_sign_is_refused_and_reported(scratch_app, tmp_path):
    _real_ca_file, real_key, real_cert = make_ca(tmp_path, "real-ca")
    other_ca_file, _k, _c = make_ca(tmp_path, "other-ca")
    port, received, stop = tls_listener(tmp_path, real_key, real_cert)
    try:
        with scratch_app.app_context():
            session = get_session()
            sink, _ = create_sink(session, actor=None, box=BOX, data=SinkInput(
                name="siem", kind="syslog", host="127.0.0.1", port=port, tls=True, ca_file=str(other_ca_file)))
            session.commit()
            _events(session, 3)
            cursor = sink.cursor
            result = _ship(session, sink)
            assert result.error and "TLS certificate was refused" in result.error
            session.refresh(sink)
            assert "certificate" in sink.last_error and sink.cursor == cursor
            assert received == []

            sink.settings_json = json.dumps({**sink.settings, "ca_file": str(_real_ca_file)})
            sink.next_attempt_at = None
            session.commit()
            assert _ship(session, sink).events == 4
            assert wait_for(lambda: b"test.shipped" in b"".join(received), timeout=10)
    finally:
        stop.set()


@pytest.mark.slow
def test_rsyslog_receives_the_trail_in_order_and_verify_against_its_file_catches_a_cut(scratch_app, tmp_path):
    require_service("rsyslogd", rsyslog_available(), "apt-get install rsyslog (.ci/run installs it)")
    rsyslog = Rsyslog(tmp_path, free_port())
    rsyslog.start()
    try:
        with scratch_app.app_context():
            session = get_session()
            sink, _ = create_sink(session, actor=None, box=BOX, data=SinkInput(
                name="rsyslog", kind="syslog", host="127.0.0.1", port=rsyslog.port))
            session.commit()
            keys = scratch_app.extensions["govern.audit_keys"]
            first = _events(session, 40)
            write_checkpoint(session, keys)
            session.commit()
            assert _ship(session, sink, batch_size=15, keys=keys).events == 41
            assert wait_for(lambda: len(rsyslog.messages()) >= 42, timeout=20)

            rsyslog.stop()  # down for a while: nothing is lost
            second = _events(session, 10)
            assert _ship(session, sink, keys=keys).error  # (the connection is refused)
            rsyslog.start()
            session.refresh(sink)
            sink.next_attempt_at = None
            session.commit()
            assert _ship(session, sink, keys=keys).events == 10
            assert wait_for(lambda: len(rsyslog.messages()) >= 52, timeout=20)

            messages = rsyslog.messages()
            event_ids = [m["id"] for m in messages if m["type"] == "event"]
            assert event_ids == sorted(set(event_ids)) and set(first + second) <= set(event_ids)
            checkpoint = next(m for m in messages if m["type"] == "checkpoint")
            assert checkpoint["event_id"] == first[-1] and "BEGIN PUBLIC KEY" in checkpoint["public_key_pem"]
            # A receiver can check the chain itself: each event links to the one before.
            by_id = {m["id"]: m for m in messages if m["type"] == "event"}
            assert all(by_id[i]["prev_hash"] == by_id[i - 1]["hash"] for i in event_ids[1:] if i - 1 in by_id)

            assert compare_with_export(session, rsyslog.output).ok
            allow_tampering(session)
            session.execute(AuditEvent.__table__.delete().where(AuditEvent.id == second[-1]))
            cut = compare_with_export(session, rsyslog.output)
            session.rollback()
            assert not cut.ok and f"event {second[-1]} is in the export but not in the database" in cut.problem
    finally:
        rsyslog.stop()


def test_cef_and_rfc5424_lines_carry_the_chain_fields(db):
    event = audit.record(db, "grant.revoked", target_type="grant", target_id=7, outcome="success",
                         details={"reason": "left|the=company"})
    record = event_record(event, "Someone revoked a grant")
    line = syslog_line(record, message=cef_message(record)).decode()
    assert line.startswith("<109>1 ") and " govern - grant.revoked [govern@32473 id=" in line
    assert f'hash="{event.hash}"' in line and f'prev="{event.prev_hash}"' in line
    cef = cef_message(record)
    assert cef.startswith("CEF:0|govern|govern|") and "|grant.revoked|Someone revoked a grant|3|" in cef
    assert f"cs1={event.hash}" in cef and f"externalId={event.id}" in cef


def test_a_lagging_sink_tells_the_admins_once(scratch_app):
    with scratch_app.app_context():
        session = get_session()
        company = Company(scratch_app, session)
        company.add_staff("admin")
        company.commit()
        sink, _ = _https_sink(session, "http://127.0.0.1:9/nothing-listens-here")
        _events(session, 3)
        later = utcnow() + timedelta(hours=1)
        report = shipper.alert_on_lag(session, max_lag=timedelta(minutes=30), now=later)
        session.commit()
        assert report.alerted == ["collector"]
        assert shipper.alert_on_lag(session, max_lag=timedelta(minutes=30), now=later).alerted == []
        admin_id = session.scalar(select(User.id).where(User.email == company.admin.user.email))
        notes = session.scalars(select(Notification).where(Notification.user_id == admin_id,
                                                          Notification.kind == "audit.sink_lagging")).all()
        assert len(notes) == 1 and "collector" in notes[0].title


def test_bad_sink_settings_are_clear_errors_and_change_nothing(db):
    from govern.errors import InvalidError

    for data, field in [
        (SinkInput(name="x", kind="https", url="http://siem.example/collect"), "url"),
        (SinkInput(name="x", kind="https", url="https://user:pw@siem.example/"), "url"),
        (SinkInput(name="x", kind="syslog", host="siem.example", port=70000), "port"),
        (SinkInput(name="", kind="syslog", host="siem.example", port=514), "name"),
        (SinkInput(name="x", kind="syslog", host="siem", port=6514, tls=True, ca_file="/nonexistent.pem"), "ca_file"),
        (SinkInput(name="x", kind="carrier-pigeon"), "kind"),
    ]:
        with pytest.raises(InvalidError) as caught:
            create_sink(db, actor=None, data=data, box=BOX)
        assert field in caught.value.reasons, data
    assert db.scalar(select(AuditSink.id)) is None


def test_ship_error_never_carries_a_secret():
    error = ShipError("HTTPS receiver answered 500 Internal Server Error")
    assert "whsec_" not in str(error)


def test_only_admins_add_sinks_and_the_secret_is_shown_once(app, db, company):
    company.add_staff("admin", "it")
    it_client = company.client_for(company.it)
    assert it_client.get("/jobs/sinks/new").status_code == 403
    admin = company.client_for(company.admin)
    page = admin.get("/jobs/sinks/new")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    form = {"csrf_token": token, "name": "siem", "kind": "https", "host": "", "port": "", "line_format": "rfc5424",
            "ca_file": "", "sign": "y"}  # what the browser sends
    bad = admin.post("/jobs/sinks/new", data={**form, "url": "ftp://siem.example"})
    assert bad.status_code == 400 and "starting with https://" in bad.get_data(as_text=True)
    created = admin.post("/jobs/sinks/new", data={**form, "url": "https://siem.example/collect"})
    html = created.get_data(as_text=True)
    assert created.status_code == 200 and "whsec_" in html and 'id="sink-secret"' in html
    jobs = admin.get("/jobs/").get_data(as_text=True)
    assert "siem" in jobs and "https://siem.example/collect" in jobs and "whsec_" not in jobs
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "audit.sink_created")).one()
    assert "whsec_" not in event.details_json
    assert verify_chain(db).ok
