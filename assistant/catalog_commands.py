"""The coordinators' catalog commands (`assistant catalog status`, publish, history...), on the existing
``catalog`` click group. Every failure a coordinator can cause ends in a plain sentence and exit status 1,
never a traceback."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

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


def _served(directory: str | None) -> tuple[Content, str]:
    """What to check or count, and what it is: DIRECTORY, else what the service serves (the live revision, or the
    repository's files while none is published or the database cannot be read)."""
    if directory:
        return _content(directory), directory
    from sqlalchemy.exc import SQLAlchemyError

    from .revisions import live_content, repository_content

    files = repository_content(current_app)
    try:
        with _session() as session:
            rev, content = live_content(session, files)
    except SQLAlchemyError:
        return files, "the repository's files (the database cannot be read)"
    if rev is None:
        return content, "the repository's files (no revision published yet)"
    return content, f"live revision #{rev} (give a folder to check that folder instead)"


def print_report(report: Report, strict: bool = False, what: str = "") -> bool:
    """Print every problem, errors first; True when the content may be published."""
    for p in report.problems:
        click.echo(str(p))
    blocking = report.problems if strict else report.errors
    languages = len(report.catalog.languages) if report.catalog else 0
    click.echo(f"{languages} languages{f' in {what}' if what else ''}: {len(report.errors)} error(s), "
               f"{len(report.warnings)} warning(s)"
               + (" (nothing blocks publishing)" if not blocking else " (fix the errors before publishing)"))
    return not blocking


def check_command(directory: str | None, strict: bool) -> None:
    content, what = _served(directory)
    report = check_content(content)
    if not print_report(report, strict, what):
        sys.exit(1)


@click.command("status")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@with_appcontext
def status_command(directory: str | None) -> None:
    """One row per language: translated, reviewed, unreviewed, stale, missing, over the SMS budget (of DIRECTORY,
    else of the live revision)."""
    content, what = _served(directory)
    report = check_content(content)
    if report.catalog is None:
        print_report(report, what=what)
        sys.exit(1)
    cols = ("translated", "reviewed", "unreviewed", "stale", "missing", "over budget")
    click.echo(f"{'language':<10}" + "".join(f"{c:>13}" for c in cols))
    for locale, st in report.status.items():
        values = (st.translated, st.reviewed, st.unreviewed, st.stale, st.missing, st.over_budget)
        click.echo(f"{locale:<10}" + "".join(f"{v:>13}" for v in values))
    click.echo(f"{what}: {len(report.errors)} error(s), {len(report.warnings)} warning(s): "
               "`assistant catalog check` lists them")


def _session():
    return current_app.extensions["sessionmaker"]()


def _database_error(exc: Exception) -> click.ClickException:
    return click.ClickException(f"the database cannot be used ({type(exc).__name__}); is it up, and has "
                                "`assistant db upgrade` run?")


@click.command("publish")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--note", required=True, help="What changed and why, for the history.")
@click.option("--by", "by", required=True, help="Your name, for the history.")
@click.option("--draft", "draft", type=int, help="Publish this draft revision (from `catalog import`) instead.")
@with_appcontext
def publish_command(directory: str, note: str, by: str, draft: int | None) -> None:
    """Check DIRECTORY (holding messages/ and locales/; default: here) and make it the live catalog of every
    worker, as a new revision. Refused when the check finds an error: the live catalog keeps serving."""
    from .publishing import POLL_SECONDS, publish, publish_draft

    content = _content(directory) if draft is None else None
    base = _pulled_from(Path(directory)) if draft is None else None
    with _publishing() as session:
        if draft is not None:
            done = publish_draft(session, current_app, draft, by=by, note=note)
        else:
            done = publish(session, current_app, content, by=by, note=note, base=base)
    click.echo(f"{len(done.report.warnings)} warning(s); `assistant catalog check` lists them")
    if done.onto:
        what = f"draft #{draft}" if draft is not None else f"{directory}"
        click.echo(f"{what} was made from revision #{done.based_on}; only its own changes were applied onto the live "
                   f"revision #{done.onto} (what colleagues published since is kept)")
    click.echo(f"published revision #{done.id}: {done.summary}")
    _say_unreviewed_again(done)
    click.echo(f"every worker answers from it within about {POLL_SECONDS:.0f} s")


@contextmanager
def _publishing():
    """A session for one of :mod:`publishing`'s actions; a refusal or a database failure is a plain message."""
    from sqlalchemy.exc import SQLAlchemyError

    from .publishing import Refused

    try:
        with _session() as session:
            yield session
    except Refused as exc:
        for line in exc.lines:
            click.echo(line)
        raise click.ClickException(exc.message) from None
    except SQLAlchemyError as exc:
        raise _database_error(exc) from exc


PULLED_FROM = ".catalog-revision"  # written by `pull` beside messages/ and locales/: the revision they hold


def _pulled_from(root: Path) -> int | None:
    try:
        text = (root / PULLED_FROM).read_text("utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _say_unreviewed_again(done) -> None:
    if done.unreviewed_again:
        click.echo(f"{len(done.unreviewed_again)} entr{'y' if len(done.unreviewed_again) == 1 else 'ies'} changed "
                   "without a review, marked 'Needs work' again: " + ", ".join(done.unreviewed_again[:10])
                   + (" ..." if len(done.unreviewed_again) > 10 else ""))


@click.command("history")
@click.option("--limit", default=30, show_default=True)
@with_appcontext
def history_command(limit: int) -> None:
    """The published revisions, newest first; the live one is marked."""
    from sqlalchemy.exc import SQLAlchemyError

    from .revisions import history, summary

    try:
        with _session() as session:
            rows = history(session, limit)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    if not rows:
        click.echo("no revision published yet: the files in the repository are served")
        return
    import json

    live = next((r.id for r in rows if not r.draft), None)
    for r in rows:
        mark = "LIVE " if r.id == live else ("draft" if r.draft else "     ")
        based = f" (based on #{r.parent_id})" if r.draft and r.parent_id else ""
        click.echo(f"#{r.id:<4} {mark} {r.created_at:%Y-%m-%d %H:%M} UTC  {r.kind:<10} by {r.created_by}: "
                   f"{r.note or '-'}  [{summary(json.loads(r.changes))}]{based}")


@click.command("show")
@click.argument("rev", type=int)
@with_appcontext
def show_command(rev: int) -> None:
    """What revision REV (the number `history` prints) changed against its parent."""
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from .revisions import get

    try:
        with _session() as session:
            r = get(session, rev)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    if r is None:
        raise click.ClickException(f"there is no revision #{rev} (`assistant catalog history` lists them)")
    click.echo(f"#{r.id} {r.kind}{' (draft)' if r.draft else ''} by {r.created_by}, {r.created_at:%Y-%m-%d %H:%M} "
               f"UTC, parent #{r.parent_id or '-'}: {r.note or '-'}")
    changed = json.loads(r.changes)
    if not changed:
        click.echo("  no entry changed")
    for locale, diff in changed.items():
        for what, keys in diff.items():
            for key in keys:
                click.echo(f"  {locale:<8} {what:<8} {key}")


@click.command("rollback")
@click.argument("rev", type=int)
@click.option("--by", "by", required=True, help="Your name, for the history.")
@click.option("--note", default="", help="Why.")
@with_appcontext
def rollback_command(rev: int, by: str, note: str) -> None:
    """Make revision REV's content live again, as a new history entry."""
    from .publishing import rollback

    with _publishing() as session:
        done = rollback(session, current_app, rev, by=by, note=note)
    click.echo(f"revision #{done.id} (the content of #{rev}) is live: {done.summary}")


@click.command("pull")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
@with_appcontext
def pull_command(directory: str) -> None:
    """Write the live revision into DIRECTORY's messages/ and locales/ (default: here), to commit it to git."""
    from sqlalchemy.exc import SQLAlchemyError

    from .catalogcheck import write_tree
    from .revisions import live, unpack

    try:
        with _session() as session:
            r = live(session)
    except SQLAlchemyError as exc:
        raise _database_error(exc) from exc
    if r is None:
        raise click.ClickException("no revision published yet: the files in the repository are the live ones")
    changed = write_tree(unpack(r.content), Path(directory))
    for path in changed:
        click.echo(f"wrote {path}")
    try:  # publishing this folder later applies only what was edited in it onto the then live revision
        (Path(directory) / PULLED_FROM).write_text(f"{r.id}\n", "utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {Path(directory) / PULLED_FROM}: {exc.strerror}") from exc
    click.echo(f"revision #{r.id}: {len(changed)} file(s) changed")


@click.command("export")
@click.argument("locale")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default=None,
              help="xlsx (the default) keeps every script in Excel; csv is UTF-8 with a BOM. Taken from the -o "
              "file's name when not given.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: LOCALE.xlsx).")
@with_appcontext
def export_command(locale: str, fmt: str | None, output: str | None) -> None:
    """Write LOCALE's entries of the live catalog as a spreadsheet: key, context, English, translation, review,
    budget (keywords one per row). Edit the translation and review columns only."""
    from sqlalchemy.exc import SQLAlchemyError

    from .revisions import ensure_first, live_content, repository_content
    from .spreadsheets import SpreadsheetError, export

    if output:
        suffix = Path(output).suffix.lower().lstrip(".")
        if suffix not in ("xlsx", "csv"):
            raise click.ClickException(f"{Path(output).name}: name the file .xlsx or .csv (the format is taken from "
                                       "its name)")
        if fmt and fmt != suffix:
            raise click.ClickException(f"--format {fmt} would write {fmt.upper()} into {Path(output).name}: name "
                                       f"the file .{fmt}, or leave --format out")
        fmt = suffix
    fmt = fmt or "xlsx"
    try:
        with _session() as session:
            ensure_first(session, repository_content(current_app))  # a number the import can compare with
            session.commit()
            rev, content = live_content(session, repository_content(current_app))
    except SQLAlchemyError:
        rev, content = None, repository_content(current_app)  # no database: the files are what is served
    try:
        data = export(content, locale, fmt, rev)
    except SpreadsheetError as exc:
        raise click.ClickException(str(exc)) from exc
    path = Path(output or f"{locale}.{fmt}")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from exc
    click.echo(f"wrote {path} ({locale}, {fmt}, from {'revision #' + str(rev) if rev else 'the repository files'})")


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--locale", help="The language the file must be (checked against its locale column).")
@click.option("--by", "by", default="", help="Your name, for the history; required when the review column marks "
              "an entry reviewed (the review is recorded under it).")
@click.option("--note", default="", help="What changed and why.")
@with_appcontext
def import_command(file: str, locale: str | None, by: str, note: str) -> None:
    """Read back a spreadsheet from `catalog export`, show what changed, check it, and store it as a draft
    revision (`catalog publish --draft N` makes it live)."""
    from .publishing import import_sheet

    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from exc
    with _publishing() as session:
        done = import_sheet(session, current_app, data, Path(file).name, locale, by=by, note=note)
    if done is None:
        click.echo(f"{Path(file).name}: nothing changed")
        return
    for line in done.lines:
        click.echo(line)
    n = done.entries
    click.echo(f"draft revision #{done.id}: {n} entr{'y' if n == 1 else 'ies'} changed in {done.locale}. Make it "
               f"live: assistant catalog publish --draft {done.id} --by NAME --note \"...\"")


@click.command("review")
@click.argument("locale")
@click.argument("keys", nargs=-1, required=True)
@click.option("--by", "by", required=True, help="The reviewer's name, for the record.")
@with_appcontext
def review_command(locale: str, keys: tuple[str, ...], by: str) -> None:
    """Mark LOCALE's entries KEYS (msgctxt, as `catalog unreviewed` lists them) reviewed by NAME, as a new live
    revision. The record holds this exact wording: if the translation or its English changes, it is
    unreviewed again."""
    from .publishing import review

    with _publishing() as session:
        done = review(session, current_app, locale, keys, by=by)
    if done is None:
        click.echo(f"{len(keys)} entr{'y' if len(keys) == 1 else 'ies'} already reviewed; recorded by {by}")
        return
    for line in done.lines:
        click.echo(line)
    edited = len(keys)
    click.echo(f"revision #{done.id}: {edited} entr{'y' if edited == 1 else 'ies'} of {locale} reviewed by {by} "
               f"({done.summary})")


def register(group: click.Group) -> None:
    """Add the commands to the ``catalog`` group."""
    for command in (status_command, publish_command, history_command, show_command, rollback_command,
                    pull_command, export_command, import_command, review_command):
        group.add_command(command)
