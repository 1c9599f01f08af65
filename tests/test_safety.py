"""Safety across the 12 languages, on the shipped catalog: each kind of failure the safety review found,
tried in every language it can happen in, with texts written apart from the catalog's own phrases where
possible (tests/data/parents/, tests/data/regressions/)."""

from __future__ import annotations

import re

import pytest

from assistant.conversation import State
from assistant.direction import for_locale
from assistant.evaluation import evaluate, read_cases, table
from assistant.normalize import tokens
from assistant.segments import NUMBER, measure

from .conftest import CARE_TEAM, LOCALES, ROOT

DATA = ROOT / "tests" / "data"
DEV = ROOT.parent / "shared" / "eval" / "dev.jsonl"
RANK = {"none": 0, "info": 1, "call_now": 2, "emergency": 3}


def talk(assistant, *texts, state=None):
    out = []
    for text in texts:
        reply = assistant.reply(text, state or State())
        state = reply.state
        out.append(reply)
    return out


def literal(phrase: str) -> str:
    """A catalog phrase as a parent could text it: "bleed* ... won't stop" -> "bleed won't stop"."""
    return " ".join(w.strip("*") for w in phrase.split() if w not in ("...", "…") and w.strip("*"))


# --- every phrase of every language, texted alone, reaches its rule's level ----------------------------------
@pytest.mark.parametrize("locale", LOCALES)
def test_every_symptom_phrase_escalates_in_its_language(assistant, shipped_catalog, locale):
    misses = []
    for rule in shipped_catalog.source.rules:
        if rule.level == "none":
            continue  # words that count only when negated
        for phrase in shipped_catalog.lists.get(locale, {}).get(f"rule:{rule.id}:phrases", ()):
            text = literal(phrase)
            reply = assistant.reply(text, State(locale=locale))
            if RANK[reply.level] < RANK[rule.level]:
                misses.append(f"{rule.id}: {text!r} -> {reply.level}")
    assert not misses, f"{locale}: {len(misses)} phrase(s) below their level: {misses[:10]}"


@pytest.mark.parametrize("locale", LOCALES)
def test_breathing_effort_is_covered_in_every_language(shipped_catalog, locale):
    phrases = shipped_catalog.lists.get(locale, {}).get("rule:breathing_effort:phrases", ())
    assert len(phrases) >= 5, f"{locale}: breathing effort has {len(phrases)} phrase(s)"


def test_catalog_coverage_lists_every_rule_per_language(runner):
    result = runner.invoke(args=["catalog", "coverage"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split() == list(LOCALES)
    assert any(r.startswith("breathing_effort (emergency)") for r in rows)
    assert re.search(r"\d+ gap\(s\)", rows[-1])


# --- negation belongs to its own language; "still" and "won't go down" are not negations -----------------
@pytest.mark.parametrize("text", [
    "le di tylenol", "le di advil", "ya le di tempra", "le di paracetamol a mi hijo", "le di el tylenol a las 3",
    "binigyan ko pa ng tylenol", "binigyan ko pa ng paracetamol",  # Haitian "pa" inside Tagalog
    "nó sốt cao",  # Vietnamese "nó" (he) is not Spanish "no"
    "he doesn't stop vomiting", "his fever won't go down", "the fever has gone up",
    "no baja la fiebre", "não baixa a febre", "не проходит температура", "ما زال عنده حمى",
    "hindi bumababa ang lagnat",
])
def test_a_foreign_or_persisting_negation_does_not_hide_a_symptom(assistant, text):
    reply = assistant.reply(text)
    assert reply.finding.escalates, f"{text!r} -> {reply.level} {reply.text}"


@pytest.mark.parametrize("text", [
    "no fever", "sin fiebre", "pas de fièvre", "hindi nilalagnat", "không sốt", "열은 없어요", "температуры нет",
    "the fever went away", "his fever broke last night",
])
def test_a_negation_in_its_own_language_still_denies(assistant, text):
    reply = assistant.reply(text)
    assert not reply.finding.escalates, f"{text!r} -> {reply.level} {reply.text}"


def test_a_symptom_said_over_denies_only_itself(assistant):
    reply = assistant.reply("the fever went away but now she is vomiting")
    assert reply.level == "call_now" and "fever" in reply.finding.negated


def test_breathing_stopped_is_the_emergency_itself(assistant):
    assert assistant.reply("his breathing stopped").level == "emergency"


# --- words that belong together are found across the words people leave between them ------------------------
@pytest.mark.parametrize("text", [
    "bleeding from his line won't stop", "her nose is bleeding and it just won't stop",
    "his lips look kind of blue", "her ribs are pulling in with every breath",
    "you can see the skin between his ribs suck in", "his nostrils are flaring", "she keeps grunting",
])
def test_emergencies_with_words_in_between(assistant, text):
    assert assistant.reply(text).level == "emergency", text


@pytest.mark.parametrize("text", [
    "his nose has been bleeding for 20 minutes, we pressed with ice and it will not stop",
    "son nez saigne depuis tout à l'heure et ça veut pas s'arrêter",
    "le sangra la nariz desde hace rato y no para",
    "他流鼻血 已经按了好久了还是一直流 止不住",
])
def test_bleeding_said_to_go_on_is_an_emergency_however_far_apart(assistant, text):
    assert assistant.reply(text).level == "emergency", text


def test_a_goes_on_word_belongs_to_the_nearest_symptom(assistant):
    assert assistant.reply("nosebleed this morning, he is still tired").level == "call_now"


# --- typos never come from everyday words -------------------------------------------------------------------
@pytest.mark.parametrize("text", ["sinabi ng doktor na okay", "mahadsanid walaal", "kuya salamat po",
                                  "im cooking dinner"])
def test_everyday_words_are_not_read_as_misspelled_symptoms(assistant, text):
    assert not assistant.reply(text).finding.escalates, text


@pytest.mark.parametrize(("text", "topic"), [("fevr", "fever"), ("he has a fevr", "fever"), ("hedache", "headache"),
                                            ("vacsine", "vaccine"), ("he been runnin a temp", "fever")])
def test_real_typos_are_still_forgiven(assistant, text, topic):
    assert assistant.reply(text).topic == topic


# --- opt-out: only unambiguous words; a localized one is confirmed in its language ---------------------------
EVERYDAY = ["basta", "wag na", "tama na", "thôi", "그만", "хватит", "كفى", "chega", "fin", "停", "结束", "kite",
            "ka bax", "alto", "para", "arrête", "enough", "never mind", "that's all"]


@pytest.mark.parametrize("word", EVERYDAY)
def test_everyday_words_never_opt_a_parent_out(assistant, word):
    first, symptom = talk(assistant, word, "can't breathe")
    assert not first.state.opted_out, word
    assert symptom.level == "emergency" and symptom.text and "911" in symptom.text


@pytest.mark.parametrize("locale", [loc for loc in LOCALES if loc != "en"])
def test_a_localized_opt_out_is_confirmed_once_in_its_language(assistant, shipped_catalog, locale):
    carrier = {" ".join(tokens(w)) for w in shipped_catalog.source.commands["stop"]}
    words = [w for w in shipped_catalog.lists[locale].get("command:stop", ())
             if " ".join(tokens(w)) not in carrier]
    assert words, f"{locale} has no opt-out word of its own"
    for word in words:
        # A word two languages share ("parar": es, pt) is confirmed in the sender's known language.
        stop, again, symptom = talk(assistant, word, word, "fever", state=State(locale=locale))
        assert stop.state.opted_out and stop.topic == "stop", word
        assert stop.text == for_locale(shipped_catalog.text(locale, "text:stop").format(care_team=CARE_TEAM,
                                                                                          emergency="911"), locale)
        assert CARE_TEAM in stop.text and "911" in stop.text and "START" in stop.text
        assert again.text is None  # one confirmation, not one per word
        assert symptom.text is None and symptom.level == "call_now"  # nothing sent; the channel alerts staff


def test_carrier_words_are_confirmed_by_the_carrier_not_by_us(assistant):
    for word in ("STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT"):
        reply = assistant.reply(word)
        assert reply.text is None and reply.state.opted_out, word


def test_start_and_stop_answer_in_the_senders_language(assistant):
    spanish = State(locale="es", locale_explicit=True)
    start = assistant.reply("START", State(locale="es", opted_out=True))
    assert start.locale == "es" and not start.state.opted_out
    assert assistant.reply("HELP", spanish).locale == "es"


# --- the safety advice reaches the phone in the first message ------------------------------------------------
def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?؟])\s+|(?<=[。！？])", text) if s.strip()]


@pytest.mark.parametrize("locale", LOCALES)
def test_fever_safety_advice_is_in_the_first_message(assistant, shipped_catalog, locale):
    reply = assistant.reply("fever", State(locale=locale, locale_explicit=True))
    assert reply.level == "call_now" and reply.locale == locale
    assert measure(reply.text).segments <= 3
    summary = shipped_catalog.text(locale, "topic:fever:summary").format(
        care_team=CARE_TEAM, emergency="911", fever_c="0", fever_f="0")
    for sentence in sentences(summary)[:2]:
        assert sentence in reply.text, f"{locale}: {sentence!r} not in the first message: {reply.text!r}"
    assert CARE_TEAM in reply.text


@pytest.mark.parametrize("locale", LOCALES)
def test_below_threshold_and_low_readings_are_whole_and_distinct(assistant, shipped_catalog, locale):
    state = State(locale=locale, locale_explicit=True)
    normal, low = assistant.reply("37,2", state), assistant.reply("35,2", state)
    assert normal.level == "info" and low.level == "call_now"
    for reply in (normal, low):  # a cut for MORE never falls inside a number
        whole = set(NUMBER.findall(f"{reply.text} {reply.state.more}"))
        assert set(NUMBER.findall(reply.text)) <= whole | {"3"}, reply.text
    low_text = shipped_catalog.text(locale, "text:triage.low_temperature").split("{")[0].strip()
    fever = shipped_catalog.text(locale, "topic:fever:summary")
    assert CARE_TEAM in low.text and (not low_text or low_text in low.text or "35" in low.text)
    assert sentences(fever)[0] not in low.text, f"{locale}: the fever text answers a low temperature"


# --- the labelled sets ----------------------------------------------------------------------------------------
SETS = {
    "parents": sorted((DATA / "parents").glob("*.jsonl")),
    "regressions": sorted((DATA / "regressions").glob("*.jsonl")),
    "dev": [DEV] if DEV.exists() else [],
}


# Texts still answered wrongly, on purpose or for want of a way to tell them apart, with why. They are left
# out of the figures below, and a test checks that each still misses (a fixed one must be taken off).
KNOWN_MISSES = {
    "ho": "Vietnamese 'ho' (cough) alone is also Tagalog 'ho' (politeness) and English 'ho'; a cough escalates "
          "with any other word ('bị ho', 'còn ho', 'ho nhiều').",
}


@pytest.mark.parametrize("name", [n for n, files in SETS.items() if files])
def test_labelled_sets_meet_the_targets(assistant, name):
    overall, by_language = evaluate(assistant, [c for c in read_cases(SETS[name]) if c["text"] not in KNOWN_MISSES])
    figures = overall.figures
    report = table(overall, by_language) + "\n" + "\n".join(
        f"MISS {c['text']!r}: want {c.get('level')}/{c.get('topic')}/{c.get('locale')}, got {g}"
        for c, g in overall.misses[:40])
    assert figures["escalation_recall"] == 1.0 and figures["emergency_recall"] == 1.0, report
    assert not overall.below_target, report


def test_the_parent_texts_are_apart_from_the_development_set():
    if not DEV.exists():
        pytest.skip("../shared is not beside the project")
    dev = {c["text"].casefold() for c in read_cases([DEV])}
    ours = {c["text"].casefold() for c in read_cases(SETS["parents"])}
    assert not dev & ours
    assert all(len(read_cases([f])) >= 40 for f in SETS["parents"])
    assert {f.stem for f in SETS["parents"]} == set(LOCALES)


def test_known_misses_still_miss(assistant):
    cases = [c for files in SETS.values() for c in read_cases(files) if c["text"] in KNOWN_MISSES]
    assert {c["text"] for c in cases} == set(KNOWN_MISSES)
    overall, _ = evaluate(assistant, cases)
    assert len(overall.misses) == len(cases), "a known miss is fixed: take it off KNOWN_MISSES"


# --- mechanisms behind the kinds ------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "level"), [
    ("anh ơi mai mấy giờ mở cửa", "none"),  # "ơi mai" is not "ói mãi" (vomiting all the time)
    ("bé ói mãi", "call_now"), ("be oi mai", "call_now"),  # with its tones, or with none
    ("bé sôt cao", "call_now"),  # a tone left out still matches
    ("nôn", "call_now"), ("non merci", "none"), ("oi tia, tudo bem?", "none"), ("sot", "call_now"),
])
def test_vietnamese_words_match_the_tones_written(assistant, text, level):
    assert assistant.reply(text).level == level, text


@pytest.mark.parametrize(("text", "level"), [
    ("it's so hot outside today", "none"), ("우리 아이는 열 살이에요", "none"), ("blood test tomorrow at 9", "none"),
    ("he is hot and the weather is hot", "call_now"),  # the child still is
])
def test_everyday_phrases_with_a_symptom_word_are_not_symptoms(assistant, text, level):
    assert (assistant.reply(text).level in ("none", "info")) == (level == "none"), text


def test_arabic_and_joined_to_a_word(assistant):
    assert assistant.reply("مناخيره بتنزف من ساعة ومش راضية توقف").level == "emergency"



@pytest.mark.parametrize(("text", "value"), [
    ("temp 37 point 9", 37.9), ("发烧38度5", 38.5), ("температура 38 и 2", 38.2), ("tiene 38 y medio", 38.5),
    ("38도5", 38.5), ("bé sốt 38 độ rưỡi", 38.5), ("il a 37 virgule 8", 37.8), ("temp 101 point 2", 101.2),
])
def test_temperatures_typed_out(assistant, text, value):
    reply = assistant.reply(text)
    assert reply.finding.reading is not None and reply.finding.reading.value == value, text
    assert reply.finding.escalates == (reply.finding.reading.celsius >= 38.0)


@pytest.mark.parametrize(("text", "value"), [
    ("tiene treinta y ocho y medio de temperatura", 38.5), ("temperatura treinta y ocho punto cinco", 38.5),
    ("发烧三十八度五", 38.5), ("his temp is one hundred and one", 101), ("температура тридцать восемь и пять", 38.5),
    ("nhiệt độ ba mươi tám độ rưỡi", 38.5), ("체온이 삼십팔도", 38), ("febre de trinta e nove", 39),
])
def test_temperatures_in_words(assistant, text, value):
    reply = assistant.reply(text)
    assert reply.finding.reading is not None and reply.finding.reading.value == value, text
    assert reply.level == "call_now"


@pytest.mark.parametrize("text", ["I'm thirty five", "see you at thirty eight main street"])
def test_numbers_in_words_without_a_temperature_word_are_not_readings(assistant, text):
    assert assistant.reply(text).finding.reading is None


def test_an_emergency_in_a_word_two_languages_share_starts_in_both(assistant, shipped_catalog):
    def header(locale):
        return shipped_catalog.text(locale, "text:escalation.emergency").format(care_team=CARE_TEAM, emergency="911")

    unknown = assistant.reply("hemorragia")  # Spanish and Portuguese alike
    assert unknown.level == "emergency" and header("es") in unknown.text and header("pt") in unknown.text
    known = assistant.reply("hemorragia", State(locale="pt"))  # the sender's language alone
    assert known.locale == "pt" and header("es") not in known.text and known.text.startswith(header("pt"))
