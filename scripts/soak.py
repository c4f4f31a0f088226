"""govern under faults for a bounded time (issue 22): does it lose anything, and how fast does it recover?

    scripts/soak [--quick] [--seconds N] [--out DIR]

A dev/test script: it uses test dependencies (aiosmtpd for the SMTP server, pyotp for sign-in codes).

1. Starts its own PostgreSQL (initdb in a temporary folder owned by the `postgres` OS user, its own port;
   PostgreSQL refuses to run as root), its own Redis (its own port) and its own SMTP server (aiosmtpd on
   loopback), so it can kill and stop them without touching the servers the machine provides. Seeds a small
   company with scripts/bench.py's seeding, then serves govern with gunicorn (4 sync workers) on them.
2. Drives a mix of real users through the web pages (password + TOTP sign-in, CSRF tokens, forms): sign-ins,
   grant requests and approvals, reveals, rotations staged and confirmed, offboardings started and their
   items done, SCIM deactivations (bearer token). Every write govern acknowledged (a success flash after the
   redirect, the revealed value, a SCIM 200) is logged to writes.jsonl with its ids and time.
   `govern jobs run` runs in a loop meanwhile (it sends the outbox).
3. Faults on a schedule: SIGKILL a gunicorn worker every 20 s; kill -9 PostgreSQL once and start it again;
   stop Redis for 30 s; the SMTP server refuses every message for a minute; kill -9 `govern jobs run` while
   its email step is sending. --quick scales the windows down, every kind still happens.
4. Afterwards: drains the outbox (`govern jobs run` until nothing is pending), then checks every acknowledged
   write is in the database with its audit event, no offboarded person holds an active grant, `govern audit
   verify` and `govern check` pass, no 5xx but 503 during the outages and none after them, every email was
   accepted by the SMTP server exactly once (by the outbox id in its Message-ID); and prints requests, error
   rate and p95 per phase (normal, each fault, after) and the recovery time of each fault.

Writes results.json, writes.jsonl, requests.jsonl and the logs to --out. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402  - its seeding, free_port and percentile
import pyotp  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
GUNICORN = bench.GUNICORN
GOVERN = bench.GOVERN
WORKERS = 4
CLAIM_SECONDS = 60
CSRF = bench.CSRF
#: A small company: a few users per role (one per client thread), some accounts and secrets.
SCALE = bench.Scale(people=120, accounts=24, grants=240, secrets_per_account=2, exposures=0, audit_events=0,
                    rotation_tasks=1, scheduled_offboardings=0, immediate_offboardings=0, leaver_reveal_accounts=2,
                    leaver_other_accounts=2, import_people=0, clients=3, seconds_per_page=0)
#: Statuses the client counts as govern failing (0 = no answer: connection refused or reset).
SERVER_ERROR = 500


def log(message: str) -> None:
    """Progress on stderr, with the time."""
    print(f"[soak {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- the schedule ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """When each fault happens, in seconds from the start of the load."""

    seconds: float
    worker_kill_every: float
    postgres_kill_at: float
    redis_stop_at: float
    redis_down_for: float
    smtp_refuse_at: float
    smtp_refuse_for: float
    jobs_kill_at: float
    #: No fault from here on: the "after" phase.
    calm_at: float
    #: How long after a worker kill its requests count as that fault's.
    worker_window: float = 5.0


def plan_for(seconds: float, quick: bool) -> Plan:
    """The full schedule (every fault at its issue's length), or --quick's shorter one."""
    if quick:
        # SMTP refuses for 12 s before the jobs kill (which stops the refusals while it holds a message),
        # so refusals really happen in the short run too.
        return Plan(seconds=seconds, worker_kill_every=12, postgres_kill_at=8, redis_stop_at=18, redis_down_for=8,
                    smtp_refuse_at=20, smtp_refuse_for=12, jobs_kill_at=33, calm_at=seconds - 16)
    f = seconds / 300  # the 5-minute schedule, stretched for --seconds
    return Plan(seconds=seconds, worker_kill_every=20, postgres_kill_at=45 * f, redis_stop_at=80 * f, redis_down_for=30,
                smtp_refuse_at=125 * f, smtp_refuse_for=60, jobs_kill_at=130 * f, calm_at=seconds - 75 * f)


@dataclass
class Fault:
    """One fault as it happened (times relative to the load's start)."""

    kind: str
    start: float
    end: float | None = None
    note: str = ""
    #: Seconds from the end of the fault to the first request that succeeded after it.
    recovery_seconds: float | None = None


class Timeline:
    """The faults, and the load's clock."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.faults: list[Fault] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.t0

    def begin(self, kind: str, note: str = "") -> Fault:
        """A fault starts now."""
        fault = Fault(kind, self.now(), note=note)
        with self.lock:
            self.faults.append(fault)
        log(f"fault: {kind} {note}".rstrip())
        return fault

    def end(self, fault: Fault) -> None:
        """The fault is over now."""
        fault.end = self.now()
        log(f"fault over: {fault.kind} after {fault.end - fault.start:.1f} s")


# --- the servers the soak owns ---------------------------------------------------------------------------


class Postgres:
    """A throwaway PostgreSQL cluster run as the `postgres` OS user, on its own port and socket folder."""

    def __init__(self, out: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="govern-soak-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = bench.free_port()
        self.log = out / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                           "--no-sync", "-E", "UTF8"], quiet=True)

    @staticmethod
    def _as_postgres(args: list[str], quiet: bool = False) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,  # noqa: S603, S607
                       stdout=subprocess.DEVNULL if quiet else None)

    @property
    def admin_url(self) -> str:
        """The superuser's URL of the maintenance database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """govern's database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/govern"

    def start(self, timeout: float = 60) -> float:
        """Start the postmaster and wait until it accepts connections; returns when it did (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "ab") as sink:
                self.process = subprocess.Popen(  # noqa: S603
                    ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),  # noqa: S607
                     "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=60"],
                    stdout=sink, stderr=subprocess.STDOUT)
            while time.monotonic() < deadline and self.process.poll() is None:
                if self.ready():
                    return time.monotonic()
                time.sleep(0.1)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.log}")
            # Exited: the killed postmaster's backends may still hold its shared memory for a moment.
            time.sleep(0.5)

    def ready(self) -> bool:
        """Does it answer a query?"""
        try:
            import psycopg  # noqa: PLC0415 - govern and its drivers load after the soak set things up

            with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=1) as c:
                c.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - not up yet, whatever the reason
            return False

    def postmaster_pid(self) -> int:
        """The postmaster's process id (runuser is its parent)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill9(self) -> None:
        """kill -9 the postmaster (its backends notice and exit)."""
        os.kill(self.postmaster_pid(), signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        """Fast shutdown, then remove the cluster."""
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], quiet=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A redis-server of the soak's own: no persistence, its own port."""

    def __init__(self, out: Path) -> None:
        self.port = bench.free_port()
        self.log = out / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """govern's GOVERN_REDIS_URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        import redis  # noqa: PLC0415 - govern and its drivers load after the soak set things up

        with open(self.log, "ab") as sink:
            self.process = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",  # noqa: S603
                                             "--appendonly", "no"], stdout=sink, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start; see {self.log}")

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Mailbox:
    """The SMTP server's handler: keeps what it accepted, refuses on demand, can hold a DATA (to kill the sender)."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []  # (Message-ID, outbox id)
        self.refuse = False
        self.refused = 0
        self.hold_seconds = 0.0
        self.holding = threading.Event()
        self.lost_mid_data = 0
        #: Outbox ids of the messages held while the soak killed their sender.
        self.held_ids: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.refuse:
            self.refused += 1
            return "451 4.3.0 soak: refusing for now"
        if self.hold_seconds:
            held = re.search(r"govern-outbox-(\d+)", envelope.content.decode(errors="replace"))
            self.held_ids.append(held.group(1) if held else "")
            self.holding.set()
            await asyncio.sleep(self.hold_seconds)
            if session.transport is None or session.transport.is_closing():
                # The sender died before our 250: a real server would not deliver it (the client cannot know).
                self.lost_mid_data += 1
                return "451 4.3.0 lost"
        message = email.message_from_bytes(envelope.content)
        message_id = str(message.get("Message-ID", ""))
        found = re.search(r"govern-outbox-(\d+)", message_id)
        with self.lock:
            self.accepted.append((message_id, found.group(1) if found else ""))
        return "250 Message accepted for delivery"


# --- the HTTP client ------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request as the client saw it."""

    t: float
    seconds: float
    status: int  # 0: no answer (refused, reset, timed out)
    action: str
    user: str


class Recorder:
    """Every request, and every acknowledged write (appended to writes.jsonl as it happens)."""

    def __init__(self, out: Path, timeline: Timeline) -> None:
        self.samples: list[Sample] = []
        self.timeline = timeline
        self.lock = threading.Lock()
        self.writes_file = open(out / "writes.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - open for the run
        self.writes: list[dict[str, Any]] = []

    def sample(self, sample: Sample) -> None:
        """Keep one request."""
        with self.lock:
            self.samples.append(sample)

    def acknowledged(self, kind: str, **ids: Any) -> None:
        """govern said this write is done: log it (never a secret value)."""
        row = {"kind": kind, "t": round(self.timeline.now(), 3), "at": datetime.now(UTC).isoformat(), **ids}
        with self.lock:
            self.writes.append(row)
            self.writes_file.write(json.dumps(row) + "\n")
            self.writes_file.flush()


#: The last TOTP step used per user: govern refuses a code twice (replay), so a user signs in once a step.
_TOTP_STEPS: dict[str, int] = {}
_TOTP_LOCK = threading.Lock()


def fresh_code(email_address: str, seed: str, stop: threading.Event) -> str | None:
    """A code of a TOTP step this user has not used yet (waits for the next step when needed)."""
    totp = pyotp.TOTP(seed)
    while not stop.is_set():
        step = int(time.time() // 30)
        with _TOTP_LOCK:
            if _TOTP_STEPS.get(email_address, -1) < step:
                _TOTP_STEPS[email_address] = step
                return totp.at(step * 30)
        stop.wait(min(1.0, 30 - time.time() % 30 + 0.05))
    return None


class NoAnswerError(Exception):
    """The server did not answer (connection refused, reset, timed out)."""


class Browser:
    """One user's browser: cookies, CSRF tokens, and every request recorded (no retry: a browser does not
    silently resend a POST)."""

    def __init__(self, port: int, user: str, seed: str, recorder: Recorder, stop: threading.Event) -> None:
        self.port = port
        self.user = user
        self.seed = seed
        self.recorder = recorder
        self.stop = stop
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, Any] | None = None, *, action: str,
                json_body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        """One request: status, body text and Location; raises NoAnswerError when there was no answer."""
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body: str | None = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            sent.update({"Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{self.port}",
                         "Referer": f"http://127.0.0.1:{self.port}{path}"})
        elif json_body is not None:
            body = json.dumps(json_body)
            sent["Content-Type"] = "application/scim+json"
        started = time.monotonic()
        t = self.recorder.timeline.now()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.recorder.sample(Sample(t, time.monotonic() - started, 0, action, self.user))
            raise NoAnswerError(f"{method} {path}: {exc!r}") from None
        finally:
            conn.close()
        self.recorder.sample(Sample(t, time.monotonic() - started, response.status, action, self.user))
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data.decode(errors="replace"), response.getheader("Location") or ""

    def get(self, path: str, action: str) -> str:
        """GET a page that must answer 200 (after signing in again if the session is gone)."""
        status, body, location = self.request("GET", path, action=action)
        if status == 302 and "/login" in location:
            self.login()
            status, body, location = self.request("GET", path, action=action)
        if status != 200:
            raise UnexpectedError(f"GET {path}: {status} {location}")
        return body

    def csrf(self, path: str, action: str) -> tuple[str, str]:
        """The page at ``path`` and its form's CSRF token."""
        body = self.get(path, action)
        found = CSRF.search(body)
        if found is None:
            raise UnexpectedError(f"no form at {path}")
        return body, found.group(1)

    def login(self) -> None:
        """Password, then a TOTP code of a step not used before."""
        self.cookies.clear()
        status, body, _ = self.request("GET", "/login", action="sign_in")
        found = CSRF.search(body)
        if status != 200 or found is None:
            raise UnexpectedError(f"GET /login: {status}")
        status, _, location = self.request("POST", "/login", {"csrf_token": found.group(1), "email": self.user,
                                                              "password": bench.PASSWORD}, action="sign_in")
        if status != 302 or "/login/code" not in location:
            raise UnexpectedError(f"password step for {self.user}: {status} {location}")
        status, body, _ = self.request("GET", "/login/code", action="sign_in")
        found = CSRF.search(body)
        code = fresh_code(self.user, self.seed, self.stop)
        if status != 200 or found is None or code is None:
            raise UnexpectedError(f"GET /login/code: {status}")
        status, _, location = self.request("POST", "/login/code", {"csrf_token": found.group(1), "code": code},
                                           action="sign_in")
        if status != 302 or "/login" in location:
            raise UnexpectedError(f"code step for {self.user}: {status} {location}")
        self.recorder.acknowledged("sign_in", email=self.user)

    def reauth(self, location: str) -> None:
        """The fresh second factor a sensitive action asks for."""
        path = urllib.parse.urlsplit(location)
        target = path.path + ("?" + path.query if path.query else "")
        body, token = self.csrf(target, "reauth")
        nxt = urllib.parse.parse_qs(path.query).get("next", [""])[0]
        code = fresh_code(self.user, self.seed, self.stop)
        if code is None:
            raise UnexpectedError("stopped")
        status, _, location = self.request("POST", "/reauth", {"csrf_token": token, "code": code, "next": nxt}, action="reauth")
        if status != 302 or "/reauth" in location or "/login" in location:
            raise UnexpectedError(f"reauth: {status} {location}")

    def post(self, path: str, form: dict[str, Any], action: str) -> tuple[int, str, str]:
        """POST a form; signs in again, or re-authenticates, when govern asks, and posts again."""
        for _ in range(3):
            status, body, location = self.request("POST", path, form, action=action)
            if status == 302 and "/login" in location and "/login/code" not in location:
                self.login()
                return status, body, location  # the CSRF token belonged to the old session: the caller starts over
            if status == 302 and "/reauth" in location:
                self.reauth(location)
                continue
            return status, body, location
        raise UnexpectedError(f"POST {path}: re-authentication loop")

    def flash_after(self, location: str, action: str) -> str:
        """The page a POST redirected to (carrying the flash that says what happened)."""
        path = urllib.parse.urlsplit(location)
        return self.get(path.path + ("?" + path.query if path.query else ""), action)


class UnexpectedError(Exception):
    """govern answered, but not as a working app would (the step is abandoned, the sample is kept)."""


# --- what the users do ------------------------------------------------------------------------------------


@dataclass
class World:
    """What the users know: ids from the seeding, and the running servers."""

    port: int
    seeds: dict[str, str]
    account_ids: list[int]
    reveal_secret_ids: list[int]
    rotate_secret_ids: list[int]
    leavers: list[str]  # emails of people HR offboards
    scim_people: list[int]  # person ids SCIM deactivates
    scim_token: str
    recorder: Recorder
    stop: threading.Event
    counters: Counter[str] = field(default_factory=Counter)

    def browser(self, user: str) -> Browser:
        """A browser of ``user``, not signed in yet."""
        return Browser(self.port, user, self.seeds[user], self.recorder, self.stop)


def flashed(body: str, text_: str) -> bool:
    """Does the page carry ``text_`` (a success flash)? Tolerates HTML escaping of quotes and apostrophes."""
    return text_ in body.replace("&#39;", "'").replace("&#x27;", "'").replace("&quot;", '"')


def request_and_approve(world: World, n: int) -> None:
    """A staff member asks for a role on an account; an admin approves the oldest pending request."""
    staff, admin = world.browser(f"staff{n}@bench.example"), world.browser(f"admin{n}@bench.example")
    staff.login()
    admin.login()
    turn = 0
    while not world.stop.is_set():
        turn += 1
        try:
            account_id = world.account_ids[(turn * 5 + n) % len(world.account_ids)]
            page, token = staff.csrf(f"/grants/request?account_id={account_id}", "grant_request")
            roles = re.findall(r'name="role_code" value="([^"]+)"', page)
            if not roles:
                raise UnexpectedError("no role to request")
            reason = f"soak-request-{uuid.uuid4().hex[:12]}"
            status, _, location = staff.post("/grants/request", {"csrf_token": token, "account_id": account_id,
                                                                  "role_code": random.choice(roles), "reason": reason},  # noqa: S311 - picking work, not secrets
                                             "grant_request")
            if status == 302 and location.rstrip("/").endswith("/grants") and flashed(
                    staff.flash_after(location, "grant_request"), "Your request was sent"):
                world.recorder.acknowledged("grant_requested", reason=reason, account_id=account_id)
            else:
                world.counters["grant_request_refused"] += 1
            page, token = admin.csrf("/grants/?status=requested", "grant_approve")
            pending = re.findall(r'action="/grants/(\d+)/approve"', page)
            if pending:
                grant_id = int(random.choice(pending))  # noqa: S311 - picking work, not secrets
                status, _, location = admin.post(f"/grants/{grant_id}/approve", {"csrf_token": token, "note": "soak"},
                                                 "grant_approve")
                if status == 302 and flashed(admin.flash_after(location, "grant_approve"), "Approved:"):
                    world.recorder.acknowledged("grant_approved", grant_id=grant_id)
        except (NoAnswerError, UnexpectedError) as exc:
            world.counters["abandoned"] += 1
            world.counters[f"abandoned: {str(exc)[:60]}"] += 1
            world.stop.wait(0.5)
        world.stop.wait(0.3)


def reveal_and_rotate(world: World, n: int) -> None:
    """IT reveals secrets (with a reason) and rotates others: open a task, stage a typed value, confirm."""
    it = world.browser(f"it{n}@bench.example")
    it.login()
    turn = 0
    while not world.stop.is_set():
        turn += 1
        try:
            secret_id = world.reveal_secret_ids[(turn + n) % len(world.reveal_secret_ids)]
            _, token = it.csrf(f"/vault/secrets/{secret_id}/reveal", "reveal")
            reason = f"soak-reveal-{uuid.uuid4().hex[:12]}"
            status, body, _ = it.post(f"/vault/secrets/{secret_id}/reveal", {"csrf_token": token, "reason": reason}, "reveal")
            if status == 200 and "-pw-" in body:  # the value is on the page (never logged)
                world.recorder.acknowledged("revealed", secret_id=secret_id, reason=reason)
            if turn % 2:
                continue
            secret_id = world.rotate_secret_ids[(turn // 2 + n) % len(world.rotate_secret_ids)]
            _, token = it.csrf(f"/vault/secrets/{secret_id}", "rotate_open")
            status, _, location = it.post(f"/rotation/secrets/{secret_id}/rotate", {"csrf_token": token, "note": "soak"},
                                          "rotate_open")
            found = re.search(r"/rotation/tasks/(\d+)", location)
            if status != 302 or found is None:
                raise UnexpectedError(f"rotate: {status} {location}")
            task_id = int(found.group(1))
            page = it.flash_after(location, "rotate_open")
            token = CSRF.search(page).group(1)  # type: ignore[union-attr]
            status, _, location = it.post(f"/rotation/tasks/{task_id}/stage",
                                          {"csrf_token": token, "mode": "typed", "value": f"soak-pw-{uuid.uuid4().hex}"},
                                          "rotate_stage")
            if status not in (302, 303) or not flashed(page := it.flash_after(location, "rotate_stage"),
                                                                 "The new value is staged as a pending version"):
                raise UnexpectedError(f"stage: {status}")
            world.recorder.acknowledged("rotation_staged", task_id=task_id, secret_id=secret_id)
            ticks = re.findall(r'name="checklist"[^>]*value="([^"]+)"', page)
            token = CSRF.search(page).group(1)  # type: ignore[union-attr]
            status, _, location = it.post(f"/rotation/tasks/{task_id}/confirm", {"csrf_token": token, "checklist": ticks},
                                          "rotate_confirm")
            if status == 302 and flashed(it.flash_after(location, "rotate_confirm"), "confirmed: the new value is current"):
                world.recorder.acknowledged("rotation_confirmed", task_id=task_id, secret_id=secret_id)
        except (NoAnswerError, UnexpectedError) as exc:
            world.counters["abandoned"] += 1
            world.counters[f"abandoned: {str(exc)[:60]}"] += 1
            world.stop.wait(0.5)
        world.stop.wait(0.3)


def offboard(world: World, n: int) -> None:
    """HR starts immediate offboardings; IT marks their checklist items done."""
    hr, it = world.browser(f"hr{n}@bench.example"), world.browser(f"it{n + 1}@bench.example")
    hr.login()
    it.login()
    while not world.stop.is_set() and world.leavers:
        leaver = world.leavers.pop()
        try:
            _, token = hr.csrf("/offboarding/new", "offboarding_start")
            status, _, location = hr.post("/offboarding/new", {"csrf_token": token, "person": leaver, "immediate": "y",
                                                               "note": "soak"}, "offboarding_start")
            found = re.search(r"/offboarding/(\d+)", location)
            if status == 302 and found and flashed(hr.flash_after(location, "offboarding_start"), "started"):
                world.recorder.acknowledged("offboarding_started", offboarding_id=int(found.group(1)), person=leaver)
            if found is None:
                continue
            page = it.get(f"/offboarding/{found.group(1)}", "offboarding_item")
            for item_id in re.findall(r'action="/offboarding/items/(\d+)/done"', page)[:3]:
                token = CSRF.search(page).group(1)  # type: ignore[union-attr]
                status, _, location = it.post(f"/offboarding/items/{item_id}/done", {"csrf_token": token, "note": "soak"},
                                              "offboarding_item")
                if status == 302:
                    page = it.flash_after(location, "offboarding_item")
                    if flashed(page, "Item done."):
                        world.recorder.acknowledged("offboarding_item_done", item_id=int(item_id))
        except (NoAnswerError, UnexpectedError) as exc:
            world.counters["abandoned"] += 1
            world.counters[f"abandoned: {str(exc)[:60]}"] += 1
            world.stop.wait(0.5)
        world.stop.wait(1.0)


def scim_deactivate(world: World, _n: int) -> None:
    """The identity provider deactivates people over SCIM (PATCH active=false), and lists users."""
    client = Browser(world.port, "scim", "", world.recorder, world.stop)
    auth = {"Authorization": f"Bearer {world.scim_token}", "Accept": "application/scim+json"}
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "value": {"active": False}}]}
    while not world.stop.is_set():
        try:
            client.request("GET", "/scim/v2/Users?count=20", action="scim_list", headers=auth)
            if world.scim_people:
                person_id = world.scim_people.pop()
                status, body, _ = client.request("PATCH", f"/scim/v2/Users/{person_id}", action="scim_deactivate",
                                                 json_body=patch, headers=auth)
                if status == 200 and '"active": false' in body.replace('"active":false', '"active": false'):
                    world.recorder.acknowledged("scim_deactivated", person_id=person_id)
                elif status != 200:
                    world.scim_people.insert(0, person_id)  # not done: the provider tries again later
        except NoAnswerError:
            world.counters["abandoned"] += 1
        world.stop.wait(2.0)


def sign_ins(world: World, users: list[str]) -> None:
    """People sign in (password + TOTP), look at their home page and sign out."""
    browsers = [world.browser(u) for u in users]
    turn = 0
    while not world.stop.is_set():
        b = browsers[turn % len(browsers)]
        turn += 1
        try:
            b.login()
            body = b.get("/", "home")
            found = CSRF.search(body)
            if found:
                b.request("POST", "/logout", {"csrf_token": found.group(1)}, action="sign_out")
        except (NoAnswerError, UnexpectedError) as exc:
            world.counters["abandoned"] += 1
            world.counters[f"abandoned: {str(exc)[:60]}"] += 1
            world.stop.wait(0.5)
        world.stop.wait(0.5)


def reader(world: World, user: str) -> None:
    """Someone reading pages: home, people, accounts, the audit trail."""
    b = world.browser(user)
    pages = ["/", "/people/", "/accounts/", "/grants/", "/audit/"]
    with contextlib.suppress(NoAnswerError, UnexpectedError):  # the loop signs in again when needed
        b.login()
    turn = 0
    while not world.stop.is_set():
        try:
            b.get(pages[turn % len(pages)], "read")
        except (NoAnswerError, UnexpectedError):
            world.counters["abandoned"] += 1
            world.stop.wait(0.5)
        turn += 1
        world.stop.wait(0.2)


# --- setting up ---------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything the soak started, so it can fault it and stop it."""

    out: Path
    postgres: Postgres
    redis: Redis
    mailbox: Mailbox
    smtp: Controller
    smtp_port: int
    instance: Path
    gunicorn: subprocess.Popen[bytes] | None = None
    port: int = 0

    def env(self) -> dict[str, str]:
        """The environment of every govern process of the soak."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVERN_")}
        env.update(GOVERN_ENV="production", GOVERN_INSTANCE_PATH=str(self.instance), GOVERN_DATABASE_URL=self.postgres.url,
                   GOVERN_SECRET_KEY=bench.SECRET_KEY, GOVERN_VAULT_KEY_FILE=str(self.instance / "vault.key"),
                   GOVERN_BASE_URL="http://127.0.0.1", GOVERN_REDIS_URL=self.redis.url, GOVERN_SMTP_HOST="127.0.0.1",
                   GOVERN_SMTP_PORT=str(self.smtp_port), GOVERN_SMTP_FROM="govern@soak.example", PYTHONPATH=str(ROOT),
                   # The email a killed sender held is sent again after this (production: 600 s), so the
                   # drain after the load stays short; the figure is reported with the results.
                   GOVERN_OUTBOX_CLAIM_SECONDS=str(CLAIM_SECONDS))
        return env

    def govern(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a `govern` command with the soak's environment."""
        return subprocess.run([GOVERN, *args], env=self.env(), capture_output=True, text=True, timeout=timeout,  # noqa: S603
                              cwd=ROOT, check=False)

    def start_gunicorn(self) -> None:
        """govern with 4 sync workers; waits until it answers."""
        self.port = bench.free_port()
        self.gunicorn = subprocess.Popen(  # noqa: S603
            [GUNICORN, "-c", "python:govern.gunicorn_conf", "--workers", str(WORKERS), "--worker-class", "sync",
             "--bind", f"127.0.0.1:{self.port}", "--timeout", "60", "govern.wsgi:app"],
            env=self.env(), cwd=ROOT, stdout=open(self.out / "gunicorn.out", "wb"),  # noqa: SIM115
            stderr=open(self.out / "gunicorn.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.out / 'gunicorn.log'}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/login")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("gunicorn did not answer")

    def workers(self) -> list[int]:
        """The gunicorn workers' process ids."""
        assert self.gunicorn is not None
        pid = self.gunicorn.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def stop(self) -> None:
        """Stop everything the soak started."""
        if self.gunicorn is not None and self.gunicorn.poll() is None:
            self.gunicorn.terminate()
            try:
                self.gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.gunicorn.kill()
        self.smtp.stop()
        self.redis.stop()
        self.postgres.stop()


def start_stack(out: Path) -> Stack:
    """PostgreSQL, Redis and SMTP of the soak's own, and govern's schema on them."""
    instance = out / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(out)
    try:
        postgres.start()
    except BaseException:
        postgres.stop()
        raise
    engine = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text('CREATE DATABASE "govern"'))
    engine.dispose()
    redis_ = Redis(out)
    redis_.start()
    mailbox = Mailbox()
    smtp_port = bench.free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port, ready_timeout=30)
    smtp.start()
    stack = Stack(out, postgres, redis_, mailbox, smtp, smtp_port, instance)
    log(f"PostgreSQL on port {postgres.port}, Redis on {redis_.port}, SMTP on {smtp_port}")
    from govern.crypto.auditkeys import AuditKeys  # noqa: PLC0415 - govern and its drivers load after the soak set things up
    from govern.crypto.keyring import Keyring  # noqa: PLC0415

    # Production refuses to start without its key files: the vault's and the audit trail's.
    Keyring.generate().save(instance / "vault.key")
    AuditKeys.generate().save(instance / "audit.key")
    done = stack.govern("db", "upgrade")
    if done.returncode:
        stack.stop()
        raise RuntimeError(f"govern db upgrade failed: {done.stderr[-2000:]}")
    return stack


def seed(stack: Stack) -> dict[str, Any]:
    """The company (scripts/bench.py's seeding at a small scale), a SCIM token, and who does what."""
    from sqlalchemy import select  # noqa: PLC0415 - govern and its drivers load after the soak set things up

    from govern.auth.models import User  # noqa: PLC0415 - govern and its drivers load after the soak set things up
    from govern.db import database  # noqa: PLC0415 - govern and its drivers load after the soak set things up
    from govern.directory.models import Person  # noqa: PLC0415 - govern and its drivers load after the soak set things up
    from govern.scim import services as scim  # noqa: PLC0415 - govern and its drivers load after the soak set things up
    from govern.vault.models import Secret  # noqa: PLC0415 - govern and its drivers load after the soak set things up

    b = bench.Bench(scale=SCALE, db_kind="postgresql", url=stack.postgres.url, out=stack.out, instance=stack.instance)
    seeded = bench.seed(b)
    app = b.app()
    with app.app_context(), database(app).session_scope() as session:
        admin = session.scalar(select(User).where(User.email == "admin0@bench.example"))
        assert admin is not None
        _, token = scim.create_token(session, actor=admin, name="soak identity provider")
        session.commit()
        secrets = list(session.scalars(select(Secret.id).order_by(Secret.id)))
        account_ids = list(session.scalars(select(Secret.account_id).distinct()))
        people = list(session.execute(select(Person.id, Person.email).where(Person.employee_id.is_not(None))
                                      .order_by(Person.id.desc())).all())
    database(app).engine.dispose()
    return {"seeds": seeded.totp_seeds, "token": token, "secrets": secrets, "accounts": sorted(account_ids),
            "people": [(pid, em) for pid, em in people]}


# --- faults -------------------------------------------------------------------------------------------------


class JobsLoop:
    """`govern jobs run` again and again, as cron would, each run a process the soak can kill -9."""

    def __init__(self, stack: Stack, stop: threading.Event) -> None:
        self.stack = stack
        self.stop = stop
        self.current: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.runs = Counter[str]()
        self.log = open(stack.out / "jobs.log", "ab")  # noqa: SIM115 - open for the run
        self.paused = threading.Event()

    def run_once(self) -> int:
        """One `govern jobs run`; its exit code (-9 when killed)."""
        with self.lock:
            self.current = subprocess.Popen([GOVERN, "jobs", "run"], env=self.stack.env(), cwd=ROOT,  # noqa: S603
                                            stdout=self.log, stderr=self.log)
        code = self.current.wait()
        with self.lock:
            self.current = None
        self.runs["killed" if code == -signal.SIGKILL else "ok" if code == 0 else "failed"] += 1
        return code

    def loop(self) -> None:
        """Run every 2 s until stopped."""
        while not self.stop.is_set():
            if not self.paused.is_set():
                self.run_once()
            self.stop.wait(2.0)

    def kill9(self) -> bool:
        """kill -9 the running `govern jobs run`, if one runs."""
        with self.lock:
            if self.current is None or self.current.poll() is not None:
                return False
            os.kill(self.current.pid, signal.SIGKILL)
            return True


def faults(stack: Stack, plan: Plan, timeline: Timeline, jobs: JobsLoop, stop: threading.Event) -> None:
    """The fault schedule; each fault waits for its time, and the worker kills run in between."""
    events: list[tuple[float, str]] = [(plan.postgres_kill_at, "postgres"), (plan.redis_stop_at, "redis"),
                                       (plan.smtp_refuse_at, "smtp"), (plan.jobs_kill_at, "jobs")]
    t = plan.worker_kill_every
    while t < plan.calm_at - plan.worker_window:
        events.append((t, "worker"))
        t += plan.worker_kill_every
    events.sort()
    smtp_fault: Fault | None = None
    redis_fault: Fault | None = None
    pending_ends: list[tuple[float, str]] = []
    while (events or pending_ends) and not stop.is_set():
        upcoming = sorted(events + pending_ends)[0]
        if stop.wait(max(0.0, upcoming[0] - timeline.now())):
            break
        if upcoming in pending_ends:
            pending_ends.remove(upcoming)
            if upcoming[1] == "redis_back" and redis_fault:
                stack.redis.start()
                timeline.end(redis_fault)
            elif upcoming[1] == "smtp_back" and smtp_fault:
                stack.mailbox.refuse = False
                timeline.end(smtp_fault)
            continue
        events.remove(upcoming)
        kind = upcoming[1]
        if kind == "worker":
            victim = random.choice(stack.workers())  # noqa: S311 - picking work, not secrets
            fault = timeline.begin("worker_kill", f"pid {victim}")
            os.kill(victim, signal.SIGKILL)
            fault.end = fault.start + plan.worker_window
        elif kind == "postgres":
            fault = timeline.begin("postgres_kill")
            stack.postgres.kill9()
            stack.postgres.start()
            timeline.end(fault)
        elif kind == "redis":
            redis_fault = timeline.begin("redis_stop")
            stack.redis.stop()
            pending_ends.append((timeline.now() + plan.redis_down_for, "redis_back"))
        elif kind == "smtp":
            smtp_fault = timeline.begin("smtp_refusing")
            stack.mailbox.refuse = True
            pending_ends.append((timeline.now() + plan.smtp_refuse_for, "smtp_back"))
        elif kind == "jobs":
            kill_jobs_mid_send(stack, timeline, jobs, stop)


def kill_jobs_mid_send(stack: Stack, timeline: Timeline, jobs: JobsLoop, stop: threading.Event) -> None:
    """kill -9 `govern jobs run` while its email step is sending: the SMTP server holds the DATA, the soak kills."""
    mailbox = stack.mailbox
    refusing = mailbox.refuse
    mailbox.refuse = False  # the message must reach DATA (refusals resume afterwards)
    mailbox.holding.clear()
    mailbox.hold_seconds = 10.0
    fault = timeline.begin("jobs_kill")
    try:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            if mailbox.holding.wait(0.5):
                fault.note = "killed while the SMTP server held its DATA" if jobs.kill9() else "no run to kill"
                break
        else:
            fault.note = "no email was being sent within 60 s: not killed"
    finally:
        mailbox.hold_seconds = 0.0
        mailbox.refuse = refusing
        timeline.end(fault)
    log(f"jobs kill: {fault.note}")


def drain_outbox(stack: Stack, jobs: JobsLoop, limit: float) -> dict[str, Any]:
    """Run `govern jobs run` until no email is pending (backoffs and a killed sender's claim lease included)."""
    engine = create_engine(stack.postgres.url)
    started = time.monotonic()
    pending = -1
    try:
        while time.monotonic() - started < limit:
            jobs.run_once()
            with engine.connect() as conn:
                pending = int(conn.scalar(text("SELECT count(*) FROM outbox WHERE status = 'pending'")) or 0)
            if pending == 0:
                break
            time.sleep(5)
    finally:
        engine.dispose()
    return {"seconds": round(time.monotonic() - started, 1), "still_pending": pending}


# --- checks and figures ---------------------------------------------------------------------------------

#: Phases a request can fall in, strongest first (a request overlapping two faults counts for the stronger).
PHASES = ("postgres_kill", "redis_stop", "worker_kill", "jobs_kill", "smtp_refusing")
#: Faults during which govern may answer 503 (its dependencies are down).
OUTAGES = ("postgres_kill", "redis_stop")


def phase_of(sample: Sample, faults_: list[Fault], calm_at: float) -> str:
    """The phase of a request: the strongest fault its time overlaps, else normal or after."""
    end = sample.t + sample.seconds
    hit = {f.kind for f in faults_ if f.start <= end and sample.t <= (f.end if f.end is not None else float("inf"))}
    for kind in PHASES:
        if kind in hit:
            return kind
    return "after" if sample.t >= calm_at else "normal"


def is_error(status: int) -> bool:
    """No answer, or a server error."""
    return status == 0 or status >= SERVER_ERROR


def figures(samples: list[Sample], faults_: list[Fault], calm_at: float) -> dict[str, Any]:
    """Requests, error rate, p50 and p95 per phase."""
    by_phase: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_phase[phase_of(s, faults_, calm_at)].append(s)
    out = {}
    for name in ("normal", *PHASES, "after"):
        rows = by_phase.get(name, [])
        times = sorted(s.seconds for s in rows)
        errors = sum(1 for s in rows if is_error(s.status))
        out[name] = {"requests": len(rows), "errors": errors,
                     "error_rate": round(errors / len(rows), 4) if rows else None,
                     "p50_ms": round(bench.percentile(times, 50) * 1000, 1) if rows else None,
                     "p95_ms": round(bench.percentile(times, 95) * 1000, 1) if rows else None,
                     "statuses": dict(sorted(Counter(str(s.status) for s in rows).items()))}
    return out


def recoveries(samples: list[Sample], faults_: list[Fault]) -> None:
    """Seconds from each fault's end to the end of the first request that succeeded after it."""
    ordered = sorted(samples, key=lambda s: s.t)
    for fault in faults_:
        if fault.end is None:
            continue
        first = next((s for s in ordered if s.t >= fault.end and 200 <= s.status < 400), None)
        if first is not None:
            fault.recovery_seconds = round(max(0.0, first.t + first.seconds - fault.end), 2)


class Checks:
    """Named checks, each passed or failed with a detail."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}

    def add(self, name: str, passed: bool, detail: Any) -> None:
        """Keep one check's result."""
        self.results[name] = {"passed": bool(passed), "detail": detail}
        log(f"{'PASS' if passed else 'FAIL'} {name}: {json.dumps(detail)[:300]}")


def audited(conn: Any, action: str, target_id: Any, like: str | None = None) -> bool:
    """Is there an audit event ``action`` on ``target_id`` (whose details contain ``like``)?"""
    query = "SELECT count(*) FROM audit_events WHERE action = :a AND target_id = :t"
    params: dict[str, Any] = {"a": action, "t": str(target_id)}
    if like is not None:
        query += " AND details_json LIKE :l"
        params["l"] = f"%{like}%"
    return bool(conn.scalar(text(query), params))


def check_writes(conn: Any, writes: list[dict[str, Any]]) -> dict[str, Any]:
    """Every acknowledged write is in the database with its audit event; returns what is missing."""
    missing: list[dict[str, Any]] = []
    sign_ins: Counter[str] = Counter()
    for w in writes:
        kind = w["kind"]
        ok = True
        if kind == "sign_in":
            sign_ins[w["email"]] += 1
            continue
        if kind == "grant_requested":
            grant_id = conn.scalar(text("SELECT id FROM grants WHERE reason = :r"), {"r": w["reason"]})
            ok = grant_id is not None and audited(conn, "grant.requested", grant_id)
        elif kind == "grant_approved":
            status = conn.scalar(text("SELECT status FROM grants WHERE id = :i"), {"i": w["grant_id"]})
            # A role that needs a second approval stays requested after the first; the event is the write.
            ok = status in ("requested", "active", "revoked", "expired") and audited(conn, "grant.approved", w["grant_id"])
        elif kind == "revealed":
            ok = bool(conn.scalar(text("SELECT count(*) FROM exposures WHERE reason = :r AND secret_id = :s"),
                                  {"r": w["reason"], "s": w["secret_id"]})) and audited(conn, "vault.revealed", w["secret_id"], w["reason"])
        elif kind == "rotation_staged":
            status = conn.scalar(text("SELECT status FROM rotation_tasks WHERE id = :i"), {"i": w["task_id"]})
            ok = status in ("staged", "done", "cancelled") and audited(conn, "rotation.task_staged", w["task_id"])
        elif kind == "rotation_confirmed":
            status = conn.scalar(text("SELECT status FROM rotation_tasks WHERE id = :i"), {"i": w["task_id"]})
            ok = status == "done" and audited(conn, "rotation.task_done", w["task_id"])
        elif kind == "offboarding_started":
            status = conn.scalar(text("SELECT status FROM offboardings WHERE id = :i"), {"i": w["offboarding_id"]})
            ok = status in ("in_progress", "completed") and audited(conn, "offboarding.started", w["offboarding_id"])
        elif kind == "offboarding_item_done":
            status = conn.scalar(text("SELECT status FROM offboarding_items WHERE id = :i"), {"i": w["item_id"]})
            ok = status == "done" and audited(conn, "offboarding.item_done", w["item_id"])
        elif kind == "scim_deactivated":
            rows = conn.execute(text("SELECT id FROM offboardings WHERE person_id = :p AND status IN ('in_progress', 'completed')"),
                                {"p": w["person_id"]}).all()
            ok = any(audited(conn, "offboarding.started", r[0]) for r in rows)
        else:
            ok = False
        if not ok:
            missing.append(w)
    for email_address, acked in sign_ins.items():
        found = int(conn.scalar(text(
            "SELECT count(*) FROM audit_events a JOIN users u ON a.target_id = CAST(u.id AS VARCHAR) "
            "WHERE a.action = 'auth.login.succeeded' AND u.email = :e"), {"e": email_address}) or 0)
        if found < acked:
            missing.append({"kind": "sign_in", "email": email_address, "acknowledged": acked, "audited": found})
    return {"acknowledged": len(writes), "by_kind": dict(Counter(w["kind"] for w in writes)), "missing": missing[:20],
            "missing_count": len(missing)}


def check_all(stack: Stack, recorder: Recorder, timeline: Timeline, plan: Plan, drain: dict[str, Any],
              jobs: JobsLoop) -> Checks:
    """The checks of the issue, against the soak's own database."""
    checks = Checks()
    engine = create_engine(stack.postgres.url)
    with engine.connect() as conn:
        writes = check_writes(conn, recorder.writes)
        checks.add("acknowledged_writes_stored_and_audited", writes["missing_count"] == 0 and writes["acknowledged"] > 0, writes)
        kinds = set(writes["by_kind"])
        wanted = {"sign_in", "grant_requested", "grant_approved", "revealed", "rotation_staged", "rotation_confirmed",
                  "offboarding_started", "offboarding_item_done", "scim_deactivated"}
        checks.add("every_kind_of_write_acknowledged", wanted <= kinds, {"missing_kinds": sorted(wanted - kinds)})
        active = conn.execute(text(
            "SELECT g.id, g.person_id FROM grants g JOIN offboardings o ON o.person_id = g.person_id "
            "WHERE o.status IN ('in_progress', 'completed') AND g.status = 'active'")).all()
        offboarded = int(conn.scalar(text("SELECT count(*) FROM offboardings WHERE status IN ('in_progress', 'completed')")) or 0)
        checks.add("no_active_grant_of_offboarded_person", not active and offboarded > 0,
                   {"offboarded_people": offboarded, "active_grants": [list(r) for r in active[:20]]})
        outbox = conn.execute(text("SELECT id, status FROM outbox")).all()
    engine.dispose()

    verify = stack.govern("audit", "verify")
    checks.add("audit_verify", verify.returncode == 0, (verify.stdout + verify.stderr).strip().splitlines()[-2:])
    check = stack.govern("check")
    checks.add("govern_check", check.returncode == 0, (check.stdout + check.stderr).strip().splitlines()[-3:])

    bad = []
    for s in recorder.samples:
        phase = phase_of(s, timeline.faults, plan.calm_at)
        if s.status >= SERVER_ERROR and not (s.status == 503 and phase in OUTAGES) or s.status == 0 and phase in ("after", "normal"):
            bad.append({**asdict(s), "phase": phase})
    checks.add("no_5xx_but_503_during_outages", not bad, {"count": len(bad), "first": bad[:10]})
    after_errors = [asdict(s) for s in recorder.samples
                    if phase_of(s, timeline.faults, plan.calm_at) == "after" and is_error(s.status)]
    after_requests = sum(1 for s in recorder.samples if phase_of(s, timeline.faults, plan.calm_at) == "after")
    checks.add("no_errors_after_the_faults", not after_errors and after_requests > 0,
               {"requests": after_requests, "errors": after_errors[:10]})

    # Once by Message-ID, as the issue counts: govern gives an outbox row the same Message-ID on every attempt,
    # so a send repeated after a crash (SMTP said 250, the sender died before recording it) is one delivery a
    # mail system drops as a duplicate. Two different Message-IDs for one row would be two emails: that fails.
    ids_per_row: dict[str, set[str]] = {}
    for message_id, oid in stack.mailbox.accepted:
        ids_per_row.setdefault(oid, set()).add(message_id)
    accepted = Counter({oid: len(ids) for oid, ids in ids_per_row.items()})
    repeated = sum(1 for _ in stack.mailbox.accepted) - sum(accepted.values())
    sent = {str(i) for i, status in outbox if status == "sent"}
    not_sent = [[i, status] for i, status in outbox if status != "sent"]
    twice = {oid: n for oid, n in accepted.items() if n > 1}
    never = sorted(sent - set(accepted))
    strangers = sorted(set(accepted) - {str(i) for i, _ in outbox})
    checks.add("every_email_delivered_once", bool(outbox) and not not_sent and not twice and not never and not strangers,
               {"outbox": len(outbox), "accepted": sum(accepted.values()), "not_sent": not_sent[:20],
                "delivered_more_than_once": twice, "repeated_with_the_same_message_id": repeated,
                "sent_but_not_received": never[:20], "unknown_ids": strangers[:20],
                "refused_during_fault": stack.mailbox.refused, "drain": drain})

    happened = Counter(f.kind for f in timeline.faults)
    jobs_fault = next((f for f in timeline.faults if f.kind == "jobs_kill"), None)
    exercised = {"worker_kill": happened["worker_kill"] >= 1, "postgres_kill": happened["postgres_kill"] == 1,
                 "redis_stop": happened["redis_stop"] == 1, "smtp_refusing": stack.mailbox.refused > 0,
                 "jobs_kill": jobs_fault is not None and jobs_fault.note.startswith("killed") and jobs.runs["killed"] >= 1}
    checks.add("every_fault_happened", all(exercised.values()), exercised)
    return checks


# --- the run --------------------------------------------------------------------------------------------


def print_summary(results: dict[str, Any]) -> None:
    """The figures and the checks, as a table on stdout."""
    print(f"\ngovern soak, {results['seconds']} s, {results['started_at']}")
    print(f"{'phase':<15}{'requests':>9}{'errors':>8}{'error %':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for name, row in results["phases"].items():
        rate = "" if row["error_rate"] is None else f"{row['error_rate'] * 100:.1f}"
        print(f"{name:<15}{row['requests']:>9}{row['errors']:>8}{rate:>9}{row['p50_ms'] or '':>9}{row['p95_ms'] or '':>9}")
    print("\nfaults (s from start; recovery = fault end to the first success)")
    for f in results["faults"]:
        print(f"  {f['kind']:<14} at {f['start']:6.1f}  lasted {(f['end'] or f['start']) - f['start']:5.1f}"
              f"  recovery {f['recovery_seconds']}  {f['note']}")
    print("\nchecks")
    for name, row in results["checks"].items():
        print(f"  {'PASS' if row['passed'] else 'FAIL'}  {name}")


def main() -> int:
    """Run the soak; exit code 1 when a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 s, every fault shorter (the slow test runs this)")
    parser.add_argument("--seconds", type=float, help="how long the load runs (default 300, --quick 60)")
    parser.add_argument("--out", type=Path, help="folder for results.json and the logs (default: a new temporary one)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a timeout's SIGTERM still stops the servers (finally)
    seconds = args.seconds or (60.0 if args.quick else 300.0)
    plan = plan_for(seconds, args.quick)
    out = (args.out or Path(tempfile.mkdtemp(prefix="govern-soak-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log(f"out: {out}")
    stack = start_stack(out)  # stops what it started when it fails
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        company = seed(stack)
        stack.start_gunicorn()
        log(f"govern on port {stack.port} with {WORKERS} workers")
        timeline = Timeline()
        recorder = Recorder(out, timeline)
        people = company["people"]
        secrets = company["secrets"]
        world = World(port=stack.port, seeds=company["seeds"], account_ids=company["accounts"],
                      reveal_secret_ids=secrets[: len(secrets) // 2], rotate_secret_ids=secrets[len(secrets) // 2:],
                      leavers=[em for _, em in people[:40]], scim_people=[pid for pid, _ in people[40:80]],
                      scim_token=company["token"], recorder=recorder, stop=stop)
        jobs = JobsLoop(stack, stop)
        signers = [f"{role}{k}@bench.example" for role in ("admin", "hr", "manager", "staff", "auditor") for k in (1, 2)]
        runners: list[tuple[Callable[..., None], Any]] = [
            (request_and_approve, 0), (reveal_and_rotate, 0), (offboard, 0), (scim_deactivate, 0), (sign_ins, signers),
            (reader, "auditor0@bench.example"), (reader, "manager0@bench.example")]
        for fn, arg in runners:
            threads.append(threading.Thread(target=fn, args=(world, arg), name=fn.__name__, daemon=True))
        threads.append(threading.Thread(target=jobs.loop, name="jobs", daemon=True))
        fault_thread = threading.Thread(target=faults, args=(stack, plan, timeline, jobs, stop), name="faults", daemon=True)
        timeline.t0 = time.monotonic()
        for t in threads:
            t.start()
        fault_thread.start()
        stop.wait(plan.seconds)
        stop.set()
        log("load over; waiting for the clients")
        for t in [*threads, fault_thread]:
            t.join(timeout=40)
        stack.mailbox.refuse = False
        stack.mailbox.hold_seconds = 0.0
        drain = drain_outbox(stack, jobs, limit=CLAIM_SECONDS + 240)
        log(f"outbox drained in {drain['seconds']} s ({drain['still_pending']} pending)")
        recoveries(recorder.samples, timeline.faults)
        checks = check_all(stack, recorder, timeline, plan, drain, jobs)
        results = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": seconds, "quick": args.quick,
            "machine": bench.machine(), "plan": asdict(plan), "workers": WORKERS,
            "phases": figures(recorder.samples, timeline.faults, plan.calm_at),
            "faults": [asdict(f) for f in timeline.faults],
            "writes": dict(Counter(w["kind"] for w in recorder.writes)),
            "client_counters": dict(world.counters), "jobs_runs": dict(jobs.runs),
            "emails": {"accepted": len(stack.mailbox.accepted), "refused": stack.mailbox.refused,
                       "lost_mid_data": stack.mailbox.lost_mid_data,
                       "held_while_sender_killed": stack.mailbox.held_ids},
            "drain": drain, "checks": checks.results,
            "passed": all(c["passed"] for c in checks.results.values()),
        }
        with open(out / "requests.jsonl", "w", encoding="utf-8") as sink:
            for s in recorder.samples:
                sink.write(json.dumps(asdict(s)) + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print_summary(results)
        return 0 if results["passed"] else 1
    finally:
        stop.set()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
