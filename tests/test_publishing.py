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

from .conftest import ACCOUNT_SID, AUTH_TOKEN, CARE_TEAM, PUBLIC_URL, text_sms
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
        app.extensions["catalog_watcher"].stop()
        app.extensions["recorder"].close()
        app.extensions["engine"].dispose()
        app.extensions["read_engine"].dispose()


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
        app.extensions["recorder"].close()
        app.extensions["engine"].dispose()
        app.extensions["read_engine"].dispose()


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
    app.extensions["recorder"].close()
    app.extensions["engine"].dispose()
    app.extensions["read_engine"].dispose()
