"""Browser tests: a real govern server (``govern init`` + gunicorn) driven by headless Chromium.

Playwright cannot download its own browsers here, so the tests use Debian's chromium at
/usr/bin/chromium. Without it they are skipped, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.helpers import REPO_ROOT, VENV_BIN, LiveServer, server_env
from tests.support import require_service

SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_SECONDS = 20.0
ADMIN_EMAIL = "admin@example.com"


# --- report hook: attach the server log to a failing test's report --------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    funcargs = getattr(item, "funcargs", {})
    server = funcargs.get("live_server") or funcargs.get("localhost_server")
    if report.failed and isinstance(server, LiveServer):
        report.sections.append((f"govern server log ({report.when})", server.read_log()))


# --- the server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_setup_output(output: str, base_url: str) -> tuple[str, str]:
    """Return (secret, setup link) from what `govern init` prints for the first admin."""
    lines = output.splitlines()
    marker = next((i for i, line in enumerate(lines) if "enter this one-time secret" in line), None)
    assert marker is not None, f"`govern init` printed no setup secret:\n{output}"
    secret = next(
        (line.strip() for line in lines[marker + 1 :] if line[:1].isspace() and line.strip()), None
    )
    assert secret, f"no indented secret after the setup instructions:\n{output}"
    match = re.search(r"^or open (\S+/setup#token=(\S+))\s*$", output, re.MULTILINE)
    assert match, f"`govern init` printed no setup link:\n{output}"
    link, link_secret = match.groups()
    assert link_secret == secret, "the setup link and the printed secret differ"
    assert link.startswith(base_url + "/setup#"), f"setup link {link!r} is not on {base_url}"
    return secret, link


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> str | None:
    """Poll /healthz until 200; return None when healthy, else why not."""
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"gunicorn exited with status {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local server
                if response.status == 200:
                    return None
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    return f"/healthz did not answer 200 within {SERVER_START_SECONDS:.0f} s (last: {last})"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path, scratch_database_url: str) -> Iterator[LiveServer]:
    """`govern init` on an empty database, then gunicorn (2 workers) on a free local port."""
    yield from serve(tmp_path, scratch_database_url, host="127.0.0.1")


@pytest.fixture
def localhost_server(tmp_path: Path, scratch_database_url: str) -> Iterator[LiveServer]:
    """The same server at http://localhost:PORT: browsers allow WebAuthn on plain http only for localhost,
    and an IP address cannot be a relying party id."""
    yield from serve(tmp_path, scratch_database_url, host="localhost")


def serve(tmp_path: Path, scratch_database_url: str, *, host: str) -> Iterator[LiveServer]:
    port = _free_port()
    base_url = f"http://{host}:{port}"
    env = server_env(tmp_path, scratch_database_url, base_url)

    init = subprocess.run(
        [str(VENV_BIN / "govern"), "init", "--admin-email", ADMIN_EMAIL],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0:
        pytest.fail(f"`govern init` failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
    secret, link = parse_setup_output(init.stdout, base_url)

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "-",
                "govern.wsgi:app",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(base_url, ADMIN_EMAIL, secret, link, log_path, process, env)
    try:
        problem = _wait_healthy(
            f"http://127.0.0.1:{port}/healthz", process, time.monotonic() + SERVER_START_SECONDS
        )
        if problem:
            pytest.fail(
                f"govern server did not start: {problem}\n--- server log ---\n{server.read_log()}"
            )
        yield server
    finally:
        _stop(process)


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless chromium through Playwright (sync API)."""
    require_service(
        "Debian chromium",
        CHROMIUM.exists(),
        f"Debian chromium not found at {CHROMIUM} (apt-get install chromium); Playwright cannot download browsers here",
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Any:
    """`shot(page, name)` saves a full-page screenshot as artifacts/screenshots/<prefix>_<NN>_<name>.png."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    prefix = request.node.name.removeprefix("test_")
    for stale in SCREENSHOT_DIR.glob(f"{prefix}_[0-9][0-9]_*.png"):
        stale.unlink()
    counter = {"n": 0}

    def shot(page: Any, name: str) -> Path:
        counter["n"] += 1
        path = SCREENSHOT_DIR / f"{prefix}_{counter['n']:02d}_{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot
