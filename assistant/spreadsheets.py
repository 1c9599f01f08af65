"""A language as a spreadsheet, for translators and reviewers who do not use Poedit, and back.

One row per entry: key, context, English, translation, review state, budget; a keyword list takes one row per
keyword. XLSX is the default: Excel's plain CSV loses Chinese, Arabic, Korean and Russian (it saves in the
computer's code page). CSV is written as UTF-8 with a BOM, which Excel reads as UTF-8. Every cell is text: a
translation starting with ``=`` is never a formula (in XLSX the cell is typed as text; in CSV it is written
with a leading apostrophe, which Excel shows as text and the import removes).

The import edits the ``.po`` in place, entry by entry, so a file that went out and came back unedited is
byte for byte the same, and a changed entry changes nothing around it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import SAMPLE_VALUES, _Sample
from .catalogcheck import Content, po_path, source_of
from .pofile import PoEntry, parse_po
from .segments import measure
from .source import split_list

COLUMNS = ("key", "context", "English", "translation", "review", "budget", "locale", "English hash", "revision")
# An export before the "revision" column had the first eight only; it is still read (compared with the live revision).
_REQUIRED_COLUMNS = COLUMNS[:8]
REVIEWED, NEEDS_WORK = "reviewed", "needs work"
STALE = "needs work (English changed)"  # translated from an older English text: check it against the new one
FORMATS = ("xlsx", "csv")
_FORMULA_START = ("=", "+", "-", "@")


class SpreadsheetError(Exception):
    """The file cannot be imported; the message says where and why, in plain words."""


@dataclass
class Row:
    key: str
    context: str
    english: str
    translation: str
    review: str
    budget: str
    locale: str
    english_hash: str
    revision: str = ""  # the revision the file was exported from: the import applies only what was edited since

    def cells(self) -> list[str]:
        return [self.key, self.context, self.english, self.translation, self.review, self.budget, self.locale,
                self.english_hash, self.revision]


def english_hash(msgid: str) -> str:
    return hashlib.sha256(msgid.encode("utf-8")).hexdigest()[:12]


def _max_units(segments: int, encoding: str) -> int:
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    return single if segments == 1 else segments * multi


def budget(template: str, context: str) -> str:
    """How long this text may be in its own encoding, placeholders counted at their usual length."""
    limit = 2 if context.startswith("text:escalation.") else 3
    size = measure(template.format_map(_Sample(SAMPLE_VALUES)))
    extra = size.units - measure(re.sub(r"\{\w*\}", "", template)).units
    return f"{_max_units(limit, size.encoding) - extra} characters ({size.encoding}, {limit} SMS)"


def is_stale(entry: PoEntry, english: str) -> bool:
    """The entry was translated from another English text than ``english`` (the current one)."""
    return entry.msgid != english or (entry.previous_msgid is not None and entry.previous_msgid != entry.msgid)


def export_rows(content: Content, locale: str, revision: int | None = None) -> list[Row]:
    """The rows of ``locale``'s spreadsheet (``revision``: the number of the revision ``content`` is)."""
    number = str(revision) if revision else ""
    source = source_of(content)
    if locale not in source.languages:
        raise SpreadsheetError(f"no language {locale!r} to export: choose one of {', '.join(source.languages)}")
    data = content.get(po_path(locale))
    parsed = parse_po(data) if data is not None else None
    if parsed is not None and parsed.errors:
        raise SpreadsheetError(f"{po_path(locale)} does not read ({parsed.errors[0].message}, line "
                               f"{parsed.errors[0].lineno}): fix it with `assistant catalog check` first")
    entries = parsed.by_context() if parsed else {}
    rows = []
    for e in source.entries:
        have = entries.get(e.context)
        text = have.msgstr if have is not None else ""
        review = "" if not text else (STALE if is_stale(have, e.msgid) else NEEDS_WORK if have.fuzzy else REVIEWED)
        where = e.comment
        if e.is_list:
            english = list(split_list(e.msgid))
            items = list(split_list(text))
            for i in range(max(len(english), len(items), 1)):
                rows.append(Row(e.context, where if i == 0 else "", english[i] if i < len(english) else "",
                                items[i] if i < len(items) else "", review if i == 0 else "", "", locale,
                                english_hash(e.msgid) if i == 0 else "", number))
        else:
            rows.append(Row(e.context, where, e.msgid, text, review, budget(text or e.msgid, e.context), locale,
                            english_hash(e.msgid), number))
    return rows


def write_xlsx(rows: list[Row], locale: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font

    wb = Workbook(write_only=True)  # streamed: a language with thousands of keywords takes a fraction of a second
    ws = wb.create_sheet(locale)
    for letter, width in zip("ABCDEFGHI", (30, 40, 50, 50, 12, 26, 8, 14, 9), strict=True):
        ws.column_dimensions[letter].width = width
    ws.freeze_panes = "A2"
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")

    def cell(value: str, **style) -> WriteOnlyCell:
        c = WriteOnlyCell(ws, value=value)
        c.data_type = "s"  # text, even when it starts with "=": never a formula
        c.number_format = "@"
        for k, v in style.items():
            setattr(c, k, v)
        return c

    ws.append([cell(name, font=bold) for name in COLUMNS])
    for row in rows:
        ws.append([cell(v, alignment=wrap) if v else None for v in row.cells()])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _csv_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_csv(rows: list[Row]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for row in rows:
        w.writerow([_csv_cell(v) for v in row.cells()])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def export(content: Content, locale: str, fmt: str = "xlsx", revision: int | None = None) -> bytes:
    rows = export_rows(content, locale, revision)
    return write_xlsx(rows, locale) if fmt == "xlsx" else write_csv(rows)


# --- reading back -------------------------------------------------------------------------------------


@dataclass
class Sheet:
    locale: str
    rows: list[tuple[int, dict[str, str]]]  # (spreadsheet row number, column -> text)
    revision: int | None = None  # the revision it was exported from (None: an older export, without the column)
    name: str = ""  # the file's name, for messages
    title: str = ""  # an .xlsx's sheet title: the export names it after the language


def _cell_text(value, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise SpreadsheetError(f"{where}: TRUE/FALSE is not text; format the column as text and type it again")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        return value
    raise SpreadsheetError(f"{where}: a {type(value).__name__} (a date?) is not text; format the column as text "
                           "and type it again")


# A workbook exported here is well under a megabyte unpacked (the largest language, thousands of keyword rows,
# about 1 MB) and has a dozen parts; Excel adds a few. Past these limits a file is not an export (a "zip bomb"
# of 300 KB can unpack to 300 MB): it is refused before anything is unpacked into memory.
MAX_UNPACKED_BYTES = 20_000_000
MAX_PARTS = 300
_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.I)


def _check_parts(data: bytes, name: str) -> None:
    """Refuse a workbook that unpacks to too much, has too many parts, or declares XML entities (a DOCTYPE:
    Excel never writes one), reading each part in bounded pieces: a part's declared size may lie."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise SpreadsheetError(f"{name} is not an Excel workbook (.xlsx): {type(exc).__name__}") from exc
    with zf:
        parts = zf.infolist()
        if len(parts) > MAX_PARTS:
            raise SpreadsheetError(f"{name} has {len(parts)} parts inside: it is not a spreadsheet from `assistant "
                                   "catalog export`")
        if sum(p.file_size for p in parts) > MAX_UNPACKED_BYTES:
            raise SpreadsheetError(f"{name} unpacks to more than {MAX_UNPACKED_BYTES // 1_000_000} MB: it is not a "
                                   "spreadsheet from `assistant catalog export`")
        total = 0
        for part in parts:
            tail = b""
            try:
                with zf.open(part) as fh:
                    while chunk := fh.read(1 << 20):
                        total += len(chunk)
                        if total > MAX_UNPACKED_BYTES:
                            raise SpreadsheetError(f"{name} unpacks to more than {MAX_UNPACKED_BYTES // 1_000_000} "
                                                   "MB: it is not a spreadsheet from `assistant catalog export`")
                        if _DOCTYPE.search(tail + chunk):
                            raise SpreadsheetError(f"{name}: {part.filename} declares XML entities (a DOCTYPE), "
                                                   "which Excel never writes; it is refused. Export again")
                        tail = chunk[-16:]
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zlib.error) as exc:
                raise SpreadsheetError(f"{name} is damaged ({part.filename}: {type(exc).__name__}): open it in "
                                       "Excel and save it again, or export again") from exc


def read_xlsx(data: bytes, name: str, meta: dict | None = None) -> list[tuple[int, list[str]]]:
    from xml.etree.ElementTree import ParseError

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    _check_parts(data, name)
    try:
        wb = load_workbook(io.BytesIO(data), data_only=False, read_only=True)
    except ParseError as exc:
        raise SpreadsheetError(f"{name} is damaged (ParseError): open it in Excel and save it again, or export "
                               "again") from exc
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise SpreadsheetError(f"{name} is not an Excel workbook (.xlsx): {type(exc).__name__}") from exc
    out = []
    try:
        ws = wb.worksheets[0]
        if meta is not None:
            meta["title"] = ws.title
        for r, row in enumerate(ws.iter_rows(), 1):
            cells = []
            for c, cell in enumerate(row):
                column = COLUMNS[c] if c < len(COLUMNS) else f"column {c + 1}"
                if cell.data_type == "f" or (isinstance(cell.value, str) and cell.value.startswith("=")
                                             and cell.data_type != "s"):
                    raise SpreadsheetError(f"{name} row {r}, {column}: a formula ({str(cell.value)[:30]}) is not "
                                           "allowed; type the text itself")
                cells.append(_cell_text(cell.value, f"{name} row {r}, {column}"))
            out.append((r, cells))
    except SpreadsheetError:
        raise
    except (ParseError, KeyError, IndexError, ValueError, TypeError, AttributeError, OSError, EOFError,
            zipfile.BadZipFile, zlib.error) as exc:
        raise SpreadsheetError(f"{name} is damaged ({type(exc).__name__}): open it in Excel and save it again, or "
                               "export again") from exc
    finally:
        wb.close()
    return out


def read_csv(data: bytes, name: str) -> list[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpreadsheetError(f"{name} is not UTF-8: in Excel save it as 'CSV UTF-8 (Comma delimited)', or export "
                               "as .xlsx") from exc
    if "\0" in text:
        raise SpreadsheetError(f"{name} is not a CSV text file")
    out = []
    try:
        for r, cells in enumerate(csv.reader(io.StringIO(text, newline="")), 1):
            out.append((r, [c[1:] if c.startswith("'") and c[1:].startswith(_FORMULA_START) else c
                            for c in cells]))
    except csv.Error as exc:
        raise SpreadsheetError(f"{name}: not a readable CSV ({exc})") from exc
    return out


def read_sheet(path: Path, data: bytes | None = None) -> Sheet:
    """The rows of an exported spreadsheet; :class:`SpreadsheetError` for anything else."""
    name = Path(path).name
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise SpreadsheetError(f"{name}: give a .xlsx or .csv file exported by `assistant catalog export`")
    try:
        data = data if data is not None else Path(path).read_bytes()
    except OSError as exc:
        raise SpreadsheetError(f"cannot read {path}: {exc.strerror}") from exc
    meta: dict = {}
    raw = read_xlsx(data, name, meta) if suffix == "xlsx" else read_csv(data, name)
    header = [c.strip() for c in raw[0][1][:len(COLUMNS)]] if raw else []
    if header[:len(_REQUIRED_COLUMNS)] != list(_REQUIRED_COLUMNS) or header[len(_REQUIRED_COLUMNS):] not in (
            [], [""], ["revision"]):
        raise SpreadsheetError(f"{name} is not a spreadsheet exported by `assistant catalog export`: its first row "
                               f"must be the columns {', '.join(COLUMNS)}")
    rows = []
    locales: dict[str, int] = {}
    revisions: dict[str, int] = {}
    for r, cells in raw[1:]:
        cells = (cells + [""] * len(COLUMNS))[:len(COLUMNS)]
        if not any(c.strip() for c in cells):
            continue
        row = dict(zip(COLUMNS, cells, strict=True))
        if row["locale"].strip():
            locales.setdefault(row["locale"].strip(), r)
        if row["revision"].strip():
            revisions.setdefault(row["revision"].strip().lstrip("#"), r)
        rows.append((r, row))
    if len(locales) > 1:
        raise SpreadsheetError(f"{name} mixes languages ({', '.join(locales)}): one language per file")
    if not locales:
        raise SpreadsheetError(f"{name} has no language in its locale column")
    if len(revisions) > 1:
        raise SpreadsheetError(f"{name} mixes rows of two exports (revisions {', '.join(revisions)} in the revision "
                               "column): export again and redo the edits in one file")
    number = next(iter(revisions), None)
    if number is not None and not number.isdigit():
        raise SpreadsheetError(f"{name} row {revisions[number]}: revision {number!r} is not a revision number; the "
                               "revision column is written by the export and is not edited")
    return Sheet(next(iter(locales)), rows, int(number) if number else None, name, meta.get("title", ""))


def _same_language(sheet: Sheet, languages: tuple[str, ...]) -> None:
    """Refuse a sheet whose locale column names another language than its sheet title or its file name."""
    stem = Path(sheet.name).stem
    named = [code for code in languages if re.search(rf"(?<![A-Za-z]){re.escape(code)}(?![A-Za-z])", stem, re.I)]
    says = []
    if sheet.title in languages and sheet.title != sheet.locale:
        says.append(f"the sheet is named {sheet.title!r}")
    if len(named) == 1 and named[0] != sheet.locale:
        says.append(f"the file is {sheet.name!r}")
    if says:
        raise SpreadsheetError(f"{sheet.name}: the locale column says {sheet.locale!r}, but {' and '.join(says)}: "
                               "nothing was imported. A file holds one language and its locale column is not "
                               "edited: export the language you mean and put its translations there")


def language_read_as(changes: list, locale: str, languages: tuple[str, ...]) -> str | None:
    """The language most changed translations read as by their words, when it is not ``locale`` (a warning: a
    file of one language with another's locale column); None when they read as ``locale`` or cannot tell."""
    from .language import text_languages
    from .normalize import phrase_tokens
    from .vocabulary import Vocabulary, frequency_table

    vocabulary = Vocabulary(frequency_table(tuple(languages)), ())
    votes: dict[str, int] = {}
    read = 0
    for c in changes:
        if c.old == c.new or not c.new.strip():
            continue
        found = text_languages(phrase_tokens(c.new), vocabulary)
        if not found:
            continue
        read += 1
        best = locale if locale in found else (next(iter(found)) if len(found) == 1 else "")
        votes[best] = votes.get(best, 0) + 1
    if read < 3:
        return None
    best, count = max(votes.items(), key=lambda kv: kv[1])
    return best if best and best != locale and count * 2 > read else None


@dataclass
class Change:
    key: str
    row: int
    old: str
    new: str
    reviewed: bool
    was_reviewed: bool


@dataclass
class Imported:
    locale: str
    content: Content
    changes: list[Change] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # key -> its first row, for problems


def apply_sheet(content: Content, sheet: Sheet, locale: str | None = None) -> Imported:
    """``content`` with ``sheet``'s translations and review marks applied to its language."""
    if locale and locale != sheet.locale:
        raise SpreadsheetError(f"this spreadsheet is for {sheet.locale!r}, not {locale!r}")
    locale = sheet.locale
    source = source_of(content)
    if locale not in source.languages:
        raise SpreadsheetError(f"unknown language {locale!r} in the locale column")
    _same_language(sheet, source.languages)
    entries = {e.context: e for e in source.entries}
    data = content.get(po_path(locale), b"")
    parsed = parse_po(data)
    if parsed.errors:
        raise SpreadsheetError(f"{po_path(locale)} does not read now ({parsed.errors[0].message}); fix it first")
    have = parsed.by_context()

    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for r, row in sheet.rows:
        key = row["key"].strip()
        if not key:
            raise SpreadsheetError(f"row {r}: no key (the first column); copy the key of the entry it belongs to")
        if key not in entries:
            raise SpreadsheetError(f"row {r}: unknown key {key!r}; keys come from the export and are not changed")
        if row["locale"].strip() not in ("", locale):
            raise SpreadsheetError(f"row {r}: language {row['locale']!r}, the file is {locale!r}")
        grouped.setdefault(key, []).append((r, row))

    out = Imported(locale, dict(content))
    text = data.decode("utf-8")
    edits: list[tuple[PoEntry | None, str, str, bool]] = []
    for key, rows in grouped.items():
        entry = entries[key]
        first, row0 = rows[0]
        out.rows[key] = first
        review = next((r["review"].strip().lower() for _n, r in rows if r["review"].strip()), "")
        if review == STALE.lower():
            review = NEEDS_WORK
        if review not in ("", REVIEWED, NEEDS_WORK):
            raise SpreadsheetError(f"row {first}: review is {review!r}; write '{REVIEWED}' or '{NEEDS_WORK}'")
        old_entry = have.get(key)
        old = old_entry.msgstr if old_entry is not None else ""
        stale = old_entry is not None and is_stale(old_entry, entry.msgid)
        if entry.is_list:
            items = [r["translation"].strip() for _n, r in rows if r["translation"].strip()]
            changed = list(split_list(old)) != [i for item in items for i in split_list(item)]
            new = ", ".join(items) if changed else old
        else:
            new = row0["translation"] if len(rows) == 1 else "\n".join(r["translation"] for _n, r in rows)
            changed = new != old
        was_reviewed = bool(old) and old_entry is not None and not old_entry.fuzzy and not stale
        if changed and row0["English hash"].strip() and row0["English hash"].strip() != english_hash(entry.msgid):
            raise SpreadsheetError(f"row {first} ({key}): the English changed since this file was exported; export "
                                   "again and redo this row")
        reviewed = review == REVIEWED if review else (was_reviewed and not changed)
        if not new:
            reviewed = False
        if not changed and reviewed == was_reviewed:
            continue
        if not changed and not old:
            continue
        out.changes.append(Change(key, first, old, new, reviewed, was_reviewed))
        edits.append((old_entry, key, new, reviewed))
    scripts = language_scripts(e.msgstr for e in have.values())
    damaged = [(c.key, f"row {c.row}", c.new) for c in out.changes
               if c.old != c.new and letters_lost(c.old, c.new, scripts)]
    if damaged:
        raise SpreadsheetError(lost_letters_message(sheet.name or "this file", locale, damaged,
                                                    sum(c.old != c.new for c in out.changes)))
    if edits:
        out.content[po_path(locale)] = edit_po(text, edits, entries).encode("utf-8")
    return out


# --- letters lost on the way (a file saved in a code page that cannot hold them) ------------------------

_LOST_MARK = re.compile(r"\?(?=[^\W_]|\?)|\ufffd")  # "?" inside a word or in a run ("s?t", "?? ??"), U+FFFD


def _scripts(text: str) -> set[str]:
    """The scripts of the letters of ``text`` other than Latin: {"HANGUL"}, {"CJK"}, {"CYRILLIC"}..."""
    out = set()
    for ch in text:
        if ch.isalpha() and ord(ch) > 0x24F:
            name = unicodedata.name(ch, "")
            if name and not name.startswith("LATIN"):
                out.add(name.split()[0])
    return out


def letters_lost(old: str, new: str, language_scripts: set[str] = frozenset()) -> bool:
    """True when ``new`` looks like ``old`` after a save that could not hold its letters: letters turned into
    "?" (Excel's plain CSV) or U+FFFD, or none of the language's own script left."""
    if not new.strip():
        return False
    if len(_LOST_MARK.findall(new)) > len(_LOST_MARK.findall(old)) and (
            any(ord(ch) > 127 and ch.isalpha() for ch in old) or language_scripts or "\ufffd" in new):
        return True
    expected = _scripts(old) if old.strip() else set(language_scripts)
    return bool(expected) and any(ch.isalpha() for ch in new) and not expected & _scripts(new)


def language_scripts(texts) -> set[str]:
    """The non-Latin script a language is written in, when most of its translations use one."""
    counts: dict[str, int] = {}
    total = 0
    for text in texts:
        if text.strip():
            total += 1
            for script in _scripts(text):
                counts[script] = counts.get(script, 0) + 1
    return {script for script, n in counts.items() if n * 2 > total}


_CSV_HINT = ("Saving as Excel's 'CSV (Comma delimited)' replaces every letter it cannot hold with '?'. Nothing was "
             "imported: export again and use the .xlsx file, or save as 'CSV UTF-8 (Comma delimited)'")


def lost_letters_message(name: str, locale: str, damaged: list[tuple[str, str, str]], total: int,
                         hint: str = _CSV_HINT) -> str:
    """One message for a file whose letters were lost: ``damaged`` holds (key, "row 12" or "line 40", new text)."""
    key, at, text = min(damaged, key=lambda d: not d[0].startswith("text:escalation."))  # the worst first
    return (f"{name} lost its letters: {len(damaged)} of the {total} changed {locale} translations have '?' (or "
            f"no letters of the language) where the text had letters, e.g. {at} ({key}): {text[:40]!r}. {hint}")


def _escape(value: str) -> str:
    return (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
            .replace("\r", "\\r"))


def edit_po(text: str, edits: list[tuple[PoEntry | None, str, str, bool]], entries) -> str:
    """``text`` with each entry's msgstr and "Needs work" mark set; everything else left as it is. With the
    English source's ``entries`` (msgctxt -> entry), an edited entry is written for the current English: its
    msgid is the English of now and the previous English ("#|", for a stale entry) is dropped, since the new
    translation (or review) is of the English of now."""
    lines = text.split("\n")
    appended = []
    for entry, key, new, reviewed in sorted(edits, key=lambda e: -(e[0].lineno if e[0] else 0)):
        if entry is None:
            appended += ["", *(["#, fuzzy"] if not reviewed else []), f'msgctxt "{_escape(key)}"',
                         f'msgid "{_escape(entries[key].msgid)}"', f'msgstr "{_escape(new)}"']
            continue
        i = entry.msgstr_lineno - 1
        end = i + 1
        while end < len(lines) and lines[end].lstrip().startswith('"'):
            end += 1
        lines[i:end] = [f'msgstr "{_escape(new)}"']
        english = entries.get(key) if entries else None
        rewrite = english is not None and (entry.msgid != english.msgid or entry.previous_msgid is not None)
        if rewrite:
            m = next(k for k in range(entry.lineno - 1, i) if lines[k].startswith("msgid "))
            lines[m:i] = [f'msgid "{_escape(english.msgid)}"']
        # the comment lines just above the entry: flags (#,) and the previous English (#|)
        top = entry.lineno - 1
        start = top
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        block = lines[start:top]
        flags_at = next((k for k, x in enumerate(block) if x.startswith("#,")), None)
        flags = [f.strip() for f in block[flags_at][2:].split(",") if f.strip()] if flags_at is not None else []
        flags = [f for f in flags if f != "fuzzy"]
        if not reviewed:
            flags.insert(0, "fuzzy")
        if reviewed or rewrite:
            block = [x for x in block if not x.startswith("#|")]  # the old English is done with
            flags_at = next((k for k, x in enumerate(block) if x.startswith("#,")), None)
        flag_line = ["#, " + ", ".join(flags)] if flags else []
        if flags_at is not None:
            block[flags_at:flags_at + 1] = flag_line
        else:
            prev = next((k for k, x in enumerate(block) if x.startswith("#|")), len(block))
            block[prev:prev] = flag_line
        lines[start:top] = block
    if appended:
        while lines and lines[-1] == "":
            lines.pop()
        lines += [*appended, ""]
    return "\n".join(lines)
