"""The lock files (scripts/lock writes them, scripts/_bootstrap installs only from them): every
package pinned exactly with its hashes, every dependency of pyproject.toml locked, the test lock on
the runtime lock's versions, and this test run on exactly the locked versions."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, str]:
    """{package: version} of a lock file, checking that each entry is exact and hashed."""
    text = (ROOT / name).read_text(encoding="utf-8")
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        line = block.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{name}: {match.group(1)} has no hash"
        pins[_canonical(match.group(1))] = match.group(2)
    return pins


def _declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {_canonical(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}


def test_every_dependency_is_locked_exactly_with_hashes():
    runtime, test = _lock("requirements.lock"), _lock("requirements-test.lock")
    assert _declared() <= set(runtime)
    assert _declared() | _declared("test") <= set(test)
    assert "setuptools" in runtime  # the build backend: govern is installed without build isolation
    # Tests run on what production runs.
    assert {name: test[name] for name in runtime} == runtime


def test_this_run_uses_the_locked_versions():
    test = _lock("requirements-test.lock")
    installed = {_canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not run from the project's .venv (scripts/_bootstrap installs it from the lock)")
    # setuptools only builds govern's editable install; whatever built it does not run govern.
    wrong = {name: (version, installed.get(name)) for name, version in test.items()
             if name != "setuptools" and installed.get(name) != version}
    assert wrong == {}, "installed versions differ from requirements-test.lock: run scripts/_bootstrap test"
