"""Publishing: revisions in the database, history, show, rollback, pull, and every running app instance
answering from the live revision within seconds, never from a broken one."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from assistant import create_app
from assistant.catalogcheck import read_tree
from assistant.models import CatalogRevision
from assistant.revisions import digest, pack

from .conftest import ACCOUNT_SID, AUTH_TOKEN, CARE_TEAM, PUBLIC_URL, close_app, text_sms
from .test_catalogcheck import msgstr_of, po, set_msgstr, small_tree

NEW_HELP = "NUEVA AYUDA: escriba FIEBRE o MENU. Emergencia: {emergency}. Equipo médico: {care_team}."


def make_app(url: str, tmp_path: Path, name: str):
    """An app whose repository files are a three-language copy (tests/test_catalogcheck.small_tree): every
    check then takes a second or two."""
    repo = tmp_path / "repo"
    if not repo.exists():
        small_tree(repo)
    return create_app({
        "MESSAGES_DIR": str(repo / "messages"), "LOCALES_DIR": str(repo / "locales"),
        "TESTING": True, "DATABASE_URL": url, "SPOOL_PATH": str(tmp_path / f"spool-{name}.db"),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "PUBLIC_BASE_URL": PUBLIC_URL,
        "CARE_TEAM_PHONE": CARE_TEAM, "CATALOG_POLL_SECONDS": 0.2,
    })


@pytest.fixture
def two_apps(database_url, tmp_path):
    """Two app instances (as two web workers) sharing one database, their watchers running."""
    apps = [make_app(database_url, tmp_path, name) for name in ("a", "b")]
    for app in apps:
        app.extensions["catalog_watcher"].ensure_started()
    yield apps
    for app in apps:
        close_app(app)


def reply(app, body: str, sender: str = "+16175550123") -> str:
    """The text a caregiver's phone gets for ``body``."""
    response = text_sms(app.test_client(), body, sender=sender)
    assert response.status_code == 200
    m = re.search(r"<Message>(.*?)</Message>", response.get_data(as_text=True), re.S)
    return m.group(1) if m else ""


def wait_until(check, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("not within the time")


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["catalog", *args])


@pytest.fixture
def edited(tmp_path) -> Path:
    """A content folder whose Spanish help text is new."""
    tree = small_tree(tmp_path / "content")
    set_msgstr(po(tree), "text:help", f'msgstr "{NEW_HELP}"')
    return tree


def test_publish_and_rollback_are_seen_by_both_running_instances(two_apps, edited, tmp_path):
    a, b = two_apps
    old_help = msgstr_of(po(tmp_path / "repo"), "text:help")
    assert reply(a, "ayuda").startswith(old_help[:20])

    result = cli(a, "publish", str(edited), "--note", "new help wording", "--by", "Ana")
    assert result.exit_code == 0, result.output
    assert "published revision #2: es: 1 changed" in result.output
    for app in (a, b):  # both answer with the new text within a few seconds, without a restart
        wait_until(lambda app=app: reply(app, "ayuda").startswith("NUEVA AYUDA"))
    assert "Equipo médico: " + CARE_TEAM in reply(b, "ayuda")

    history = cli(b, "history").output
    assert re.search(r"#2\s+LIVE .* publish\s+by Ana: new help wording", history)
    assert re.search(r"#1\s+.* repository\s+by repository", history)
    shown = cli(b, "show", "2").output
    assert "es       changed  text:help" in shown

    result = cli(b, "rollback", "1", "--by", "Ana", "--note", "back to the repository wording")
    assert result.exit_code == 0, result.output
    assert "revision #3 (the content of #1) is live" in result.output
    for app in (a, b):
        wait_until(lambda app=app: reply(app, "ayuda").startswith(old_help[:20]))
    assert re.search(r"#3\s+LIVE .* rollback\s+by Ana", cli(a, "history").output)

    pulled = tmp_path / "pulled"
    result = cli(a, "pull", str(pulled))
    assert result.exit_code == 0, result.output
    assert read_tree(pulled) == read_tree(tmp_path / "repo")


def test_a_revision_with_errors_is_refused_and_the_live_one_keeps_answering(two_apps, edited):
    a, b = two_apps
    assert cli(a, "publish", str(edited), "--note", "ok", "--by", "Ana").exit_code == 0
    wait_until(lambda: reply(b, "ayuda").startswith("NUEVA AYUDA"))

    set_msgstr(po(edited), "text:escalation.call_now", 'msgstr "LLAME YA: {care_team}')  # unterminated
    result = cli(a, "publish", str(edited), "--note", "broken", "--by", "Ana")
    assert result.exit_code == 1
    assert "error: [es] locales/es/LC_MESSAGES/messages.po:" in result.output
    assert "refused: fix the errors above; the live catalog keeps serving" in result.output
    assert "#3" not in cli(a, "history").output
    time.sleep(0.5)
    assert reply(b, "ayuda").startswith("NUEVA AYUDA")
    assert reply(b, "tiene fiebre", sender="+16175550999").startswith("LLAME YA A SU EQUIPO MÉDICO")


def test_a_broken_revision_in_the_database_leaves_every_worker_on_its_catalog(two_apps, edited, caplog):
    """However a broken revision got into the database, no worker serves it: each keeps its catalog and logs."""
    a, b = two_apps
    assert cli(a, "publish", str(edited), "--note", "ok", "--by", "Ana").exit_code == 0
    for app in (a, b):
        wait_until(lambda app=app: app.extensions["catalog_watcher"].revision == 2)
    content = read_tree(edited)
    content["locales/es/LC_MESSAGES/messages.po"] += b'\nmsgctxt "x"\nmsgid "y"\nmsgstr "unterminated\n'
    with a.app_context(), a.extensions["sessionmaker"]() as session:
        session.add(CatalogRevision(parent_id=2, created_by="someone", note="by hand", kind="publish", draft=False,
                                    digest=digest(content), content=pack(content), changes="{}"))
        session.commit()
    with caplog.at_level(logging.ERROR, logger="assistant.revisions"):
        wait_until(lambda: sum("catalog revision #3 cannot be loaded" in r.getMessage()
                               for r in caplog.records) >= 2)
    for app in (a, b):
        assert app.extensions["catalog_watcher"].revision == 2
        assert reply(app, "ayuda").startswith("NUEVA AYUDA")
        assert reply(app, "fiebre", sender="+16175550998").startswith("LLAME YA A SU EQUIPO MÉDICO")


def test_a_restarted_instance_serves_the_live_revision_from_its_first_text(database_url, tmp_path, edited):
    first = make_app(database_url, tmp_path, "first")
    assert cli(first, "publish", str(edited), "--note", "ok", "--by", "Ana").exit_code == 0
    again = make_app(database_url, tmp_path, "again")
    assert reply(again, "ayuda").startswith("NUEVA AYUDA")
    for app in (first, again):
        close_app(app)


def test_publish_refuses_nothing_new_and_needs_a_name(database_url, tmp_path):
    app = make_app(database_url, tmp_path, "a")
    result = cli(app, "publish", str(tmp_path / "repo"), "--note", "same", "--by", "Ana")
    assert result.exit_code == 1
    assert "nothing to publish: this is the live revision #1 already" in result.output
    result = cli(app, "publish", str(tmp_path / "repo"), "--note", "x", "--by", " ")
    assert result.exit_code == 1 and "--by NAME" in result.output
    result = cli(app, "publish", str(tmp_path), "--note", "x", "--by", "Ana")
    assert result.exit_code == 1 and "has no messages/ folder" in result.output
    assert "there is no revision #9" in cli(app, "show", "9").output
    assert cli(app, "rollback", "9", "--by", "Ana").exit_code == 1
    close_app(app)


# --- a draft or an old file never undoes a colleague's work (finding 3) -----------------------------------


def _import(app, path, *args) -> int:
    result = cli(app, "import", str(path), "--by", "Rosa", *args)
    assert result.exit_code == 0, result.output
    return int(re.search(r"draft revision #(\d+)", result.output).group(1))


def _edited_export(app, tmp_path, name, key, text, locale="es") -> Path:
    from .test_spreadsheets import export_file, set_cell

    folder = tmp_path / name
    folder.mkdir()
    path = export_file(app, folder, locale)
    set_cell(path, key, "translation", text)
    return path


def _live_msgstr(app, key, locale="es") -> str:
    from assistant.pofile import parse_po
    from assistant.revisions import live, unpack

    with app.extensions["sessionmaker"]() as session:
        content = unpack(live(session).content)
    return parse_po(content[f"locales/{locale}/LC_MESSAGES/messages.po"]).by_context()[key].msgstr


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path, "a")
    app.extensions["catalog_watcher"].ensure_started()
    yield app
    close_app(app)


def test_an_older_draft_is_applied_onto_the_live_revision_keeping_a_colleagues_change(app, tmp_path):
    spanish = _import(app, _edited_export(app, tmp_path, "rosa", "text:more.none", "Eso es todo por ahora."))
    french = _import(app, _edited_export(app, tmp_path, "luc", "text:more.none", "C'est tout pour le moment.",
                                         "fr"))
    assert re.search(rf"#{french}\s+draft .* \(based on #1\)", cli(app, "history").output)
    result = cli(app, "publish", "--draft", str(french), "--by", "Luc", "--note", "fr")
    assert result.exit_code == 0, result.output
    assert "fr: 1 changed" in result.output

    result = cli(app, "publish", "--draft", str(spanish), "--by", "Rosa", "--note", "es")
    assert result.exit_code == 0, result.output
    assert f"draft #{spanish} was made from revision #1; only its own changes were applied onto the live " \
           f"revision #{french + 1}" in result.output
    assert re.search(r"published revision #\d+: es: 1 changed$", result.output, re.M), result.output
    assert _live_msgstr(app, "text:more.none", "fr") == "C'est tout pour le moment."  # the colleague's work kept
    assert _live_msgstr(app, "text:more.none") == "Eso es todo por ahora."


def test_a_draft_changing_what_a_colleague_changed_since_is_refused_naming_the_entry(app, tmp_path):
    first = _import(app, _edited_export(app, tmp_path, "rosa", "text:more.none", "Eso es todo por ahora."))
    second = _import(app, _edited_export(app, tmp_path, "ana", "text:more.none", "Nada más. Escriba MENU."))
    assert cli(app, "publish", "--draft", str(second), "--by", "Ana", "--note", "x").exit_code == 0
    live_before = _live_msgstr(app, "text:more.none")

    result = cli(app, "publish", "--draft", str(first), "--by", "Rosa", "--note", "y")
    assert result.exit_code == 1
    assert f"refused: draft #{first} was made from revision #1; since then the live catalog (now #{second + 1}) " \
           "changed the same entry differently: es text:more.none" in result.output
    assert "conflict: [es] text:more.none: this change has 'Eso es todo por ahora.', the live catalog now has " \
           "'Nada más. Escriba MENU.'" in result.output
    assert "Traceback" not in result.output
    assert _live_msgstr(app, "text:more.none") == live_before
    assert f"#{second + 2}" not in cli(app, "history").output


def test_a_draft_from_the_page_keeps_a_keyword_published_since(app, tmp_path):
    """The web page's case: two drafts on one live revision; a keyword draft published first stays."""
    from assistant.publishing import add_keyword

    text_draft = _import(app, _edited_export(app, tmp_path, "rosa", "text:more.none", "Eso es todo por ahora."))
    with app.app_context(), app.extensions["sessionmaker"]() as session:
        keyword = add_keyword(session, app, "es", "mab", "anticuerpito", by="ana@example.org").id
    assert cli(app, "publish", "--draft", str(keyword), "--by", "Ana", "--note", "kw").exit_code == 0
    result = cli(app, "publish", "--draft", str(text_draft), "--by", "Rosa", "--note", "text")
    assert result.exit_code == 0, result.output
    assert "es: 1 changed" in result.output
    assert "anticuerpito" in _live_msgstr(app, "topic:mab:keywords")
    app.extensions["catalog_watcher"].ensure_started()
    wait_until(lambda: "anticuerpito" in " ".join(
        app.extensions["assistant"].store.current.lists["es"]["topic:mab:keywords"]))


def test_an_unedited_row_of_an_old_export_does_not_undo_a_colleagues_edit(app, tmp_path):
    from .test_spreadsheets import export_file, set_cell

    (tmp_path / "old").mkdir()
    old = export_file(app, tmp_path / "old")  # exported from #1
    colleague = _import(app, _edited_export(app, tmp_path, "ana", "text:more.hint", "Escriba MAS para leer más."))
    assert cli(app, "publish", "--draft", str(colleague), "--by", "Ana", "--note", "x").exit_code == 0
    row = set_cell(old, "text:more.none", "translation", "Eso es todo por ahora.")
    result = cli(app, "import", str(old), "--by", "Rosa")
    assert result.exit_code == 0, result.output
    assert f"row {row}: text:more.none: changed" in result.output
    assert "text:more.hint" not in result.output
    draft = int(re.search(r"draft revision #(\d+): 1 entry changed in es", result.output).group(1))
    assert cli(app, "publish", "--draft", str(draft), "--by", "Rosa", "--note", "y").exit_code == 0
    assert _live_msgstr(app, "text:more.hint") == "Escriba MAS para leer más."
    assert _live_msgstr(app, "text:more.none") == "Eso es todo por ahora."


def test_an_old_export_editing_an_entry_changed_since_is_refused_with_its_row(app, tmp_path):
    from .test_spreadsheets import export_file, set_cell

    (tmp_path / "old").mkdir()
    old = export_file(app, tmp_path / "old")
    colleague = _import(app, _edited_export(app, tmp_path, "ana", "text:more.hint", "Escriba MAS para leer más."))
    assert cli(app, "publish", "--draft", str(colleague), "--by", "Ana", "--note", "x").exit_code == 0
    row = set_cell(old, "text:more.hint", "translation", "Escriba MÁS.")
    result = cli(app, "import", str(old), "--by", "Rosa")
    assert result.exit_code == 1
    assert f"es.xlsx row {row}: conflict: [es] text:more.hint: this change has 'Escriba MÁS.', the live catalog " \
           "now has 'Escriba MAS para leer más.'" in result.output
    assert "refused: es.xlsx was made from revision #1" in result.output


def test_a_pulled_folder_published_late_keeps_a_colleagues_change(app, tmp_path):
    folder = tmp_path / "mine"
    colleague = _import(app, _edited_export(app, tmp_path, "ana", "text:more.hint", "Escriba MAS para leer más."))
    assert cli(app, "publish", "--draft", str(colleague), "--by", "Ana", "--note", "x").exit_code == 0
    assert cli(app, "pull", str(folder)).exit_code == 0
    other = _import(app, _edited_export(app, tmp_path, "luc", "text:more.none", "C'est tout.", "fr"))
    assert cli(app, "publish", "--draft", str(other), "--by", "Luc", "--note", "x").exit_code == 0
    set_msgstr(po(folder), "text:help", f'msgstr "{NEW_HELP}"')
    result = cli(app, "publish", str(folder), "--note", "help", "--by", "Rosa")
    assert result.exit_code == 0, result.output
    assert "only its own changes were applied onto the live revision" in result.output
    assert re.search(r"^published revision #\d+: es: 1 changed$", result.output, re.M), result.output
    assert _live_msgstr(app, "text:more.none", "fr") == "C'est tout."


def test_rollback_to_a_draft_is_refused(app, tmp_path):
    draft = _import(app, _edited_export(app, tmp_path, "rosa", "text:more.none", "Eso es todo por ahora."))
    result = cli(app, "rollback", str(draft), "--by", "Ana")
    assert result.exit_code == 1
    assert f"revision #{draft} is a draft: it was never live" in result.output
    assert f"assistant catalog publish --draft {draft}" in result.output


def test_a_live_revision_from_before_a_code_update_still_serves_the_new_texts(database_url, tmp_path, caplog):
    """The code (and the repository's files) send "text:thanks"; the live revision, published before, has none:
    the text comes from the repository's files, in the caregiver's language, and the log says so."""
    from .test_catalogcheck import _drop_text

    first = make_app(database_url, tmp_path, "first")
    old = read_tree(tmp_path / "repo")
    older = tmp_path / "older"
    small_tree(older)
    _drop_text(older, "thanks")
    content = read_tree(older)
    with first.app_context(), first.extensions["sessionmaker"]() as session:
        session.add(CatalogRevision(parent_id=None, created_by="Ana", note="before the update", kind="publish",
                                    draft=False, digest=digest(content), content=pack(content), changes="{}"))
        session.commit()
    with caplog.at_level(logging.WARNING, logger="assistant.revisions"):
        again = make_app(database_url, tmp_path, "again")  # the new code's first look at the live revision
    assert again.extensions["catalog_watcher"].revision == 1
    assert "catalog revision #1 lacks texts this version of the code sends (text:thanks)" in caplog.text
    thanks = re.search(r'msgctxt "text:thanks"\nmsgid ".*"\nmsgstr "(.*)"',
                       old["locales/es/LC_MESSAGES/messages.po"].decode()).group(1)
    assert reply(again, "gracias") == thanks.replace("{care_team}", CARE_TEAM)
    for app in (first, again):
        close_app(app)


def test_a_conflict_with_a_new_english_text_says_so(app, tmp_path):
    """An old export's edit of an entry whose English was changed since: the conflict names the new English."""
    from .test_spreadsheets import export_file, set_cell

    (tmp_path / "old").mkdir()
    old = export_file(app, tmp_path / "old")
    tree = tmp_path / "pulled"
    assert cli(app, "pull", str(tree)).exit_code == 0
    new_english = "That is all for now. Text MENU for topics."
    system = tree / "messages" / "system.toml"
    system.write_text(system.read_text("utf-8").replace('"That is all. Text MENU for topics."', f'"{new_english}"'),
                      "utf-8")
    path = po(tree)
    path.write_text(path.read_text("utf-8").replace('msgid "That is all. Text MENU for topics."',
                                                    f'msgid "{new_english}"'), "utf-8")
    assert cli(app, "publish", str(tree), "--note", "English", "--by", "Ana").exit_code == 0
    row = set_cell(old, "text:more.none", "translation", "Eso es todo por ahora.")
    result = cli(app, "import", str(old), "--by", "Rosa")
    assert result.exit_code == 1
    assert f"es.xlsx row {row}: conflict: [es] text:more.none: this change has 'Eso es todo por ahora.', the live " \
           f"catalog now has a new English text ({new_english[:40]})" in result.output
