"""Conversations as a caregiver has them: menus, languages, MORE, STOP, and answers that never fail."""

import pytest

from assistant.conversation import State
from assistant.segments import measure

from .conftest import CARE_TEAM, LOCALES


def talk(assistant, *texts, state=None):
    state = state or State()
    replies = []
    for text in texts:
        reply = assistant.reply(text, state)
        state = reply.state
        replies.append(reply)
    return replies


@pytest.mark.parametrize("locale", LOCALES)
def test_every_reply_fits_three_segments_in_every_language(assistant, shipped_catalog, locale):
    state = State(locale=locale, locale_explicit=True)
    for number in range(1, len(shipped_catalog.topics) + 1):
        menu = assistant.reply("MENU", state)
        reply = assistant.reply(str(number), menu.state)
        assert reply.locale == locale
        assert reply.topic == list(shipped_catalog.topics)[number - 1]
        assert 1 <= reply.segments <= 3, reply.text
        if locale != "en":
            assert reply.text != shipped_catalog.texts["en"][f"topic:{reply.topic}:summary"].string
    for text in ("MENU", "HELP", "LANG", "xyzzy", ""):
        assert assistant.reply(text, state).segments <= 3


def test_escalation_starts_with_action_and_number(assistant):
    reply = assistant.reply("my boy has a fever tonight", State())
    assert reply.text.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}.")
    reply = assistant.reply("she is not breathing", State())
    assert reply.text.startswith("CALL 911 NOW.") and CARE_TEAM in reply.text


def test_fever_medicine_advice(assistant):
    reply = assistant.reply("I gave her motrin for the fever", State())
    assert reply.level == "call_now" and reply.topic == "fever"
    assert "Give no fever medicine unless the team says so." in reply.text and "MORE" not in reply.text
    assert reply.text.count("fever medicine") == 1  # said once


def test_menu_and_digit(assistant):
    menu, pick = talk(assistant, "menu", "5")
    assert menu.topic == "menu" and menu.text.startswith("Reply with a number: 1) Immunotherapy")
    assert pick.topic == "mab" and pick.text.startswith("Monoclonal antibodies")


def test_digit_without_menu_is_not_a_topic(assistant):
    reply = assistant.reply("5", State())
    assert reply.topic is None and CARE_TEAM in reply.text


def test_language_menu_shows_names_in_their_own_language(assistant):
    reply = assistant.reply("LANG", State())
    for name in ("English", "Español", "中文", "Tiếng Việt", "한국어", "Русский", "العربية", "Français",
                 "Português", "Soomaali", "Kreyòl"):
        assert name in reply.text
    spanish = assistant.reply("2", reply.state)
    assert spanish.locale == "es" and spanish.state.locale == "es" and spanish.state.locale_explicit
    mab = assistant.reply("MAB", spanish.state)
    assert mab.locale == "es" and mab.topic == "mab"
    assert mab.text.startswith(assistant.store.current.texts["es"]["topic:mab:summary"].string[:40])


@pytest.mark.parametrize(("text", "locale"), [("LANG ES", "es"), ("lang 3", "zh_Hans"), ("idioma español", "es"),
                                              ("langue français", "fr"), ("Tiếng Việt", "vi"), ("LANG russian", "ru")])
def test_choosing_a_language(assistant, text, locale):
    reply = assistant.reply(text, State())
    assert (reply.topic, reply.locale, reply.state.locale) == ("language", locale, locale)


def test_words_of_one_language_choose_it_and_are_remembered(assistant):
    first, second = talk(assistant, "tiene fiebre", "MAB")
    assert first.locale == "es" and second.locale == "es"


def test_explicit_choice_is_kept_when_words_are_ambiguous(assistant):
    reply = assistant.reply("mab", State(locale="fr", locale_explicit=True))
    assert reply.locale == "fr"


def test_more_sends_the_rest(assistant, shipped_catalog):
    russian = State(locale="ru", locale_explicit=True)
    replies = talk(assistant, "MENU", "MORE", "MORE", "MORE", "MORE", state=russian)
    hint = shipped_catalog.texts["ru"]["text:more.hint"].string
    assert replies[0].text.endswith(hint) and all(r.segments <= 3 for r in replies)
    assert replies[1].topic == "more"
    pages = [r.text.removesuffix(hint) for r in replies]
    assert any("16)" in page for page in pages[1:])
    assert replies[-1].text == shipped_catalog.texts["ru"]["text:more.none"].string
    english = assistant.reply("MORE", State())
    assert english.text.startswith("That is all.")


def test_stop_start(assistant):
    stop, ignored, symptom, start, back = talk(assistant, "STOP", "fever?", "she can't breathe", "START", "MAB")
    assert stop.text is None and stop.state.opted_out
    assert ignored.text is None
    assert symptom.text is None and symptom.level == "emergency"  # reported to the channel, not sent
    assert start.text.startswith("You will get texts again") and not start.state.opted_out
    assert back.topic == "mab"


def test_help_says_not_for_emergencies_and_gives_numbers(assistant):
    reply = assistant.reply("HELP", State())
    assert "Not for emergencies" in reply.text and CARE_TEAM in reply.text and "911" in reply.text
    assert reply.topic == "help" and reply.segments <= 3


@pytest.mark.parametrize("body", ["", "   ", "😀😀😀", "\x00\x01\x02", "<Response><Message>hi</Message></Response>",
                                  "]]>&lt;script&gt;", "a" * 10_000, "🤒" * 500, "x" * 30_000])
def test_hostile_or_odd_bodies_get_a_clear_answer(assistant, body):
    reply = assistant.reply(body, State())
    assert reply.text and CARE_TEAM in reply.text and not reply.failed
    assert measure(reply.text).segments <= 3


def test_picture_only(assistant):
    reply = assistant.reply("", State(), media=1)
    assert reply.text.startswith("I can only read text")


def test_any_failure_still_answers_with_the_number(assistant, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("catalog exploded")

    monkeypatch.setattr(type(assistant.store.current), "text", broken)
    symptom = assistant.reply("my son has a fever", State())
    assert symptom.failed and symptom.level == "call_now"
    assert symptom.text.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")
    emergency = assistant.reply("he is not breathing", State())
    assert emergency.text.startswith("CALL 911 NOW")
    other = assistant.reply("what is a vaccine", State())
    assert CARE_TEAM in other.text and "911" in other.text


def test_failure_before_triage_still_gives_the_number(assistant, monkeypatch):
    monkeypatch.setattr(assistant.store.current.index, "find", lambda toks: 1 / 0)
    reply = assistant.reply("fever", State())
    assert reply.failed and CARE_TEAM in reply.text


@pytest.mark.parametrize("text, locale", [
    ("ok thanks", "en"), ("Thank you so much!", "en"), ("muchas gracias", "es"), ("谢谢", "zh_Hans"),
    ("cam on", "vi"), ("고마워요", "ko"), ("maraming salamat po", "tl"), ("спасибо большое", "ru"),
    ("شكرا جزيلا", "ar"), ("mesi anpil", "ht"), ("muito obrigada", "pt"), ("merci beaucoup", "fr"),
    ("mahadsanid", "so"),
])
def test_a_thank_you_gets_a_warm_answer_with_the_number(assistant, text, locale):
    reply = assistant.reply(text)
    assert (reply.topic, reply.locale, reply.level) == (None, locale, "none")  # chatter: no topic
    assert CARE_TEAM in reply.text and reply.text != assistant.reply("xyzzy", State(locale=locale)).text


@pytest.mark.parametrize("text", ["thanks, he has a fever", "gracias, tiene fiebre", "谢谢 他发烧了",
                                  "ok thanks but she can't breathe"])
def test_a_thank_you_with_a_symptom_is_triaged(assistant, text):
    assert assistant.reply(text).level in ("call_now", "emergency")


@pytest.mark.parametrize("text", ["FEVER", "fever", "Chills", "bleeding"])
def test_an_english_word_other_lists_borrow_is_answered_in_english_alone(assistant, shipped_catalog, text):
    # "fever" is in the Spanish and Tagalog lists because their speakers write it; a lone English word from
    # a new number is still English, not a text that fits two languages (the README's first example).
    reply = assistant.reply(text)
    assert reply.locale == "en" and reply.level == "call_now"
    for other in ("es", "tl"):
        header = shipped_catalog.text(other, "text:escalation.call_now").format(care_team=CARE_TEAM)
        assert header not in reply.text


@pytest.mark.parametrize("text", ["img", "http", "www"])
def test_latin_letters_of_web_pages_are_no_sign_of_russian_or_arabic(assistant, text):
    # wordfreq's Russian, Arabic, Korean and Chinese lists hold Latin-letter strings from web pages.
    assert assistant.reply(text).locale == "en"
