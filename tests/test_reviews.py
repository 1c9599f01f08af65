"""Review records: `assistant catalog review LOCALE KEY --by NAME` and the import's review column mark a
translation reviewed, for its exact wording; a later change of the translation or of its English makes it
unreviewed again; `assistant catalog unreviewed` follows."""

from __future__ import annotations

import re

import pytest

from assistant import create_app
from assistant.models import CatalogReview
from assistant.pofile import parse_po

from .conftest import ACCOUNT_SID, AUTH_TOKEN, CARE_TEAM, PUBLIC_URL, close_app
from .test_catalogcheck import po, set_msgstr, small_tree
from .test_publishing import cli, make_app, reply, wait_until
from .test_spreadsheets import export_file, set_cell


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path, "a")
    app.extensions["catalog_watcher"].ensure_started()
    yield app
    close_app(app)


def unreviewed(app, locale="es") -> set[str]:
    result = cli(app, "unreviewed", "--locale", locale)
    return {line.split("\t")[1] for line in result.output.splitlines() if "\t" in line}


def live_entry(app, key, locale="es"):
    with app.extensions["sessionmaker"]() as session:
        from assistant.revisions import live, unpack

        content = unpack(live(session).content)
    return parse_po(content[f"locales/{locale}/LC_MESSAGES/messages.po"]).by_context()[key]


def test_review_marks_the_exact_wording_reviewed(app):
    assert "text:help" in unreviewed(app)
    result = cli(app, "review", "es", "text:help", "text:fallback", "--by", "Dr. Ruiz")
    assert result.exit_code == 0, result.output
    assert "revision #2: 2 entries of es reviewed by Dr. Ruiz" in result.output
    wait_until(lambda: app.extensions["catalog_watcher"].revision == 2)
    left = unreviewed(app)
    assert "text:help" not in left and "text:fallback" not in left and "text:stop" in left
    assert not live_entry(app, "text:help").fuzzy
    with app.extensions["sessionmaker"]() as session:
        rows = session.query(CatalogReview).filter_by(locale="es").all()
    assert {(r.key, r.reviewed_by) for r in rows} == {("text:help", "Dr. Ruiz"), ("text:fallback", "Dr. Ruiz")}
    assert re.search(r"#2\s+LIVE .* review\s+by Dr. Ruiz: reviewed es: text:help, text:fallback",
                     cli(app, "history").output)


def test_a_changed_translation_is_unreviewed_again(app, tmp_path):
    assert cli(app, "review", "es", "text:help", "--by", "Dr. Ruiz").exit_code == 0
    tree = tmp_path / "content"
    assert cli(app, "pull", str(tree)).exit_code == 0
    # someone edits the reviewed text in Poedit and leaves it without "Needs work"
    set_msgstr(po(tree), "text:help", 'msgstr "Escriba FIEBRE o MENU. Emergencias: {emergency}. Equipo: {care_team}."')
    assert not parse_po(po(tree).read_bytes()).by_context()["text:help"].fuzzy
    result = cli(app, "publish", str(tree), "--note", "edit", "--by", "Ana")
    assert result.exit_code == 0, result.output
    assert "changed without a review, marked 'Needs work' again: es text:help" in result.output
    assert live_entry(app, "text:help").fuzzy
    wait_until(lambda: app.extensions["catalog_watcher"].revision == 3)
    assert "text:help" in unreviewed(app)


def test_a_changed_english_source_makes_the_translation_unreviewed_again(app, tmp_path):
    assert cli(app, "review", "es", "text:more.none", "--by", "Dr. Ruiz").exit_code == 0
    tree = tmp_path / "content"
    assert cli(app, "pull", str(tree)).exit_code == 0
    system = tree / "messages" / "system.toml"
    system.write_text(system.read_text("utf-8").replace('"That is all. Text MENU for topics."',
                                                        '"That is all for now. Text MENU for topics."'), "utf-8")
    path = po(tree)
    path.write_text(path.read_text("utf-8").replace('msgid "That is all. Text MENU for topics."',
                                                    'msgid "That is all for now. Text MENU for topics."'), "utf-8")
    result = cli(app, "publish", str(tree), "--note", "English wording", "--by", "Ana")
    assert result.exit_code == 0, result.output
    assert "es text:more.none" in result.output
    assert live_entry(app, "text:more.none").fuzzy


def test_with_serve_unreviewed_off_a_reviewed_text_is_served_in_its_language(database_url, tmp_path):
    small_tree(tmp_path / "repo")  # the repository copy the app serves
    strict = create_app({**strict_config(database_url, tmp_path), "SERVE_UNREVIEWED": "false"})
    strict.extensions["catalog_watcher"].ensure_started()
    assert reply(strict, "ayuda").startswith("Text a word like FEVER")  # unreviewed: English
    assert cli(strict, "review", "es", "text:help", "--by", "Dr. Ruiz").exit_code == 0
    wait_until(lambda: strict.extensions["catalog_watcher"].revision == 2)
    assert reply(strict, "ayuda").startswith(live_entry(strict, "text:help").msgstr[:20])
    assert reply(strict, "fiebre", sender="+16175550777").startswith("CALL YOUR CARE TEAM NOW")  # not reviewed
    close_app(strict)


def strict_config(database_url, tmp_path) -> dict:
    repo = tmp_path / "repo"
    return {"TESTING": True, "DATABASE_URL": database_url, "SPOOL_PATH": str(tmp_path / "spool-strict.db"),
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "PUBLIC_BASE_URL": PUBLIC_URL,
            "CARE_TEAM_PHONE": CARE_TEAM, "CATALOG_POLL_SECONDS": 0.2,
            "MESSAGES_DIR": str(repo / "messages"), "LOCALES_DIR": str(repo / "locales")}


def test_the_import_review_column_records_the_reviewer(app, tmp_path):
    path = export_file(app, tmp_path)
    set_cell(path, "text:start", "review", "reviewed")
    result = cli(app, "import", str(path), "--by", "Dr. Ruiz")
    assert result.exit_code == 0, result.output
    draft = int(re.search(r"draft revision #(\d+)", result.output).group(1))
    assert cli(app, "publish", "--draft", str(draft), "--by", "Ana", "--note", "reviews").exit_code == 0
    assert not live_entry(app, "text:start").fuzzy
    with app.extensions["sessionmaker"]() as session:
        assert session.query(CatalogReview).filter_by(locale="es", key="text:start").one().reviewed_by == "Dr. Ruiz"


def test_review_of_an_unknown_entry_is_a_clear_error(app):
    result = cli(app, "review", "es", "text:nonsense", "--by", "Dr. Ruiz")
    assert result.exit_code == 1 and "es text:nonsense: no translation to review" in result.output
    assert "Traceback" not in result.output


# --- an entry whose English changed can be brought up to date (finding 7) --------------------------------

OLD_THANKS = "You're welcome. Text MENU for topics or HELP. If your child is unwell, call the care team: {care_team}."
NEW_THANKS = "You are welcome. Text MENU for topics or HELP. If your child is unwell, call the care team: {care_team}."


def english_changed_repo(tmp_path, *, previous: bool) -> None:
    """The repository's English "thanks" is new; the Spanish translates the old one, as reviewed: either with its
    old msgid (the English edited without `make catalogs`) or, as `make catalogs` leaves it, with the new msgid,
    the old English as "#| msgid" and "Needs work"."""
    repo = small_tree(tmp_path / "repo")
    system = repo / "messages" / "system.toml"
    system.write_text(system.read_text("utf-8").replace(OLD_THANKS, NEW_THANKS), "utf-8")
    path = po(repo)
    text = path.read_text("utf-8")
    if previous:
        text = text.replace(f'msgctxt "text:thanks"\nmsgid "{OLD_THANKS}"',
                            f'#| msgid "{OLD_THANKS}"\nmsgctxt "text:thanks"\nmsgid "{NEW_THANKS}"')
    else:
        text = text.replace('#, fuzzy, python-brace-format\nmsgctxt "text:thanks"',
                            '#, python-brace-format\nmsgctxt "text:thanks"')
    path.write_text(text, "utf-8")


@pytest.fixture
def stale_app(database_url, tmp_path):
    english_changed_repo(tmp_path, previous=False)
    app = make_app(database_url, tmp_path, "a")
    app.extensions["catalog_watcher"].ensure_started()
    yield app
    close_app(app)


def test_review_of_an_entry_whose_english_changed_brings_it_up_to_date(stale_app, tmp_path):
    app = stale_app
    assert "text:thanks" in unreviewed(app)
    path = export_file(app, tmp_path)
    from openpyxl import load_workbook

    ws = load_workbook(path).active
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == "text:thanks")
    assert row[4] == "needs work (English changed)"
    result = cli(app, "review", "es", "text:thanks", "--by", "Dr. Ruiz")
    assert result.exit_code == 0, result.output
    assert "es text:thanks: its English changed since it was translated; reviewed against the English of now: " \
           f"{NEW_THANKS[:80]!r}" in result.output
    assert "revision #2: 1 entry of es reviewed by Dr. Ruiz" in result.output
    entry = live_entry(app, "text:thanks")
    assert (entry.msgid, entry.fuzzy, entry.previous_msgid) == (NEW_THANKS, False, None)
    wait_until(lambda: app.extensions["catalog_watcher"].revision == 2)
    assert "text:thanks" not in unreviewed(app)
    result = cli(app, "review", "es", "text:thanks", "--by", "Dr. Ruiz")
    assert "1 entry already reviewed" in result.output


@pytest.mark.parametrize("previous", [False, True])
def test_a_new_translation_imported_reviewed_for_a_changed_english_is_current_and_reviewed(database_url, tmp_path,
                                                                                           previous):
    english_changed_repo(tmp_path, previous=previous)
    app = make_app(database_url, tmp_path, "a")
    try:
        path = export_file(app, tmp_path)
        set_cell(path, "text:thanks", "translation", "Con gusto. Escriba MENU para ver los temas o AYUDA. Si su hijo "
                                                     "se siente mal, llame a su equipo médico: {care_team}.")
        set_cell(path, "text:thanks", "review", "reviewed")
        result = cli(app, "import", str(path), "--by", "Dr. Ruiz")
        assert result.exit_code == 0, result.output
        draft = int(re.search(r"draft revision #(\d+)", result.output).group(1))
        result = cli(app, "publish", "--draft", str(draft), "--by", "Ana", "--note", "thanks")
        assert result.exit_code == 0, result.output
        assert "marked 'Needs work' again" not in result.output
        pulled = tmp_path / "pulled"
        assert cli(app, "pull", str(pulled)).exit_code == 0
        entry = parse_po(po(pulled).read_bytes()).by_context()["text:thanks"]
        assert (entry.msgid, entry.fuzzy, entry.previous_msgid) == (NEW_THANKS, False, None)
        assert entry.msgstr.startswith("Con gusto.")
        assert "#| msgid" not in po(pulled).read_text("utf-8").split('msgctxt "text:thanks"')[0][-400:]
    finally:
        close_app(app)


def test_status_and_check_without_a_folder_read_the_live_revision(app):
    """After a published review, `status` counts it and says which revision it read (finding 8)."""
    def es_row():
        result = cli(app, "status")
        assert result.exit_code == 0, result.output
        return next(line.split()[1:] for line in result.output.splitlines() if line.startswith("es ")), result.output

    before, output = es_row()
    assert "the repository's files (no revision published yet): 0 error(s)" in output
    assert cli(app, "review", "es", "text:help", "text:fallback", "--by", "Dr. Ruiz").exit_code == 0
    after, output = es_row()
    assert int(after[1]) == int(before[1]) + 2 and int(after[2]) == int(before[2]) - 2  # reviewed, unreviewed
    assert "live revision #2 (give a folder to check that folder instead): 0 error(s)" in output
    result = cli(app, "check")
    assert result.exit_code == 0, result.output
    assert "3 languages in live revision #2 (give a folder to check that folder instead): 0 error(s)" in result.output
