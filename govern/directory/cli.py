"""`govern directory` commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app, g
from flask.cli import with_appcontext

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from govern.directory.import_parse import ParsedFile
    from govern.directory.import_plan import ImportReport, Progress


@click.group("directory")
def group() -> None:
    """Directory commands."""


@group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and show what would change; write nothing.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Read COLUMN as FIELD (employee_id, email, full_name, first_name, last_name, department, title, "
                   "manager_email, start_date, end_date, status) or 'ignore' it; repeatable.")
@with_appcontext
def import_command(file: Path, dry_run: bool, maps: tuple[str, ...]) -> None:
    """Import an HR export (CSV): upsert people on employee id, then email.

    Columns are recognised by the names Workday, BambooHR, Personio, SAP SuccessFactors and ADP
    give them; --map reads any other column. The whole file is refused while any line has an
    error; exit code 1 then.
    """
    from govern.db import database
    from govern.directory import import_parse
    from govern.schema import ensure_current

    mapping = _mapping(maps)
    ensure_current(database(current_app).engine)
    g.audit_actor_label = "cli"
    content = file.read_bytes()
    parsed = import_parse.parse_file(content, filename=file.name, mapping=mapping)
    _print_columns(parsed)
    with database(current_app).session_scope() as session:
        if sys.stderr.isatty():
            label = "checking" if dry_run else "importing"
            with click.progressbar(length=len(parsed.rows), label=f"{label} {parsed.filename}", file=sys.stderr) as bar:
                report = _run(session, parsed, dry_run, bar.update)
        else:
            report = _run(session, parsed, dry_run, None)
    _print(report, dry_run)
    if not report.ok:
        sys.exit(1)


def _mapping(maps: tuple[str, ...]) -> dict[str, str]:
    """The --map options as {column: field}; a malformed or unknown one is a usage error."""
    from govern.directory import import_columns

    mapping: dict[str, str] = {}
    for item in maps:
        column, sep, target = item.rpartition("=")
        if not sep or not column.strip() or not target.strip():
            raise click.BadParameter(f"{item!r} is not COLUMN=FIELD", param_hint="--map")
        mapping[column.strip()] = target.strip()
    problems = import_columns.check_mapping(mapping)
    if problems:
        raise click.BadParameter("; ".join(problems), param_hint="--map")
    return mapping


def _print_columns(parsed: ParsedFile) -> None:
    """Which column is read as which field, and every column ignored with why (on stderr)."""
    if parsed.columns:
        click.echo("columns: " + ", ".join(f"{header!r} -> {name}" for name, header in parsed.columns.items()), err=True)
    for column in parsed.ignored_columns:
        click.echo(f"ignored column {column!r}: {parsed.ignored_reasons.get(column, 'not imported')}", err=True)


def _run(session: Session, parsed: ParsedFile, dry_run: bool, progress: Progress | None) -> ImportReport:
    from govern.directory import import_plan
    from govern.offboarding.lifecycle import import_people
    from govern.offboarding.settings import settings_from

    if dry_run:
        report = import_plan.preview_import(session, parsed, progress=progress)
        session.rollback()
        return report
    try:
        report = import_people(session, parsed, actor=None, progress=progress,
                               settings=settings_from(current_app.config))
    except import_plan.ImportInvalidError as exc:
        session.rollback()
        return exc.report
    session.commit()
    return report


def _print(report: ImportReport, dry_run: bool) -> None:
    for error in report.errors:
        where = f"line {error.line}" if error.line else "file"
        click.echo(f"{report.filename}:{error.line}: {where}, column {error.column}: {error.reason}", err=True)
    if report.error_count > len(report.errors):
        click.echo(f"... and {report.error_count - len(report.errors)} more error(s)", err=True)
    counts = f"{report.rows} row(s): {report.new} new, {report.updated} updated, {report.unchanged} unchanged, {report.error_count} error(s)"
    if not report.ok:
        click.echo(f"{counts}. Nothing was imported: fix the errors and run again.", err=True)
    elif dry_run:
        click.echo(f"{counts}. Dry run: nothing was written.")
    else:
        click.echo(f"{counts}. Imported.")
        if report.offboardings_started:
            click.echo(f"leavers: {report.offboardings_started} offboarding(s) started (their access ends now)")
        if report.offboardings_scheduled or report.offboardings_moved or report.offboardings_cancelled:
            click.echo(f"end dates: {report.offboardings_scheduled} offboarding(s) scheduled, "
                       f"{report.offboardings_moved} moved, {report.offboardings_cancelled} cancelled")
        for problem in report.offboarding_problems:
            click.echo(f"offboarding not started or scheduled for {problem}", err=True)
    if dry_run and report.ok and report.leavers:
        click.echo(f"leavers: {report.leavers} row(s) say the person left; their offboardings start on import")
