"""What a coordinator does with the content, once for the command line and the web page alike: publish
(files, a draft), import a spreadsheet or a language's .po as a draft, mark entries reviewed, roll back,
add a keyword. Each checks with :func:`catalogcheck.check_content`, stores with :func:`revisions.store`, and
either returns what was stored or raises :class:`Refused` with the problems, in words a coordinator can act
on. Nothing here prints or renders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy.orm import Session

from .catalogcheck import Content, Report, check_content, po_path, source_of
from .pofile import parse_po
from .reviews import record
from .revisions import (
    POLL_SECONDS,
    Conflict,
    Published,
    PublishError,
    get,
    live,
    live_content,
    rebase,
    repository_content,
    store,
    summary,
    unpack,
)
from .source import SourceError, split_list
from .spreadsheets import (
    Change,
    SpreadsheetError,
    apply_sheet,
    edit_po,
    is_stale,
    language_read_as,
    language_scripts,
    letters_lost,
    lost_letters_message,
    read_sheet,
)

__all__ = ["POLL_SECONDS", "Refused", "Stored", "add_keyword", "import_po", "import_sheet", "publish",
           "publish_draft", "review", "rollback"]


class Refused(Exception):
    """Nothing was stored: ``message`` says why, ``lines`` list the problems (errors first)."""

    def __init__(self, message: str, lines: Sequence[str] = (), report: Report | None = None) -> None:
        super().__init__(message)
        self.message, self.lines, self.report = message, list(lines), report


@dataclass
class Stored:
    """A revision stored: its number, what changed, and what the check said."""

    published: Published
    report: Report
    lines: list[str] = field(default_factory=list)  # what the import changed, row by row
    entries: int = 0  # how many entries an import changed
    locale: str = ""
    based_on: int | None = None  # the revision the change was made from, when the live one had moved on since
    onto: int | None = None  # ... and the live revision its changes were applied onto

    @property
    def id(self) -> int:
        return self.published.revision.id

    @property
    def draft(self) -> bool:
        return self.published.revision.draft

    @property
    def summary(self) -> str:
        return summary(self.published.changes)

    @property
    def unreviewed_again(self) -> tuple[str, ...]:
        return self.published.unreviewed_again


def _audit(session: Session, by: str, action: str, target: str, detail: str) -> None:
    """The audit log's line for what was just stored (the command line's and the web page's alike)."""
    from .accounts import audit

    audit(session, by.strip(), action, target, detail)
    session.commit()


def _store(session: Session, app: Flask, content: Content, report: Report, *, by: str, note: str, kind: str,
           draft: bool = False) -> Published:
    if report.errors:
        raise Refused("refused: fix the errors above; the live catalog keeps serving",
                      [str(p) for p in report.problems], report)
    try:
        return store(session, content, by=by, note=note, kind=kind, repository=repository_content(app),
                     draft=draft, report=report)
    except PublishError as exc:
        raise Refused(str(exc), report=report) from exc


def _conflicts_refused(what: str, base: int, onto: int, conflicts: Sequence[Conflict],
                       rows: dict[str, int] | None = None, name: str = "") -> Refused:
    keys = [f"{c.locale} {c.key}" for c in conflicts]
    lines = []
    for c in conflicts:
        row = (rows or {}).get(c.key) if c.locale != "en" else None
        lines.append(f"{name} row {row}: {c}" if row else str(c))
    return Refused(f"refused: {what} was made from revision #{base}; since then the live catalog (now #{onto}) "
                   f"changed the same entr{'y' if len(keys) == 1 else 'ies'} differently: {', '.join(keys[:10])}"
                   f"{' ...' if len(keys) > 10 else ''}. Nothing was stored: start again from the live catalog "
                   "(export or pull it) and redo those entries", lines)


def _onto_live(session: Session, content: Content, base: int | None, what: str) -> tuple[Content, int | None]:
    """``content``, made from revision ``base``, with only its own changes applied onto the live revision (the
    whole content as it is when the live revision is ``base``). Returns the content and the live number it was
    applied onto (None: nothing to apply onto). Refused on a conflict: the same entry changed on both sides."""
    current = live(session)
    if base is None or current is None or current.id == base:
        return content, None
    parent = get(session, base)
    if parent is None:
        raise Refused(f"{what} was made from revision #{base}, which this database does not have (another "
                      "server's export?): export again from this one")
    merged, conflicts = rebase(unpack(parent.content), content, unpack(current.content))
    if conflicts:
        raise _conflicts_refused(what, base, current.id, conflicts)
    return merged, current.id


def publish(session: Session, app: Flask, content: Content, *, by: str, note: str, base: int | None = None) -> Stored:
    """Make ``content`` live, if it passes the check. ``base``: the revision it was pulled from; when the live
    revision has moved on since, only what changed against ``base`` is applied onto the live one."""
    content, onto = _onto_live(session, content, base, "this folder")
    report = check_content(content)
    done = Stored(_store(session, app, content, report, by=by, note=note, kind="publish"), report,
                  based_on=base if onto else None, onto=onto)
    _audit(session, by, "catalog.publish", f"revision #{done.id}", done.summary)
    return done


def publish_draft(session: Session, app: Flask, number: int, *, by: str, note: str) -> Stored:
    """Make draft ``number`` live: its own changes (against the revision it was made from) applied onto the live
    revision, so a colleague's work published since is kept; refused when both changed the same entry."""
    row = get(session, number)
    if row is None or not row.draft:
        raise Refused(f"there is no draft revision #{number}")
    content, onto = _onto_live(session, unpack(row.content), row.parent_id, f"draft #{number}")
    report = check_content(content)
    done = Stored(_store(session, app, content, report, by=by, note=note or row.note, kind="publish"), report,
                  based_on=row.parent_id if onto else None, onto=onto)
    _audit(session, by, "catalog.publish", f"revision #{done.id}", f"draft #{number}: {done.summary}")
    return done


def rollback(session: Session, app: Flask, number: int, *, by: str, note: str = "") -> Stored:
    """Make revision ``number``'s content live again, as a new revision (history only grows). A draft was never
    live: it is published, not rolled back to."""
    old = get(session, number)
    if old is None:
        raise Refused(f"there is no revision #{number}")
    if old.draft:
        raise Refused(f"revision #{number} is a draft: it was never live, so there is nothing to go back to. To make "
                      f"it live, publish it (assistant catalog publish --draft {number})")
    content = unpack(old.content)
    report = check_content(content)
    if report.errors:
        raise Refused(f"refused: revision #{number} does not pass today's checks", [str(p) for p in report.problems],
                      report)
    done = Stored(_store(session, app, content, report, by=by, note=note or f"rollback to #{number}",
                         kind="rollback"), report)
    _audit(session, by, "catalog.rollback", f"revision #{done.id}", f"content of #{number}: {done.summary}")
    return done


def _describe(c: Change) -> str:
    what = "reviewed" if c.reviewed and not c.was_reviewed and c.old == c.new else (
        "needs work" if c.old == c.new else "changed")
    return f"row {c.row}: {c.key}: {what}" + (f": {c.new[:70]!r}" if c.old != c.new else "")


UNNAMED = "spreadsheet import"  # the author of a draft imported without --by (no review may be recorded so)


def import_sheet(session: Session, app: Flask, data: bytes, name: str, locale: str | None, *, by: str,
                 note: str = "") -> Stored | None:
    """A spreadsheet from `catalog export`, applied to the live content and stored as a draft (None: nothing
    changed). Problems name the spreadsheet's rows."""
    try:
        sheet = read_sheet(name, data)
        rev, content = live_content(session, repository_content(app))
        base = content
        if sheet.revision is not None and sheet.revision != rev:
            row = get(session, sheet.revision)
            if row is None:
                raise Refused(f"{name} was exported from revision #{sheet.revision}, which this database does not "
                              "have (another server's export?): export again from this one")
            base = unpack(row.content)  # what the file was exported from: only rows edited since are changes
        imported = apply_sheet(base, sheet, locale)
    except SpreadsheetError as exc:
        raise Refused(str(exc)) from exc
    lines = [_describe(c) for c in imported.changes]
    if not imported.changes:
        return None
    onto = None
    if base is not content:
        merged, conflicts = rebase(base, imported.content, content)
        if conflicts:
            raise _conflicts_refused(name, sheet.revision, rev, conflicts, imported.rows, name)
        imported.content, onto = merged, rev
    try:
        english = {e.context: e.msgid for e in source_of(imported.content).entries}
    except SourceError as exc:
        raise Refused(str(exc)) from exc
    reviewed = [c for c in imported.changes if c.reviewed and c.new]
    if reviewed and by.strip() in ("", UNNAMED):
        rows = ", ".join(str(c.row) for c in reviewed[:10]) + (" ..." if len(reviewed) > 10 else "")
        raise Refused(f"the review column marks {len(reviewed)} entr{'y' if len(reviewed) == 1 else 'ies'} reviewed "
                      f"(row{'s' if len(reviewed) > 1 else ''} {rows}): say who reviewed with --by NAME (a review "
                      "is recorded with the reviewer's name); nothing was stored")
    by = by.strip() or UNNAMED
    for c in reviewed:
        record(session, imported.locale, c.key, english[c.key], c.new, by)
    report = check_content(imported.content)
    problems = []
    for p in report.problems:
        if p.locale != imported.locale and p.severity != "error":
            continue
        key = p.where.rsplit("(", 1)[-1].rstrip(")") if "(" in p.where else ""
        row = imported.rows.get(key)
        problems.append(f"{p.severity}: [{p.locale}] {name} row {row} ({key}): {p.message}" if row else str(p))
    other = language_read_as(imported.changes, imported.locale, report.catalog.languages) if report.catalog else None
    if other:
        from .language import language_label

        problems.append(f"warning: [{imported.locale}] {name}: the changed translations read as "
                        f"{language_label(other)}, not {language_label(imported.locale)}: check that the file and "
                        "its locale column are the same language before publishing")
    if report.errors:
        session.rollback()
        raise Refused(f"refused: {len(report.errors)} error(s); nothing was stored", problems, report)
    done = _store(session, app, imported.content, report, by=by, note=note or f"import of {name}", kind="import",
                  draft=True)
    stored = Stored(done, report, lines + problems, len(imported.changes), imported.locale,
                    based_on=sheet.revision if onto else None, onto=onto)
    _audit(session, by, "catalog.import", name[:100], f"draft revision #{stored.id}: {stored.summary}")
    return stored


def import_po(session: Session, app: Flask, data: bytes, locale: str, *, by: str, note: str = "") -> Stored:
    """A language's whole .po (from Poedit), in place of the live one, stored as a draft. Problems name the
    uploaded file's lines."""
    _rev, content = live_content(session, repository_content(app))
    if po_path(locale) not in content:
        raise Refused(f"there is no language {locale!r}")
    _refuse_lost_letters(content[po_path(locale)], data, locale)
    new = dict(content)
    new[po_path(locale)] = data
    report = check_content(new)
    if report.errors:
        raise Refused(f"refused: {len(report.errors)} error(s); nothing was stored",
                      [str(p) for p in report.problems if p.locale == locale or p.severity == "error"], report)
    done = Stored(_store(session, app, new, report, by=by, note=note or f"upload of {locale}'s catalog",
                         kind="import", draft=True), report)
    _audit(session, by, "catalog.import", f"{locale} .po", f"draft revision #{done.id}: {done.summary}")
    return done


def _refuse_lost_letters(old: bytes, new: bytes, locale: str) -> None:
    """Refuse a .po whose changed translations lost their letters (saved in a code page, not UTF-8)."""
    before, after = parse_po(old), parse_po(new)
    if after.errors:
        return  # the check reports it with its line
    have = before.by_context()
    scripts = language_scripts(e.msgstr for e in have.values())
    changed = [(k, e) for k, e in after.by_context().items() if k not in have or have[k].msgstr != e.msgstr]
    damaged = [(k, f"line {e.msgstr_lineno}", e.msgstr) for k, e in changed
               if letters_lost(have[k].msgstr if k in have else "", e.msgstr, scripts)]
    if damaged:
        raise Refused(lost_letters_message(f"this {locale} .po file", locale, damaged, len(changed),
                                           "It was saved in an encoding that cannot hold the language's letters. "
                                           "Nothing was stored: open the original in Poedit and save it as UTF-8"))


def _language_file(content: Content, locale: str):
    """``locale``'s .po in ``content``, as bytes and parsed; refused when missing or unreadable."""
    data = content.get(po_path(locale))
    if data is None:
        raise Refused(f"there is no language {locale!r}")
    parsed = parse_po(data)
    if parsed.errors:
        raise Refused(f"{po_path(locale)} does not read; run `assistant catalog check`")
    return data, parsed


def review(session: Session, app: Flask, locale: str, keys: Iterable[str], *, by: str) -> Stored | None:
    """Mark ``keys`` of ``locale`` reviewed by ``by`` for their exact wording, as a new live revision (None: they
    were reviewed already; the record is kept). An entry translated from an older English text is reviewed
    against the English of now: it is written with that English (``Stored.lines`` says so)."""
    keys = list(keys)
    if not by.strip():
        raise Refused("say who reviewed")
    _rev, content = live_content(session, repository_content(app))
    data, parsed = _language_file(content, locale)
    entries = parsed.by_context()
    try:
        source = {e.context: e for e in source_of(content).entries}
    except SourceError as exc:
        raise Refused(str(exc)) from exc
    edits, notes = [], []
    for key in keys:
        e = entries.get(key)
        if e is None or not e.msgstr.strip() or key not in source:
            raise Refused(f"{locale} {key}: no translation to review")
        english = source[key].msgid
        record(session, locale, key, english, e.msgstr, by)
        if is_stale(e, english):
            notes.append(f"{locale} {key}: its English changed since it was translated; reviewed against the "
                         f"English of now: {english[:80]!r}")
            edits.append((e, key, e.msgstr, True))
        elif e.fuzzy:
            edits.append((e, key, e.msgstr, True))
    if not edits:
        _audit(session, by, "catalog.review", f"{locale} {', '.join(keys)}"[:255], "already reviewed; recorded")
        return None
    new = dict(content)
    new[po_path(locale)] = edit_po(data.decode("utf-8"), edits, source).encode("utf-8")
    report = check_content(new)
    done = Stored(_store(session, app, new, report, by=by, note=f"reviewed {locale}: {', '.join(keys)}"[:500],
                         kind="review"), report, notes)
    _audit(session, by, "catalog.review", f"{locale} {', '.join(keys)}"[:255], f"revision #{done.id}")
    return done


def add_keyword(session: Session, app: Flask, locale: str, topic: str, keyword: str, *, by: str) -> Stored:
    """``keyword`` added to ``topic``'s keywords in ``locale``, as a draft revision (checked, then published
    like any other): how an unanswered text becomes an answered one."""
    keyword = " ".join(keyword.split())[:80]
    if not keyword or "," in keyword:
        raise Refused("give one keyword or phrase, without commas")
    _rev, content = live_content(session, repository_content(app))
    source = source_of(content)
    key = f"topic:{topic}:keywords"
    entry = next((e for e in source.entries if e.context == key), None)
    if entry is None:
        raise Refused(f"there is no topic {topic!r}")
    if locale == "en":
        raise Refused("English keywords live in messages/topics.toml: edit it and publish the folder")
    data, parsed = _language_file(content, locale)
    old_entry = parsed.by_context().get(key)
    old = old_entry.msgstr if old_entry is not None else ""
    if keyword.casefold() in {w.casefold() for w in split_list(old)}:
        raise Refused(f"{keyword!r} is already a keyword of this topic in {locale}")
    new_value = f"{old}, {keyword}" if old.strip() else keyword
    entries = {e.context: e for e in source.entries}
    new = dict(content)
    new[po_path(locale)] = edit_po(data.decode("utf-8"), [(old_entry, key, new_value, False)], entries).encode("utf-8")
    report = check_content(new)
    done = Stored(_store(session, app, new, report, by=by, note=f"keyword {keyword!r} for {topic} in {locale}",
                         kind="import", draft=True), report)
    _audit(session, by, "catalog.keyword", f"{locale} {topic}", f"draft revision #{done.id}: {keyword!r}")
    return done
