"""`assistant ask`, as the eval scorer and a coordinator use it."""

import json

from .conftest import CARE_TEAM


def test_ask_prints_the_reply(runner):
    result = runner.invoke(args=["ask", "FEVER"])
    assert result.exit_code == 0
    assert result.output.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")


def test_ask_json(runner):
    result = runner.invoke(args=["ask", "--json", "what", "is", "a", "cancer", "vaccine"])
    data = json.loads(result.output)
    assert data["topic"] == "vaccine" and data["level"] == "info" and data["locale"] == "en"
    assert data["encoding"] == "GSM-7" and 1 <= data["segments"] <= 3


def test_ask_lang(runner):
    data = json.loads(runner.invoke(args=["ask", "--json", "--lang", "es", "MAB"]).output)
    assert data["locale"] == "es" and data["topic"] == "mab"


def test_ask_jsonl_keeps_each_senders_state(runner):
    lines = [
        {"text": "LANG", "from": "+15550001"},
        {"text": "MENU", "from": "+15550002"},
        {"text": "2", "from": "+15550001"},  # picks Español from the language menu
        {"text": "2", "from": "+15550002"},  # picks topic 2 from the topic menu
        {"text": "MAB", "from": "+15550001"},
        {"text": "2"},  # no sender: no state, not a menu choice
        "not json",
        {"text": "fiebre", "lang": "en"},
    ]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    result = runner.invoke(args=["ask", "--jsonl"], input=stdin)
    out = [json.loads(x) for x in result.output.splitlines()]
    assert len(out) == len(lines)
    assert out[0]["topic"] == "language"
    assert (out[2]["topic"], out[2]["locale"]) == ("language", "es")
    assert out[3]["topic"] == "immune_system"
    assert (out[4]["topic"], out[4]["locale"]) == ("mab", "es")
    assert out[5]["topic"] is None
    assert "error" in out[6]
    assert (out[7]["level"], out[7]["locale"]) == ("call_now", "es")
    for row in out[:6]:
        assert set(row) >= {"topic", "level", "locale", "reply", "segments", "encoding"}


def test_catalog_carry_keeps_the_translation_of_a_changed_english_list(tmp_path):
    from babel.messages.catalog import Catalog as BabelCatalog
    from babel.messages.catalog import Message
    from babel.messages.pofile import read_po, write_po

    from assistant import create_app

    po = BabelCatalog(locale="es")
    po.add("no, not, never, still", "", context="cue:negation")  # the English grew; not translated yet
    po.obsolete["no, not"] = Message("no, not", "no, nunca", context="cue:negation")
    folder = tmp_path / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.po").open("wb") as fh:
        write_po(fh, po)
    app = create_app({"TESTING": True, "LOCALES_DIR": str(tmp_path)})
    result = app.test_cli_runner().invoke(args=["catalog", "carry"])
    assert result.exit_code == 0, result.output
    with (folder / "messages.po").open("rb") as fh:
        after = read_po(fh)
    entry = after.get("no, not, never, still", context="cue:negation")
    assert entry.string == "no, nunca" and entry.fuzzy  # needs review
    assert '#| msgid "no, not"' in (folder / "messages.po").read_text(encoding="utf-8")  # the old English, for Poedit
    assert not after.obsolete


def test_help_lists_the_assistants_own_commands_first():
    from click.testing import CliRunner

    from assistant.cli import main

    out = CliRunner().invoke(main, ["--help"]).output
    commands = out.split("Commands:")[1].split()
    assert commands.index("ask") < commands.index("run") and commands.index("worker") < commands.index("routes")


def test_chat_wraps_replies_at_word_boundaries(runner, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    out = runner.invoke(args=["chat"], input="fiebre\n").output
    lines = [x for x in out.splitlines() if x.startswith(("you> phone> ", "       ")) and "[" not in x]
    assert len(lines) > 3 and all(len(x) <= 49 for x in lines)
    words = " ".join(x.replace("you> phone> ", "").strip() for x in lines).split()
    assert "LLAME" in words and "medicina" in words  # no word cut in two


def test_run_says_where_to_open_the_simulator(monkeypatch):
    """The server's own banner is a JSON log line; a plain one comes first, with the real address."""
    import flask.cli
    from click.testing import CliRunner

    from assistant.cli import main

    served = []
    monkeypatch.setattr(flask.cli.run_command, "callback", lambda **kw: served.append(kw))
    port = _free_port()
    result = CliRunner().invoke(main, ["run", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert f"open http://127.0.0.1:{port}/ for the phone simulator" in result.output
    assert served and served[0]["port"] == port


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_on_a_taken_port_says_how_to_choose_another_and_no_banner(monkeypatch):
    import socket

    import flask.cli
    from click.testing import CliRunner

    from assistant.cli import main

    served = []
    monkeypatch.setattr(flask.cli.run_command, "callback", lambda **kw: served.append(kw))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["run", "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 1 and not served
    assert "PORT=5077 make run" in result.output and "for the phone simulator" not in result.output


def test_chat_wraps_chinese_by_the_columns_it_takes_and_never_inside_a_number():
    from assistant.cli import _columns, wrap

    text = "如果发烧超过38.5度，请立即打电话给护理团队：+1 617-555-0142。不要等待。这是一个很长的句子用来测试换行。"
    lines = wrap(text, 24, first="phone> ", rest=" " * 7).splitlines()
    assert len(lines) > 3 and all(_columns(line) <= 24 for line in lines)
    assert any("+1 617-555-0142" in line for line in lines) and any("38.5" in line for line in lines)
    assert "".join(line[7:] for line in lines) == text


def test_help_lists_the_assistants_own_commands_and_options():
    from click.testing import CliRunner

    from assistant.cli import main

    output = CliRunner().invoke(main, ["--help"]).output
    commands = output.split("Commands:")[1].split()
    assert commands.index("ask") < commands.index("run") and "--app" not in output
    assert "Caregiver Assistant" in CliRunner().invoke(main, ["--version"]).output
