"""`assistant catalog check` and `status`: every way a coordinator can break a catalog is caught, with the
language, the file and the line, errors first, and a non-zero exit status."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from assistant.catalogcheck import check_content, read_tree
from assistant.pofile import parse_po

from .conftest import ROOT

SMALL = ("en", "es", "fr")  # a three-language tree keeps each check to a second or two


def small_tree(dest: Path, languages=SMALL) -> Path:
    """A copy of messages/ and locales/ with only ``languages`` (the checks run per language the same way)."""
    shutil.copytree(ROOT / "messages", dest / "messages")
    for loc in languages:
        shutil.copytree(ROOT / "locales" / loc, dest / "locales" / loc)
    system = dest / "messages" / "system.toml"
    text = re.sub(r"^languages = \[.*\]$", "languages = [" + ", ".join(f'"{x}"' for x in languages) + "]",
                  system.read_text("utf-8"), count=1, flags=re.M)
    system.write_text(text, "utf-8")
    return dest


@pytest.fixture
def tree(tmp_path) -> Path:
    return small_tree(tmp_path / "content")


def po(tree: Path, locale: str = "es") -> Path:
    return tree / "locales" / locale / "LC_MESSAGES" / "messages.po"


def set_msgstr(path: Path, context: str, raw: str) -> int:
    """Replace the msgstr line(s) of ``context`` with ``raw`` (written as is); returns the msgctxt's line."""
    lines = path.read_text("utf-8").split("\n")
    start = lines.index(f'msgctxt "{context}"')
    i = next(j for j in range(start, len(lines)) if lines[j].startswith("msgstr"))
    end = i + 1
    while end < len(lines) and lines[end].startswith('"'):
        end += 1
    lines[i:end] = [raw]
    path.write_text("\n".join(lines), "utf-8")
    return start + 1


def msgstr_of(path: Path, context: str) -> str:
    return parse_po(path.read_bytes()).by_context()[context].msgstr


def run_check(runner, tree: Path):
    return runner.invoke(args=["catalog", "check", str(tree)])


def test_shipped_catalog_passes_the_checks(runner):
    result = runner.invoke(args=["catalog", "check"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_unterminated_string_is_an_error_with_file_and_line(runner, tree):
    line = set_msgstr(po(tree), "text:help", 'msgstr "Escriba una palabra como FIEBRE')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{line + 2}: the string has no closing quote" \
        in result.output


@pytest.mark.parametrize(("raw", "message"), [
    (r'msgstr "Llame al {care_team}\q"', r"bad escape \q"),
    # escapes gettext knows but Babel, which the service reads with, leaves as typed (finding 2)
    ("msgstr \"Perdón, no entend\\'í. Llame a su equipo: {care_team}.\"",
     r"bad escape \': the service would send the backslash as typed; write the apostrophe itself"),
    (r'msgstr "¿Perdón\? Llame a su equipo: {care_team}."', r"bad escape \?"),
    (r'msgstr "Perd\363n. Llame a su equipo: {care_team}."', r"bad escape \3"),
    (r'msgstr "Perd\x110000n. Llame a su equipo: {care_team}."', r"bad escape \x"),
    ('msgstr "Llame" al "{care_team}"', "unexpected text after the closing quote"),
    ("msgstr Llame al {care_team}", "a string must start with a double quote"),
])
def test_badly_written_strings_are_errors(runner, tree, raw, message):
    line = set_msgstr(po(tree), "text:fallback", raw)
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"[es] locales/es/LC_MESSAGES/messages.po:{line + 2}: {message}" in result.output


def test_duplicate_entry_is_an_error(runner, tree):
    path = po(tree)
    text = path.read_text("utf-8")
    first = text.split("\n").index('msgctxt "text:help"') + 1
    block = re.search(r'msgctxt "text:help"\n(?:.+\n)+', text).group(0)
    path.write_text(text + "\n" + block, "utf-8")
    second = len(text.split("\n")) + 1
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"messages.po:{second}: duplicate entry 'text:help' (first at line {first})" in result.output


def test_wrong_header_charset_is_an_error(runner, tree):
    path = po(tree, "fr")
    path.write_text(path.read_text("utf-8").replace("charset=utf-8", "charset=ISO-8859-1"), "utf-8")
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert re.search(r"error: \[fr\] locales/fr/LC_MESSAGES/messages.po:\d+: the header says charset=ISO-8859-1",
                     result.output)


def test_file_not_in_utf8_is_an_error_with_its_line(runner, tree):
    path = po(tree)
    data = path.read_bytes()
    line = data[:data.index("MÉDICO".encode())].count(b"\n") + 1
    path.write_bytes(data.replace("MÉDICO".encode(), "MÉDICO".encode("latin-1"), 1))
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"[es] locales/es/LC_MESSAGES/messages.po:{line}: the file is not UTF-8" in result.output


@pytest.mark.parametrize("context", ["text:escalation.call_now", "text:help", "text:fallback", "text:stop",
                                     "text:start", "text:triage.low_temperature", "voice:escalation.emergency",
                                     "voice:no_answer"])
def test_empty_safety_text_is_an_error(runner, tree, context):
    line = set_msgstr(po(tree), context, 'msgstr ""')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert re.search(rf"^error: \[es\] locales/es/LC_MESSAGES/messages.po:{line} \({re.escape(context)}\): "
                     r"safety text missing", result.output, re.M), result.output


def test_missing_language_file_is_an_error(runner, tree):
    po(tree, "fr").unlink()
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert "error: [fr] locales/fr/LC_MESSAGES/messages.po: catalog file is missing" in result.output


def test_placeholder_differing_from_the_source_is_an_error(runner, tree):
    line = set_msgstr(po(tree), "text:fallback", 'msgstr "Perdón, no entendí. Llame a su equipo: {equipo}."')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{line} (text:fallback): placeholders ['equipo'] " \
           "must be exactly ['care_team']" in result.output


def test_a_digit_in_the_emergency_template_is_an_error(runner, tree):
    path = po(tree)
    good = msgstr_of(path, "text:escalation.emergency")
    line = set_msgstr(path, "text:escalation.emergency", 'msgstr "' + good.replace("AHORA", "AHORA (o 112)") + '"')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{line} (text:escalation.emergency): digits changed " \
           "in a care-team/emergency text: 112 where the English has none" in result.output


def test_reply_over_the_segment_budget_is_an_error_with_count_and_encoding(runner, tree):
    long = "LLAME YA A SU EQUIPO MÉDICO: {care_team}. " + "No espere, llame ahora mismo 🙏. " * 4
    line = set_msgstr(po(tree), "text:escalation.call_now", f'msgstr "{long}"')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert re.search(rf"error: \[es\] locales/es/LC_MESSAGES/messages.po:{line} \(text:escalation.call_now\): "
                     r"3 SMS segments \(UCS-2, \d+ units\); keep it to 2", result.output), result.output


def test_a_carrier_word_as_keyword_is_an_error(runner, tree):
    path = po(tree)
    line = set_msgstr(path, "topic:side_effects:keywords",
                      'msgstr "' + msgstr_of(path, "topic:side_effects:keywords") + ', cancel"')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{line} (topic:side_effects:keywords): 'cancel' is a " \
           "carrier word" in result.output


def test_a_word_list_that_stops_a_symptom_from_escalating_is_an_error(runner, tree):
    path = po(tree)
    set_msgstr(path, "cue:not_symptom", 'msgstr "' + msgstr_of(path, "cue:not_symptom") + ', fiebre"')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    cue_line = path.read_text("utf-8").split("\n").index('msgctxt "cue:not_symptom"') + 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{cue_line} (cue:not_symptom): 'fiebre' " \
           "(call_now symptom, topic fever) no longer escalates when texted: it is read as cue:not_symptom" \
           in result.output
    assert "Remove what matches it from cue:not_symptom" in result.output


def test_warnings_do_not_block_and_come_after_errors(runner, tree):
    path = po(tree)
    text = path.read_text("utf-8").replace('msgctxt "topic:mab:title"',
                                           '#| msgid "Old English title"\nmsgctxt "topic:mab:title"')
    path.write_text(text, "utf-8")
    stale = text.split("\n").index('msgctxt "topic:mab:title"') + 1
    missing = set_msgstr(path, "topic:vaccine:summary", 'msgstr ""')
    keywords = msgstr_of(path, "topic:fever:keywords").split(", ")
    dup = set_msgstr(path, "topic:chills:keywords",
                     'msgstr "' + msgstr_of(path, "topic:chills:keywords") + ", " + keywords[0] + '"')
    result = run_check(runner, tree)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"warning: [es] locales/es/LC_MESSAGES/messages.po:{missing} (topic:vaccine:summary): not translated" in out
    assert f"warning: [es] locales/es/LC_MESSAGES/messages.po:{dup} (topic:chills:keywords): '{keywords[0]}' is " \
           "also a keyword of fever: the two topics cannot be told apart" in out
    assert f"warning: [es] locales/es/LC_MESSAGES/messages.po:{stale} (topic:mab:title): stale" in out
    assert re.search(r"warning: \[es\] locales/es/LC_MESSAGES/messages.po:\d+: \d+ entries unreviewed", out)
    # with an error as well, the error is printed first
    set_msgstr(path, "text:help", 'msgstr "x')
    lines = run_check(runner, tree).output.splitlines()
    assert lines[0].startswith("error: ") and any(x.startswith("warning: ") for x in lines)
    assert runner.invoke(args=["catalog", "check", "--strict", str(tree)]).exit_code == 1


def test_broken_english_source_is_a_clear_error(runner, tree):
    (tree / "messages" / "topics.toml").write_text("[[topic]\nid = ", "utf-8")
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert "messages/" in result.output and "Traceback" not in result.output


def test_status_table_counts_per_language(runner, tree, source):
    n = len(source.entries)  # every entry a language translates: texts and word lists
    path = po(tree)
    set_msgstr(path, "topic:vaccine:summary", 'msgstr ""')
    text = path.read_text("utf-8")
    # one entry reviewed: its "Needs work" mark cleared
    i = text.index('msgctxt "topic:mab:title"')
    head, tail = text[:i], text[i:]
    head = head[::-1].replace("#, fuzzy"[::-1], "#,"[::-1], 1)[::-1]
    path.write_text(head + tail, "utf-8")
    result = runner.invoke(args=["catalog", "status", str(tree)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:4]}
    assert rows["en"] == [str(n), str(n), "0", "0", "0", "0"]
    assert rows["es"] == [str(n - 1), "1", str(n - 2), "0", "1", "0"]
    assert rows["fr"] == [str(n), "0", str(n), "0", "0", "0"]


def test_check_content_reads_the_same_as_the_service(tree):
    report = check_content(read_tree(tree))
    assert report.errors == []
    assert report.catalog.languages == SMALL



# --- every text the code sends is required (finding 4) ---------------------------------------------------


def _drop_text(tree: Path, key: str) -> None:
    system = tree / "messages" / "system.toml"
    text = system.read_text("utf-8")
    kept = [line for line in text.split("\n") if not line.startswith(f'"{key}" = ')]
    assert len(kept) == len(text.split("\n")) - 1
    system.write_text("\n".join(kept), "utf-8")


@pytest.mark.parametrize("key", ["escalation.emergency", "thanks", "more.hint"])
def test_a_text_the_service_sends_deleted_from_the_english_is_an_error(runner, tree, key):
    _drop_text(tree, key)
    result = run_check(runner, tree)
    assert result.exit_code == 1, result.output
    assert f'error: [en] messages/system.toml (text:{key}): "{key}" is missing from [texts]: the service sends ' \
           "this text" in result.output
    assert "Traceback" not in result.output


def test_a_voice_prompt_deleted_is_an_error(runner, tree):
    voice = tree / "messages" / "voice.toml"
    voice.write_text("\n".join(line for line in voice.read_text("utf-8").split("\n")
                               if not line.startswith('"welcome" = ')), "utf-8")
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert 'error: [en] messages/voice.toml (voice:welcome): "welcome" is missing from [texts]' in result.output


def test_the_list_of_texts_the_code_sends_is_complete():
    """Every "text:..." and "voice:..." the code names is in CODE_TEXTS (a new one must be added there), except
    the voice versions of texts that are used only when present."""
    from assistant.catalogcheck import CODE_TEXTS

    named = set()
    for path in (ROOT / "assistant").glob("*.py"):
        if path.name in ("catalogcheck.py", "source.py", "extract.py"):
            continue
        named |= set(re.findall(r'"((?:text|voice):[a-z_.]+[a-z_])"', path.read_text("utf-8")))
    named |= {f"text:{level}" for level in ("escalation.emergency", "escalation.call_now")}  # f"text:escalation.{..}"
    assert named - set(CODE_TEXTS) == set()


# --- one mistake, one clear line (finding 9) ---------------------------------------------------------------


def test_a_placeholder_typo_in_a_safety_text_is_one_error(runner, tree):
    path = po(tree)
    good = msgstr_of(path, "text:escalation.emergency")
    set_msgstr(path, "text:escalation.emergency", 'msgstr "' + good.replace("{care_team}", "{care_tem}") + '"')
    result = run_check(runner, tree)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert "(text:escalation.emergency): placeholders ['care_tem', 'emergency'] must be exactly ['care_team', " \
           "'emergency']" in errors[0]


def test_a_symptom_swallowed_by_a_word_list_points_at_that_list(runner, tree):
    path = po(tree)
    set_msgstr(path, "cue:not_symptom", 'msgstr "' + msgstr_of(path, "cue:not_symptom") + ', dolor de pecho"')
    cue_line = path.read_text("utf-8").split("\n").index('msgctxt "cue:not_symptom"') + 1
    result = run_check(runner, tree)
    assert result.exit_code == 1
    assert f"error: [es] locales/es/LC_MESSAGES/messages.po:{cue_line} (cue:not_symptom): 'dolor de pecho' " \
           "(emergency symptom, rule chest_pain) no longer escalates when texted: it is read as cue:not_symptom, " \
           "cue:language_hints. Remove what matches it from cue:not_symptom" in result.output
    assert "language_hints language_hints" not in result.output
