"""The import contracts of pyproject.toml (the ladder, pure crypto) hold, and every part of govern
has its place in the ladder: a new area or module must be given one."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import govern

ROOT = Path(__file__).resolve().parent.parent
#: Outside the ladder on purpose: they compose every area (create_app, the CLI, the servers,
#: the model registry for Alembic). govern.migrations is no package: Alembic loads it by path.
COMPOSITION_ROOTS = {"govern.app", "govern.cli", "govern.subscribers", "govern.wsgi", "govern.gunicorn_conf", "govern.models"}


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "import-linter is missing: run scripts/_bootstrap test"
    result = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_of_govern_is_on_the_ladder():
    (ladder,) = [c for c in _contracts() if c["id"] == "ladder"]
    placed = {name.strip() for layer in ladder["layers"] for name in layer.replace("|", ":").split(":")}
    top_level = {f"govern.{m.name}" for m in pkgutil.iter_modules(govern.__path__)}
    assert top_level - placed - COMPOSITION_ROOTS == set(), "give each new module a layer in pyproject.toml"
    assert placed <= top_level, "a layer names a module that does not exist"
