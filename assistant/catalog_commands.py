"""The coordinators' catalog commands (`assistant catalog status`, publish, history...), on the existing
``catalog`` click group. Every failure a coordinator can cause ends in a plain sentence and exit status 1,
never a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app

from .catalogcheck import Content, Report, check_content, read_dirs, read_tree


def _content(directory: str | None) -> Content:
    """The content of DIRECTORY (messages/ and locales/), or the service's own files."""
    if directory:
        root = Path(directory)
        if not (root / "messages").is_dir():
            raise click.ClickException(f"{root} has no messages/ folder (give the folder that holds messages/ "
                                       "and locales/)")
        return read_tree(root)
    settings = current_app.config["SETTINGS"]
    return read_dirs(Path(settings.messages_dir), Path(settings.locales_dir))


def print_report(report: Report, strict: bool = False) -> bool:
    """Print every problem, errors first; True when the content may be published."""
    for p in report.problems:
        click.echo(str(p))
    blocking = report.problems if strict else report.errors
    languages = len(report.catalog.languages) if report.catalog else 0
    click.echo(f"{languages} languages: {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
               + (" (nothing blocks publishing)" if not blocking else " (fix the errors before publishing)"))
    return not blocking


def check_command(directory: str | None, strict: bool) -> None:
    report = check_content(_content(directory))
    if not print_report(report, strict):
        sys.exit(1)


@click.command("status")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
def status_command(directory: str | None) -> None:
    """One row per language: translated, reviewed, unreviewed, stale, missing, over the SMS budget."""
    report = check_content(_content(directory))
    if report.catalog is None:
        print_report(report)
        sys.exit(1)
    cols = ("translated", "reviewed", "unreviewed", "stale", "missing", "over budget")
    click.echo(f"{'language':<10}" + "".join(f"{c:>13}" for c in cols))
    for locale, st in report.status.items():
        values = (st.translated, st.reviewed, st.unreviewed, st.stale, st.missing, st.over_budget)
        click.echo(f"{locale:<10}" + "".join(f"{v:>13}" for v in values))
    click.echo(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s): "
               "`assistant catalog check` lists them")


def register(group: click.Group) -> None:
    """Add the commands to the ``catalog`` group."""
    group.add_command(status_command)
