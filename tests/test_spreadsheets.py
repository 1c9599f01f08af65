"""`assistant catalog export` and `import`: a language out as a spreadsheet and back, without loss, every cell
text, and every wrong file a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from assistant.catalogcheck import read_dirs, read_tree
from assistant.pofile import parse_po
from assistant.spreadsheets import COLUMNS, apply_sheet, export, read_sheet

from .conftest import LOCALES, ROOT, close_app
from .test_catalogcheck import po, set_msgstr
from .test_publishing import cli, make_app, reply, wait_until


@pytest.fixture(scope="module")
def shipped():
    return read_dirs(ROOT / "messages", ROOT / "locales")


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@pytest.mark.parametrize("locale", LOCALES)
def test_round_trip_without_loss_in_every_language(shipped, locale, fmt, tmp_path):
    path = tmp_path / f"{locale}.{fmt}"
    path.write_bytes(export(shipped, locale, fmt))
    sheet = read_sheet(path)
    assert sheet.locale == locale
    # every translation is in the file, as it is in the catalog
    entries = parse_po(shipped[f"locales/{locale}/LC_MESSAGES/messages.po"]).by_context()
    texts = {row["key"]: row["translation"] for _r, row in sheet.rows if not row["key"].endswith(
        (":keywords", ":phrases")) and not row["key"].startswith(("command:", "cue:"))}
    for key, value in texts.items():
        assert value == entries[key].msgstr, key
    imported = apply_sheet(shipped, sheet)
    assert imported.changes == []
    assert imported.content == shipped


def test_one_edit_changes_that_entry_only(shipped, tmp_path):
    path = tmp_path / "es.xlsx"
    path.write_bytes(export(shipped, "es", "xlsx"))
    wb = load_workbook(path)
    ws = wb.active
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "text:more.none")
    ws.cell(row, 4).value = 'Eso es todo. Escriba "MENU" para ver temas.'
    wb.save(path)
    imported = apply_sheet(shipped, read_sheet(path))
    assert [(c.key, c.row) for c in imported.changes] == [("text:more.none", row)]
    old = shipped["locales/es/LC_MESSAGES/messages.po"].decode().split("\n")
    new = imported.content["locales/es/LC_MESSAGES/messages.po"].decode().split("\n")
    assert len(old) == len(new)
    differ = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert len(differ) == 1 and new[differ[0]] == r'msgstr "Eso es todo. Escriba \"MENU\" para ver temas."'
    entry = parse_po(imported.content["locales/es/LC_MESSAGES/messages.po"]).by_context()["text:more.none"]
    assert entry.msgstr == 'Eso es todo. Escriba "MENU" para ver temas.' and entry.fuzzy
    assert {k for k in imported.content if imported.content[k] != shipped[k]} == {"locales/es/LC_MESSAGES/messages.po"}


def test_cells_are_text_never_formulas(shipped, tmp_path):
    content = dict(shipped)
    path = ROOT / "locales/es/LC_MESSAGES/messages.po"
    text = path.read_text("utf-8")
    good = parse_po(path.read_bytes()).by_context()["text:more.hint"].msgstr
    formula = text.replace(f'msgstr "{good}"', 'msgstr "=SUM(A1:A9) MAS"')
    content["locales/es/LC_MESSAGES/messages.po"] = formula.encode()
    xlsx, csv = tmp_path / "es.xlsx", tmp_path / "es.csv"
    xlsx.write_bytes(export(content, "es", "xlsx"))
    csv.write_bytes(export(content, "es", "csv"))
    ws = load_workbook(xlsx).active
    cell = next(ws.cell(r, 4) for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == "text:more.hint")
    assert cell.data_type == "s" and cell.value == "=SUM(A1:A9) MAS"
    raw = csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads it as UTF-8
    assert "'=SUM(A1:A9) MAS" in raw.decode("utf-8-sig")
    for f in (xlsx, csv):
        imported = apply_sheet(content, read_sheet(f))
        assert imported.changes == [] and imported.content == content


# --- the commands -------------------------------------------------------------------------------------


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path, "a")
    yield app
    close_app(app)


def export_file(app, tmp_path, locale="es", fmt="xlsx") -> Path:
    path = tmp_path / f"{locale}.{fmt}"
    result = cli(app, "export", locale, "--format", fmt, "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


def set_cell(path: Path, key: str, column: str, value, nth: int = 0) -> int:
    wb = load_workbook(path)
    ws = wb.active
    rows = [r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == key]
    ws.cell(rows[nth], COLUMNS.index(column) + 1).value = value
    wb.save(path)
    return rows[nth]


def test_export_edit_import_publish(app, tmp_path):
    path = export_file(app, tmp_path)
    result = cli(app, "import", str(path))
    assert result.exit_code == 0 and "nothing changed" in result.output
    row = set_cell(path, "text:help", "translation",
                   "AYUDA NUEVA: escriba FIEBRE o MENU. Emergencia: {emergency}. Equipo: {care_team}.")
    result = cli(app, "import", str(path), "--by", "Rosa")
    assert result.exit_code == 0, result.output
    assert f"row {row}: text:help: changed" in result.output
    assert "draft revision #2: 1 entry changed in es" in result.output
    assert re.search(r"#2\s+draft .* import\s+by Rosa", cli(app, "history").output)
    assert not reply(app, "ayuda").startswith("AYUDA NUEVA")  # a draft is not live
    result = cli(app, "publish", "--draft", "2", "--by", "Rosa", "--note", "new help")
    assert result.exit_code == 0, result.output
    app.extensions["catalog_watcher"].ensure_started()
    wait_until(lambda: reply(app, "ayuda").startswith("AYUDA NUEVA"))
    # the next export starts from the live revision
    (tmp_path / "again").mkdir()
    again = export_file(app, tmp_path / "again")
    assert "AYUDA NUEVA" in " ".join(str(c.value) for row in load_workbook(again).active.iter_rows() for c in row)


def test_review_column_clears_needs_work(app, tmp_path):
    path = export_file(app, tmp_path)
    row = set_cell(path, "text:start", "review", "reviewed")
    result = cli(app, "import", str(path), "--by", "Dr. Ruiz")
    assert result.exit_code == 0, result.output
    assert f"row {row}: text:start: reviewed" in result.output


def test_a_review_column_saying_reviewed_needs_the_reviewers_name(app, tmp_path):
    """A review is recorded under a name: never "spreadsheet import" (finding 6)."""
    path = export_file(app, tmp_path)
    first = set_cell(path, "text:start", "review", "reviewed")
    second = set_cell(path, "text:stop", "review", "reviewed")
    result = cli(app, "import", str(path))
    assert result.exit_code == 1, result.output
    assert f"the review column marks 2 entries reviewed (rows {min(first, second)}, {max(first, second)}): say who " \
           "reviewed with --by NAME" in result.output
    assert "draft" not in cli(app, "history").output
    from assistant.models import CatalogReview

    with app.extensions["sessionmaker"]() as session:
        assert session.query(CatalogReview).count() == 0
    set_cell(path, "text:start", "review", "needs work")
    set_cell(path, "text:stop", "review", "needs work")
    set_cell(path, "text:more.none", "translation", "Eso es todo por ahora.")
    result = cli(app, "import", str(path))  # an edit without a review needs no name
    assert result.exit_code == 0, result.output


def test_import_with_an_error_is_refused_with_its_row(app, tmp_path):
    path = export_file(app, tmp_path)
    row = set_cell(path, "text:fallback", "translation", "Perdón, no entendí. Llame a su equipo: {equipo}.")
    result = cli(app, "import", str(path))
    assert result.exit_code == 1
    assert f"error: [es] es.xlsx row {row} (text:fallback): placeholders ['equipo']" in result.output
    assert "refused" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("breakage", "message"), [
    ("formula", r"es.xlsx row \d+, translation: a formula \(=1\+1\) is not allowed"),
    ("unknown key", r"row \d+: unknown key 'text:nonsense'"),
    ("wrong locale", r"this spreadsheet is for 'es', not 'fr'"),
    ("xlsx that is text", r"es.xlsx is not an Excel workbook"),
    ("other spreadsheet", r"es.csv is not a spreadsheet exported by `assistant catalog export`"),
    ("not utf-8", r"es.csv is not UTF-8"),
    ("other extension", r"es.txt: give a .xlsx or .csv file"),
    ("English changed", r"the English changed since this file was exported"),
])
def test_wrong_files_are_clear_errors(app, tmp_path, breakage, message):
    path = export_file(app, tmp_path)
    args = []
    if breakage == "formula":
        set_cell(path, "text:help", "translation", "=1+1")
    elif breakage == "unknown key":
        set_cell(path, "text:help", "key", "text:nonsense")
    elif breakage == "wrong locale":
        args = ["--locale", "fr"]
    elif breakage == "xlsx that is text":
        path.write_text("key,translation\n", "utf-8")
    elif breakage == "other spreadsheet":
        path = tmp_path / "es.csv"
        path.write_text("name,phone\nAna,555\n", "utf-8")
    elif breakage == "not utf-8":
        path = export_file(app, tmp_path, fmt="csv")
        path.write_bytes(path.read_bytes().decode("utf-8-sig").replace("LLAME", "LLAMÉ").encode("latin-1",
                                                                                                "replace"))
    elif breakage == "other extension":
        path = path.rename(tmp_path / "es.txt")
    elif breakage == "English changed":
        set_cell(path, "text:help", "translation", "Otra ayuda: {emergency} {care_team}")
        set_cell(path, "text:help", "English hash", "0123456789ab")
    result = cli(app, "import", str(path), *args)
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


def test_export_of_an_unknown_language_is_a_clear_error(app, tmp_path):
    result = cli(app, "export", "de", "-o", str(tmp_path / "de.xlsx"))
    assert result.exit_code == 1 and "no language 'de' to export" in result.output


def test_a_broken_language_file_is_not_exported(app, tmp_path):
    set_msgstr(po(tmp_path / "repo"), "text:help", 'msgstr "x')
    result = cli(app, "export", "es", "-o", str(tmp_path / "es.xlsx"))
    assert result.exit_code == 1 and "does not read" in result.output
    assert read_tree(tmp_path / "repo")  # still there, untouched


# --- a file that lost its letters is refused (finding 1) -----------------------------------------------


@pytest.fixture
def app_ko(database_url, tmp_path):
    from .test_catalogcheck import small_tree

    small_tree(tmp_path / "repo", ("en", "es", "ko", "vi"))
    app = make_app(database_url, tmp_path, "a")
    yield app
    close_app(app)


def excel_plain_csv(path: Path, text_rows_only: bool = False) -> None:
    """What Excel's "CSV (Comma delimited)" does to a language its code page lacks: every such letter is "?"."""
    lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
    if text_rows_only:
        lines = [lines[0], *(x for x in lines[1:] if x.startswith("text:"))]
    path.write_bytes("\r\n".join(lines).encode("ascii", "replace"))


@pytest.mark.parametrize("text_rows_only", [False, True])
def test_a_csv_whose_letters_became_question_marks_is_refused_in_one_message(app_ko, tmp_path, text_rows_only):
    path = export_file(app_ko, tmp_path, "ko", "csv")
    excel_plain_csv(path, text_rows_only)
    result = cli(app_ko, "import", str(path), "--by", "Min")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert re.match(r"Error: ko\.csv lost its letters: \d+ of the \d+ changed ko translations have '\?' \(or no "
                    r"letters of the language\) where the text had letters, e\.g\. row \d+ \(text:escalation"
                    r"\.emergency\): '\?\?", lines[0]), result.output
    assert "save as 'CSV UTF-8 (Comma delimited)'" in lines[0]
    assert "draft" not in cli(app_ko, "history").output


def test_a_vietnamese_edit_with_lost_letters_is_refused_and_a_real_question_is_not(app_ko, tmp_path):
    path = export_file(app_ko, tmp_path, "vi")
    set_cell(path, "text:more.none", "translation", "H?t r?i. Nh?n MENU d? xem ch? d?.")
    result = cli(app_ko, "import", str(path), "--by", "Lan")
    assert result.exit_code == 1 and "vi.xlsx lost its letters: 1 of the 1 changed vi translations" in result.output
    path = export_file(app_ko, tmp_path, "es")
    row = set_cell(path, "text:more.none", "translation", "¿Eso es todo? Escriba MENU para ver los temas.")
    result = cli(app_ko, "import", str(path), "--by", "Rosa")
    assert result.exit_code == 0, result.output
    assert f"row {row}: text:more.none: changed" in result.output


def test_a_po_upload_whose_letters_were_lost_is_refused(app_ko, tmp_path):
    from assistant.publishing import Refused, import_po

    data = (tmp_path / "repo/locales/ko/LC_MESSAGES/messages.po").read_bytes()
    damaged = data.decode("utf-8").encode("ascii", "replace")
    with app_ko.app_context(), app_ko.extensions["sessionmaker"]() as session, pytest.raises(Refused) as refused:
        import_po(session, app_ko, damaged, "ko", by="Min")
    assert refused.value.message.startswith("this ko .po file lost its letters: ")
    assert "save it as UTF-8" in refused.value.message


# --- broken or hostile workbooks are clear errors, never a 500 or a memory blow-up (finding 10) -----------


def rewrite_part(path: Path, part: str, change) -> None:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    parts[part] = change(parts[part])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for filename, data in parts.items():
            zf.writestr(filename, data)


@pytest.mark.parametrize(("breakage", "message"), [
    ("malformed sheet", r"es\.xlsx is damaged \(ParseError\): open it in Excel and save it again, or export again"),
    ("malformed row", r"es\.xlsx is damaged \(ParseError\): open it in Excel and save it again, or export again"),
    ("entity", r"es\.xlsx: xl/worksheets/sheet1\.xml declares XML entities \(a DOCTYPE\), which Excel never writes"),
    ("zip bomb", r"es\.xlsx unpacks to more than 20 MB: it is not a spreadsheet from `assistant catalog export`"),
])
def test_a_broken_or_hostile_workbook_is_a_clear_error(app, tmp_path, breakage, message):
    path = export_file(app, tmp_path)
    if breakage == "malformed sheet":
        rewrite_part(path, "xl/worksheets/sheet1.xml", lambda x: x[:len(x) // 2])
    elif breakage == "malformed row":  # the sheet opens; a row far down does not read
        rewrite_part(path, "xl/worksheets/sheet1.xml", lambda x: x.replace(b"</row>", b"</rw>", 50)
                     .replace(b"</rw>", b"</row>", 49))
    elif breakage == "entity":
        doctype = b'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        rewrite_part(path, "xl/worksheets/sheet1.xml", lambda x: doctype + x[x.index(b"<worksheet"):]
                     .replace(b"<t>text:help</t>", b"<t>&b;</t>"))
    else:
        rewrite_part(path, "xl/worksheets/sheet1.xml", lambda x: x.replace(b"</worksheet>", b" " * 60_000_000
                                                                                + b"</worksheet>"))
        assert path.stat().st_size < 1_000_000
    result = cli(app, "import", str(path), "--by", "Rosa")
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


# --- a file of one language is not imported as another (finding 5) ---------------------------------------


def set_locale_column(path: Path, locale: str) -> None:
    if path.suffix == ".xlsx":
        wb = load_workbook(path)
        ws = wb.active
        for r in range(2, ws.max_row + 1):
            ws.cell(r, COLUMNS.index("locale") + 1).value = locale
        wb.save(path)
    else:
        text = path.read_bytes().decode("utf-8-sig")
        path.write_bytes(("\ufeff" + text.replace(",es,", f",{locale},")).encode("utf-8"))


@pytest.mark.parametrize(("fmt", "says"), [
    ("xlsx", "the sheet is named 'es' and the file is 'es.xlsx'"),
    ("csv", "the file is 'es.csv'"),
])
def test_a_locale_column_changed_to_another_language_is_refused(app, tmp_path, fmt, says):
    path = export_file(app, tmp_path, "es", fmt)
    set_locale_column(path, "fr")
    result = cli(app, "import", str(path), "--by", "Rosa")
    assert result.exit_code == 1, result.output
    assert f"{path.name}: the locale column says 'fr', but {says}: nothing was imported" in result.output
    assert "draft" not in cli(app, "history").output


def test_a_file_whose_text_reads_as_another_language_is_imported_with_a_warning(app, tmp_path):
    path = export_file(app, tmp_path, "es", "csv")
    set_locale_column(path, "fr")
    path = path.rename(tmp_path / "traducciones.csv")  # nothing in the name or the sheet says which language
    result = cli(app, "import", str(path), "--by", "Rosa")
    assert result.exit_code == 0, result.output
    assert "warning: [fr] traducciones.csv: the changed translations read as Spanish (Español), not French " \
           "(Français): check that the file and its locale column are the same language" in result.output


# --- the export's format is its file's (finding 9) ----------------------------------------------------------


def test_export_takes_the_format_from_the_file_name_or_refuses(app, tmp_path):
    result = cli(app, "export", "es", "-o", str(tmp_path / "mine.csv"))
    assert result.exit_code == 0, result.output
    assert "(es, csv, from revision #1)" in result.output
    assert (tmp_path / "mine.csv").read_bytes().startswith(b"\xef\xbb\xbfkey,context,English")
    result = cli(app, "export", "es", "--format", "xlsx", "-o", str(tmp_path / "other.csv"))
    assert result.exit_code == 1
    assert "--format xlsx would write XLSX into other.csv: name the file .xlsx, or leave --format out" in result.output
    result = cli(app, "export", "es", "-o", str(tmp_path / "mine.txt"))
    assert result.exit_code == 1 and "mine.txt: name the file .xlsx or .csv" in result.output
    assert not (tmp_path / "other.csv").exists() and not (tmp_path / "mine.txt").exists()


def test_catalog_commands_print_no_info_log_lines(tmp_path):
    """A command's output is its own words; the log's INFO lines are for servers (finding 9)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    env.pop("LOG_LEVEL", None)
    assistant = [str(Path(sys.executable).parent / "assistant")]

    def run(*args):
        return subprocess.run([*assistant, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    assert run("db", "upgrade").returncode == 0
    assert run("catalog", "export", "es", "-o", str(tmp_path / "es.xlsx")).returncode == 0  # revision #1
    done = run("catalog", "history")
    assert done.returncode == 0 and "#1    LIVE" in done.stdout
    assert '"level": "info"' not in done.stderr, done.stderr
