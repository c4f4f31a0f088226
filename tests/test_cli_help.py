"""`govern --help` lists every command without building the app: no area imported, no instance
files, nothing logged (issue 17, plan section 6). Its time is measured by scripts/bench."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from govern.cli import AREA_COMMANDS, AUDIT_COMMANDS, KEY_COMMANDS, SSO_COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent

#: Runs the console entry point, then tells which heavy modules the run imported.
PROBE = """
import sys
from govern.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = [m for m in ("sqlalchemy", "scim2_models", "alembic", "govern.app", "govern.config") if m in sys.modules]
print("IMPORTED:", ",".join(heavy))
sys.exit(code)
"""

ROOT_COMMANDS = {"audit", "backup", "check", "connectors", "db", "demo", "directory", "grants", "init", "jobs", "keys", "offboarding",
                 "restore", "rotation", "routes", "run", "shell", "sso", "users", "vault"}


def _run_help(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOVERN_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("GOVERN_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", PROBE, *args, "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "listed"), [
    ((), ROOT_COMMANDS),
    (("keys",), {"init", *KEY_COMMANDS}),
])
def test_help_builds_no_app(tmp_path, args, listed):
    result = _run_help(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no "vault sealed", no warning
    help_text, imported = result.stdout.rsplit("IMPORTED:", 1)
    assert imported.strip() == ""  # neither the database stack, nor SCIM's pydantic models, nor the app
    commands = help_text.split("Commands:", 1)[1]
    assert {line.split()[0] for line in commands.splitlines() if line.startswith("  ") and line.split()} == listed
    assert not (tmp_path / "instance").exists()


@pytest.mark.parametrize(("table", "group_path"), [(AREA_COMMANDS, ()), (KEY_COMMANDS, ("keys",)),
                                                  (AUDIT_COMMANDS, ("audit",)), (SSO_COMMANDS, ("sso",))])
def test_the_help_in_the_tables_is_the_commands_own(table, group_path):
    group: click.Command | None = cli
    ctx = click.Context(cli)
    for name in group_path:
        assert isinstance(group, click.Group)
        group = group.get_command(ctx, name)
    assert isinstance(group, click.Group)
    for name, (_, help_line) in table.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(200) == help_line


def _command_paths() -> list[tuple[str, ...]]:
    """Every group and command under `govern`, as the argument lists that reach them."""
    paths: list[tuple[str, ...]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, (*path, name))

    walk(cli, ())
    return paths


#: Asks every path for its help in one process, then tells which heavy modules that imported.
EVERY_HELP = """
import json, sys
from govern.cli import cli
for path in json.loads(sys.argv[1]):
    try:
        cli.main([*path, "--help"], prog_name="govern")
    except SystemExit as exc:
        if exc.code not in (0, None):
            print("FAILED:", path, exc.code)
heavy = [m for m in ("sqlalchemy", "scim2_models", "alembic", "govern.app", "govern.config", "govern.db") if m in sys.modules]
print("IMPORTED:", ",".join(heavy))
"""


def test_every_commands_help_is_light(tmp_path):
    """`govern <area> [command] --help` imports no database stack and builds no app, like the root's."""
    import json

    paths = _command_paths()
    assert len(paths) > 30  # the root, its groups and their commands
    env = {**os.environ, "GOVERN_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("GOVERN_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", EVERY_HELP, json.dumps(paths)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "FAILED:" not in result.stdout
    assert result.stdout.rsplit("IMPORTED:", 1)[1].strip() == ""
    assert not (tmp_path / "instance").exists()
