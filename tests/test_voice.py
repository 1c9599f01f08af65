"""The voice webhook as Twilio calls it: signed requests, TwiML checked with XPath, rows in a real database
(SQLite, and PostgreSQL with TEST_DATABASE_URL)."""

import uuid
from urllib.parse import urlsplit

import pytest
from lxml import etree
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from assistant.catalog import build_catalog
from assistant.models import Alert, Escalation, InboundMessage, Sender
from assistant.voicetable import parse_table, twilio_values, voice_problems, voice_table

from .conftest import ALERTS, AUTH_TOKEN, CARE_TEAM, CAREGIVER, LOCALES, PUBLIC_URL, post_signed, text_sms

SPOKEN_CARE_TEAM = "1, 6, 1, 7, 5, 5, 5, 0, 1, 4, 2"  # CARE_TEAM said slowly, digit by digit
DIALLED_CARE_TEAM = "+16175550142"
STEP_URLS = ["/voice", "/voice/language?n=1&page=1&try=0", "/voice/answer?lang=en&n=2&try=0",
             "/voice/pick?lang=en&n=3&page=1&try=0", "/voice/after?lang=en&n=4&t=0&try=0",
             "/voice/dial-status?lang=en&n=5"]


# --- helpers ------------------------------------------------------------------------------------------

class Call:
    """One phone call: every request signed as Twilio signs it, each next step taken from the TwiML."""

    def __init__(self, client, caller: str = CAREGIVER, sid: str | None = None) -> None:
        self.client, self.caller = client, caller
        self.sid = sid or "CA" + uuid.uuid4().hex
        self.root = None

    def post(self, path: str, **fields):
        form = {"CallSid": self.sid, "AccountSid": "AC" + "1" * 32, "From": self.caller, "To": "+16175550000",
                "CallStatus": "in-progress", "Direction": "inbound", "ApiVersion": "2010-04-01", **fields}
        response = post_signed(self.client, path, form)
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/xml"
        self.root = etree.fromstring(response.data)
        assert self.root.tag == "Response"
        return self.root

    def start(self):
        return self.post("/voice")

    def action(self, verb: str = "Gather") -> str:
        (url,) = self.root.xpath(f"/Response/{verb}/@action")
        assert url.startswith(PUBLIC_URL + "/voice/"), url  # absolute, from PUBLIC_BASE_URL
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def press(self, digits: str):
        return self.post(self.action(), Digits=digits)

    def say(self, words: str, confidence: str = "0.91"):
        return self.post(self.action(), SpeechResult=words, Confidence=confidence)

    def silence(self):
        return self.post(self.action())

    def dial_ends(self, status: str):
        return self.post(self.action("Dial"), DialCallStatus=status, DialCallSid="CA" + "2" * 32)

    # what the caller hears
    def said(self) -> list[str]:
        return [str(t) for t in self.root.xpath("//Say/text()")]

    def heard(self) -> str:
        return " ".join(self.said())


def table(app):
    return voice_table(app.extensions["assistant"].store.current)


def text(app, locale: str, key: str, **values) -> str:
    values.setdefault("care_team", SPOKEN_CARE_TEAM)
    values.setdefault("emergency", "9, 1, 1")
    return app.extensions["assistant"].store.current.texts[locale][key].string.format(**values)


def db(app):
    assert app.extensions["recorder"].flush()
    return app.extensions["sessionmaker"]()


def count(app, model, *where) -> int:
    with db(app) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def language_key(app, locale: str) -> list[str]:
    """"For another language, press 8." in the call's language, then in English."""
    lines = [text(app, locale, "voice:language.key", digit="8")]
    english = text(app, "en", "voice:language.key", digit="8")
    return lines if lines == [english] else [*lines, english]


def choose(call: Call, app, locale: str) -> None:
    """Start a call from an unknown number and pick ``locale`` in the language menu."""
    call.start()
    row = table(app)[locale]
    if row.page == 2:
        call.press("9")
    call.press(str(row.digit))


# --- the table --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
def test_every_language_has_a_row_inside_twilios_lists(shipped_catalog, locale):
    rows = voice_table(shipped_catalog)
    row = rows[locale]
    values = twilio_values()
    assert row.voice in values["say_voices"] and row.say_language in values["say_languages"]
    if locale in ("ht", "so"):
        assert row.speech is None and row.keypad_only  # no Twilio recognizer for them
        assert row.nearest == {"ht": "fr", "so": "en"}[locale]
        assert (row.voice, row.say_language) == (rows[row.nearest].voice, rows[row.nearest].say_language)
    else:
        assert row.speech in values["gather_languages"]
    assert 1 <= row.digit <= 8


def test_the_table_refuses_values_twilio_does_not_know(shipped_catalog):
    rows = dict(shipped_catalog.source.voice_locales)
    rows["ar"] = {**rows["ar"], "speech": "ar"}  # no bare "ar" in Twilio's list
    rows["vi"] = {**rows["vi"], "voice": "Polly.Nonexistent"}
    rows["es"] = {**rows["es"], "digit": 1}  # English has 1
    del rows["ko"]
    usable, problems = parse_table(rows, shipped_catalog.languages)
    assert {"ar", "vi", "ko"}.isdisjoint(usable) and "es" not in usable
    said = " ".join(str(p) for p in problems)
    assert "'ar' is not a Twilio <Gather> language" in said and "Polly.Nonexistent" in said
    assert "taken by en" in said and "[ko]" in said


@pytest.mark.parametrize(("locale", "change", "said"), [
    ("fr", {"voice": "Polly.Joanna-Neural"}, "Polly.Joanna-Neural speaks en-US, not fr-FR"),
    ("ar", {"say_language": "arb"}, "Polly.Hala-Neural speaks ar-AE, not arb"),
    ("ru", {"voice": "Polly.Seoyeon-Neural"}, "Polly.Seoyeon-Neural speaks ko-KR, not ru-RU"),
    ("ru", {"voice": "Polly.Seoyeon-Neural", "say_language": "ko-KR"}, "say_language ko-KR is not ru"),
    ("es", {"voice": "man"}, "voice man speaks de-DE, en-GB, en-US, es-ES, fr-FR, not es-US"),
    ("ht", {"nearest": "xx"}, "nearest 'xx' is not another of the languages"),
    ("so", {"nearest": ""}, "say_language en-US is not so"),
    ("ko", {"speech": "ja-JP"}, "speech ja-JP does not listen for ko"),
])
def test_the_table_refuses_a_voice_that_does_not_speak_its_language(shipped_catalog, locale, change, said):
    rows = {code: dict(row) for code, row in shipped_catalog.source.voice_locales.items()}
    rows[locale].update(change)
    usable, problems = parse_table(rows, shipped_catalog.languages)
    assert locale not in usable and said in " ".join(str(p) for p in problems if p.locale == locale)
    assert set(usable) == set(LOCALES) - {locale}


def test_every_polly_voice_twilio_lists_has_its_language():
    from assistant.voicetable import voice_speaks

    polly = [v for v in twilio_values()["say_voices"] if v.startswith("Polly.")]
    assert polly and [v for v in polly if not voice_speaks(v)] == []


def test_catalog_check_refuses_screen_words_and_long_says(source):
    from .conftest import po_catalog

    es = po_catalog("es", {"voice:ask": "Escriba MENU para ver los temas.", "voice:welcome": "Hola. " * 700,
                           "voice:after": "Responda 1) si quiere más."})
    catalog = build_catalog(source, {"es": es})
    problems = {(p.locale, p.where): p.message for p in voice_problems(catalog) if p.severity == "error"}
    assert "MENU" in problems[("es", "voice:ask")]
    assert "takes 3000 at most" in problems[("es", "voice:welcome")]  # Polly.Lupe-Neural
    assert "1)" in problems[("es", "voice:after")]


@pytest.mark.parametrize(("locale", "ctx", "string"), [
    ("es", "voice:ask", "Responda 1 para ver los temas."),
    ("es", "voice:ask", "Escriba menú para ver los temas."),
    ("es", "voice:after", "Escriba más para seguir."),
    ("fr", "voice:ask", "Répondez 1 pour la liste."),
    ("fr", "voice:after", "Envoyez un SMS avec PLUS."),
    ("ru", "voice:ask", "Ответьте 1, чтобы увидеть темы."),
    ("pt", "voice:ask", "Responda 1 para ver os temas."),
    ("tl", "voice:after", "Mag-text ng susunod para sa iba pa."),
    ("ht", "voice:after", "Voye plis pou rès la."),
    ("vi", "voice:after", "Nhắn thêm để nghe tiếp."),
    ("so", "voice:ask", "Ku jawaab lambar."),
    ("zh_Hans", "voice:after", "发送“更多”看其余内容。"),
    ("ko", "voice:after", "나머지를 들으려면 '더보기'라고 보내세요."),
    ("ar", "voice:after", "أرسل «المزيد» لباقي الرسالة."),
    ("es", "topic:vaccine:summary", "Las vacunas entrenan al cuerpo. Escriba MAS para el resto."),  # said on a call
    ("fr", "topic:vaccine:summary", "Les vaccins entraînent le corps. Appelez le 1-800-227-2345."),
    ("es", "voice:topic.resources", "Ayuda: la Sociedad Americana Contra el Cáncer, 800-ACS-2345."),
])
def test_catalog_check_refuses_screen_words_in_each_languages_own_words(source, locale, ctx, string):
    catalog = build_catalog(source, {locale: shipped_po(locale, {ctx: string})})
    assert [p for p in voice_problems(catalog) if (p.locale, p.where, p.severity) == (locale, ctx, "error")]


def test_catalog_check_leaves_texts_only_sent_by_text_alone(source):
    """Haitian Creole and Somali callers get topic answers as text messages: screen words belong there."""
    ht = shipped_po("ht", {"topic:vaccine:summary": "Vaksen yo. Voye PLIS pou rès la. Rele 1-800-227-2345."})
    catalog = build_catalog(source, {"ht": ht})
    assert not [p for p in voice_problems(catalog) if (p.locale, p.where) == ("ht", "topic:vaccine:summary")]


def shipped_po(locale: str, strings: dict[str, str]):
    """The language's shipped catalog with ``strings`` (msgctxt -> translation) written into it."""
    from babel.messages.pofile import read_po

    from .conftest import ROOT

    with open(ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po", "rb") as fh:
        po = read_po(fh, locale=locale)
    for message in po:
        if message.context in strings:
            message.string = strings[message.context]
    return po


def test_a_long_answer_is_said_in_pieces_each_within_the_limit_in_order():
    from assistant.voice import _chunks

    text = "First sentence. " + "x" * 7000 + ". Last one."
    pieces = _chunks(text, 3000)
    assert all(len(p) <= 3000 for p in pieces) and "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert pieces[0].startswith("First sentence.") and pieces[-1].endswith("Last one.")


def test_shipped_voice_texts_pass_the_check(shipped_catalog):
    assert [str(p) for p in voice_problems(shipped_catalog) if p.severity == "error"] == []


# --- the language menu -----------------------------------------------------------------------------------

def test_language_menu_every_language_in_its_own_words_and_voice(sms_client, sms_app):
    call = Call(sms_client)
    root = call.start()
    (gather,) = root.xpath("/Response/Gather")
    assert gather.get("input") == "dtmf" and gather.get("numDigits") == "1" and gather.get("language") is None
    rows = table(sms_app)
    says = gather.xpath("Say")
    first = sorted((r for r in rows.values() if r.page == 1), key=lambda r: r.digit)
    second = sorted((r for r in rows.values() if r.page == 2), key=lambda r: r.digit)
    assert len(first) + len(second) == len(LOCALES) and len(first) <= 8
    for say, row in zip(says, first, strict=False):
        assert (say.get("voice"), say.get("language")) == (row.voice, row.say_language)
        assert say.text == text(sms_app, row.code, "voice:language.option", digit=str(row.digit))
    more = says[len(first):len(first) + len(second)]
    for say, row in zip(more, second, strict=True):  # "for other languages, press 9", in each
        assert (say.get("voice"), say.get("language")) == (row.voice, row.say_language)
        assert say.text == text(sms_app, row.code, "voice:language.more", digit="9")
    assert "Para español, oprima 2." in call.said()
    # 0 and star, announced once, in the service's language
    assert says[-1].text == "To talk to the care team, press 0. To hear this again, press star."
    assert len(says) == len(first) + len(second) + 1
    root = call.press("9")
    says = root.xpath("/Response/Gather/Say")
    for say, row in zip(says, second, strict=False):
        assert (say.get("voice"), say.get("language")) == (row.voice, row.say_language)
        assert say.text == text(sms_app, row.code, "voice:language.option", digit=str(row.digit))
    assert len(says) == len(second) + 1 and says[-1].text == text(sms_app, "en", "voice:menu.end")
    assert "Pou kreyòl ayisyen, peze 1." in call.said() and "Af-Soomaali, riix 4." in call.said()


def test_language_menu_star_repeats_and_silence_repeats_once_then_the_number(sms_client):
    call = Call(sms_client)
    first = call.start()
    menu = call.said()
    assert call.press("*") is not None and call.said() == menu
    call.silence()
    assert call.said() == menu  # once more
    root = call.silence()
    assert SPOKEN_CARE_TEAM in call.heard() and root.xpath("/Response/Hangup")
    assert first.xpath("/Response/Gather/@actionOnEmptyResult") == ["true"]


def test_language_menu_wrong_key_repeats_it_in_every_language_never_in_english_alone(sms_client):
    call = Call(sms_client)
    call.start()
    menu = call.said()
    for key in ("#", "7" * 3):
        call.press(key)
        assert call.said() == menu


def test_language_menu_0_is_the_care_team(sms_client):
    call = Call(sms_client)
    call.start()
    assert "To talk to the care team, press 0." in call.heard()
    root = call.press("0")
    assert root.xpath("/Response/Dial/text()") == [DIALLED_CARE_TEAM]


# --- only reviewed texts served (SERVE_UNREVIEWED=false): each text in the voice of its own language ------

@pytest.fixture
def reviewed_app(database_url, fake_twilio, tmp_path):
    from .conftest import close_app, make_sms_app

    app = make_sms_app(database_url, fake_twilio, tmp_path, SERVE_UNREVIEWED="false")
    assert not app.extensions["assistant"].store.current.serve_unreviewed
    yield app
    close_app(app)


ENGLISH_VOICE = ("Polly.Joanna-Neural", "en-US")


def voices(root) -> list[tuple[str, str, str]]:
    return [(s.get("voice"), s.get("language"), s.text) for s in root.xpath("//Say")]


def test_unreviewed_language_lines_name_their_language_never_english(reviewed_app):
    from assistant.voice import english_name

    call = Call(reviewed_app.test_client())
    call.start()
    said = voices(call.root)
    rows = sorted((r for r in table(reviewed_app).values() if r.page == 1), key=lambda r: r.digit)
    assert [t for *_, t in said].count("For English, press 1.") == 1 and (*ENGLISH_VOICE, "For English, press 1.") \
        in said
    names = reviewed_app.extensions["assistant"].store.current.names
    for row in rows[1:]:
        own = (row.voice, row.say_language, names[row.code])  # its name in its own voice, then the English line
        offer = (*ENGLISH_VOICE, f"For {english_name(row.code)}, press {row.digit}.")
        assert said[said.index(own) + 1] == offer
    assert not any("English" in t for v, lang, t in said if (v, lang) != ENGLISH_VOICE)
    assert [t for *_, t in said].count("For other languages, press 9.") == 1  # once, not four times
    call.press("9")
    said = voices(call.root)
    assert said[:2] == [("Polly.Lea-Neural", "fr-FR", "Kreyòl Ayisyen"),
                        (*ENGLISH_VOICE, "For Haitian Creole, press 1.")]


def test_english_fallback_is_said_in_the_english_voice_and_listened_for_in_the_callers(reviewed_app):
    client = reviewed_app.test_client()
    call = Call(client)
    choose(call, reviewed_app, "es")
    assert call.root.xpath("/Response/Gather/@language") == ["es-US"]  # the caller still speaks Spanish
    assert voices(call.root)[0] == (*ENGLISH_VOICE, text(reviewed_app, "en", "voice:welcome"))
    assert {(v, lang) for v, lang, _ in voices(call.root)} == {ENGLISH_VOICE}
    call.say("tiene fiebre")
    assert voices(call.root)[0] == (*ENGLISH_VOICE, text(reviewed_app, "en", "voice:escalation.call_now"))
    keypad = Call(client, caller="+16175550124")
    choose(keypad, reviewed_app, "ht")
    keypad.press("1")
    assert (*ENGLISH_VOICE, "We have sent you a text message.") in voices(keypad.root)


def test_each_piece_of_an_answer_in_its_own_languages_voice(sms_client, sms_app):
    """A reviewed Spanish summary is said by the Spanish voice, the unreviewed lines around it by the
    English one, and a list line whose title is not reviewed is English all through."""
    from babel.messages.pofile import read_po

    from assistant.catalog import build_catalog
    from assistant.source import read_source

    from .conftest import ROOT

    reviewed = {"topic:vaccine:summary", "voice:option", "topic:mab:title"}
    with open(ROOT / "locales" / "es" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        po = read_po(fh, locale="es")
    for message in po:
        if message.context in reviewed:
            message.flags.discard("fuzzy")
    catalog = build_catalog(read_source(ROOT / "messages"), {"es": po}, serve_unreviewed=False)
    sms_app.extensions["assistant"].store.swap(catalog)
    call = Call(sms_client)
    choose(call, sms_app, "es")
    call.say("qué es una vacuna contra el cáncer")
    lupe = ("Polly.Lupe-Neural", "es-US")
    said = voices(call.root)
    assert said[0] == (*lupe, catalog.texts["es"]["topic:vaccine:summary"].string)
    assert said[1] == (*ENGLISH_VOICE, catalog.texts["en"]["voice:after"].string)
    call.press("2")  # the list of topics
    said = voices(call.root)
    mab = catalog.texts["es"]["topic:mab:title"].string
    assert (*lupe, f"Para {mab}, oprima 5.") in said
    assert (*ENGLISH_VOICE, "For Immunotherapy, press 1.") in said  # its title is not reviewed
    call = Call(sms_client, caller="+16175550124")
    choose(call, sms_app, "es")
    call.say("mab vacuna")  # "did you mean": one language for the whole question, as its title is not reviewed
    (question, *_) = voices(call.root)
    assert question == (*ENGLISH_VOICE, "Did you mean: For Monoclonal antibodies (mAbs), press 1. "
                                        "For Cancer vaccines, press 2.")


# --- each language's call -----------------------------------------------------------------------------------

@pytest.mark.parametrize("locale", LOCALES)
def test_each_language_listens_and_speaks_as_its_row_says(sms_client, sms_app, locale):
    call = Call(sms_client)
    choose(call, sms_app, locale)
    row = table(sms_app)[locale]
    values = twilio_values()
    (gather,) = call.root.xpath("/Response/Gather")
    assert gather.get("speechModel") is None  # Twilio picks the recognizer and fails over
    if row.keypad_only:
        assert gather.get("input") == "dtmf" and gather.get("language") is None and gather.get("hints") is None
        assert call.said()[0] == text(sms_app, locale, "voice:welcome")  # its own words, the nearest voice
    else:
        assert gather.get("input") == "dtmf speech"
        assert gather.get("language") == row.speech and gather.get("language") in values["gather_languages"]
        assert gather.get("speechTimeout") == "auto" and gather.get("hints")
        assert len(gather.get("hints").split(", ")) <= 500
        assert call.said() == [text(sms_app, locale, "voice:welcome"), text(sms_app, locale, "voice:ask"),
                               *language_key(sms_app, locale)]
    english = table(sms_app)["en"]
    for say in call.root.xpath("//Say"):
        # its own voice; only the language key's English line in the English voice
        expected = (english.voice, english.say_language) if say.text == language_key(sms_app, "en")[0] \
            else (row.voice, row.say_language)
        assert (say.get("voice"), say.get("language")) == expected
        assert say.get("voice") in values["say_voices"] and say.get("language") in values["say_languages"]
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).locale == locale


def test_hints_are_the_languages_own_keywords(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "es")
    hints = call.root.xpath("/Response/Gather/@hints")[0].split(", ")
    assert "fiebre" in hints and not any("*" in h or "..." in h for h in hints)


# --- speech ------------------------------------------------------------------------------------------------

def test_a_question_is_answered_with_the_topic_summary_then_a_keypad_menu(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say("what is a cancer vaccine", confidence="0.2")  # low confidence is no reason to skip anything
    said = call.said()
    assert said[0].startswith("Cancer vaccines") and "Text MORE" not in said[0]
    assert said[1] == text(sms_app, "en", "voice:after")
    (gather,) = call.root.xpath("/Response/Gather")
    assert gather.get("input") == "dtmf" and len(said) == 2
    assert count(sms_app, Escalation) == 0
    with db(sms_app) as session:
        step = session.scalar(select(InboundMessage).where(InboundMessage.message_sid == f"{call.sid}:2"))
        assert (step.channel, step.topic, step.locale) == ("voice", "vaccine", "en")


def test_after_an_answer_1_repeats_it_2_lists_topics_3_texts_it(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "es")
    call.say("qué es una vacuna contra el cáncer")
    answer = call.said()[0]
    after = call.action()
    call.post(after, Digits="1")
    assert call.said()[0] == answer
    call.post(after, Digits="3")
    assert call.said()[0] == text(sms_app, "es", "voice:texted")
    with db(sms_app) as session:
        (sent,) = session.scalars(select(Alert).where(Alert.escalation_id.is_(None))).all()
        assert sent.to_number == CAREGIVER and sent.status == "pending"
        summary = sms_app.extensions["assistant"].store.current.texts["es"]["topic:vaccine:summary"].string
        assert sent.body.startswith(summary[:40])  # the text answer, in Spanish
    call.post(after, Digits="3")  # Twilio repeating the same request: no second text
    assert count(sms_app, Alert, Alert.escalation_id.is_(None)) == 1
    call.post(after, Digits="2")
    assert call.said()[0] == text(sms_app, "es", "voice:option", label="Inmunoterapia", digit="1")


@pytest.mark.parametrize(("words", "spoken", "written"), [
    ("resources", "the American Cancer Society, at 1, 8, 0, 0, 2, 2, 7, 2, 3, 4, 5.", "1-800"),
    ("who are you", "This line gives short facts", "texts short facts")])
def test_answers_written_for_a_screen_are_said_in_their_spoken_version(sms_client, sms_app, words, spoken, written):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say(words)
    assert spoken in call.said()[0] and written not in call.heard()
    if words == "who are you":
        assert SPOKEN_CARE_TEAM in call.said()[0]


def test_speech_that_matches_nothing_says_so_and_offers_the_keypad_list(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say("purple elephant umbrella")
    said = call.said()
    assert said[0] == "Sorry, I did not understand."
    assert said[1] == "For Immunotherapy, press 1."
    keys = call.root.xpath("/Response/Gather/@numDigits")
    assert keys == ["1"]
    assert count(sms_app, Escalation) == 0


def test_an_ambiguous_question_offers_its_choices_by_key(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say("mab vaccine")
    assert call.said()[0] == ("Did you mean: For Monoclonal antibodies (mAbs), press 1. "
                              "For Cancer vaccines, press 2.")
    assert call.said()[1] == text(sms_app, "en", "voice:menu.end")
    call.press("2")
    summary = sms_app.extensions["assistant"].store.current.texts["en"]["topic:vaccine:summary"].string
    assert call.said()[0] == summary


@pytest.mark.parametrize(("words", "first"), [("menu", "For Immunotherapy, press 1."),
                                              ("help", "Sorry, I did not understand."),
                                              ("stop", "Sorry, I did not understand."),
                                              ("language", "For English, press 1.")])
def test_text_commands_said_on_a_call_get_keypad_lists_never_screen_words(sms_client, sms_app, words, first):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say(words)
    assert call.said()[0] == first
    heard = call.heard()
    assert "Reply" not in heard and "Text " not in heard and "1)" not in heard
    assert call.root.xpath("/Response/Gather/@input") == ["dtmf"]
    with db(sms_app) as session:
        assert not session.get(Sender, CAREGIVER).opted_out  # "stop" on a call is no opt-out


def test_naming_a_language_moves_the_call_to_it(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say("español")
    assert call.root.xpath("/Response/Gather/@language") == ["es-US"]
    assert call.said() == [text(sms_app, "es", "voice:ask"), *language_key(sms_app, "es")]
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).locale == "es"


# --- keypad ------------------------------------------------------------------------------------------------

def test_keypad_lists_never_offer_more_than_nine_choices_and_0_is_the_care_team(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.press("1")
    topics = sms_app.extensions["assistant"].store.current.source.topics
    titles = [t.title for t in topics]
    first = [f"For {t}, press {i}." for i, t in enumerate(titles[:7], 1)]
    assert call.said() == [*first, "For another language, press 8.", "For more topics, press 9.",
                           text(sms_app, "en", "voice:menu.end")]
    assert sorted(call.root.xpath("/Response/Gather/@numDigits")) == ["1"]
    call.press("9")
    assert call.said()[:7] == [f"For {t}, press {i}." for i, t in enumerate(titles[7:14], 1)]
    call.press("9")
    page3 = [s for s in call.said() if s.startswith("For ") and "press" in s]
    assert page3 == [*(f"For {t}, press {i}." for i, t in enumerate(titles[14:], 1)), "For another language, press 8."]
    call.press("*")
    call.post(call.action().replace("page=3", "page=2"), Digits="5")  # the fifth of the second page
    assert call.said()[0] == text(sms_app, "en", f"topic:{topics[11].id}:summary")
    call.press("0")
    assert call.root.xpath("/Response/Dial/text()") == [DIALLED_CARE_TEAM]
    assert call.said() == ["I am connecting you to the care team."]


@pytest.mark.parametrize("step", ["ask", "topics", "after"])
def test_0_always_reaches_the_care_team(sms_client, sms_app, step):
    call = Call(sms_client)
    choose(call, sms_app, "fr")
    if step in ("topics", "after"):
        call.press("1")
    if step == "after":
        call.press("2")
    call.press("0")
    (dial,) = call.root.xpath("/Response/Dial")
    assert dial.text == DIALLED_CARE_TEAM and dial.get("action").startswith(PUBLIC_URL + "/voice/dial-status")
    assert call.said() == [text(sms_app, "fr", "voice:transfer")]


def test_no_input_asks_once_more_then_says_the_number_and_hangs_up(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "ko")
    call.silence()
    assert call.said()[0] == text(sms_app, "ko", "voice:no_input")
    assert call.said()[1:] == [text(sms_app, "ko", "voice:ask"), *language_key(sms_app, "ko")]
    assert call.root.xpath("/Response/Gather")
    call.silence()
    assert call.said() == [text(sms_app, "ko", "voice:no_input"), text(sms_app, "ko", "voice:goodbye")]
    assert SPOKEN_CARE_TEAM in call.heard() and call.root.xpath("/Response/*[last()][self::Hangup]")


def test_a_wrong_key_says_so_and_repeats(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.press("7")
    assert call.said() == ["That key is not on the menu.", text(sms_app, "en", "voice:ask"),
                           "For another language, press 8."]
    call.press("1")
    menu = call.said()
    call.press("#")
    assert call.said() == ["That key is not on the menu.", *menu]


# --- escalations -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("locale", "words", "topic"), [("en", "my son has a fever of 38.6", "fever"),
                                                         ("es", "tiene fiebre y escalofríos", "fever"),
                                                         ("zh_Hans", "孩子发烧了", "fever")])
def test_call_now_says_short_advice_then_transfers_and_records_the_escalation(sms_client, sms_app, locale, words,
                                                                                topic):
    call = Call(sms_client)
    choose(call, sms_app, locale)
    root = call.say(words)
    assert [el.tag for el in root] == ["Say", "Dial"]
    assert call.said()[0].startswith(text(sms_app, locale, "voice:escalation.call_now")[:12])
    (dial,) = root.xpath("/Response/Dial")
    assert dial.text == DIALLED_CARE_TEAM and int(dial.get("timeout")) > 0
    assert dial.get("action").startswith(PUBLIC_URL + "/voice/dial-status")
    with db(sms_app) as session:
        (escalation,) = session.scalars(select(Escalation)).all()
        assert (escalation.level, escalation.channel, escalation.locale, escalation.topic) == \
            ("call_now", "voice", locale, topic)
        assert escalation.phone == CAREGIVER and escalation.message_sid == f"{call.sid}:2"
        assert sorted(a.to_number for a in session.scalars(select(Alert))) == sorted(ALERTS)


def test_transfer_not_answered_says_the_number_twice_slowly_and_texts_it(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.say("fever")
    root = call.dial_ends("no-answer")
    heard = call.heard()
    assert heard.count(SPOKEN_CARE_TEAM) == 2
    assert call.said()[-1] == "We have sent you a text message." and root.xpath("/Response/*[last()][self::Hangup]")
    assert not root.xpath("//Dial")
    with db(sms_app) as session:
        (sent,) = session.scalars(select(Alert).where(Alert.escalation_id.is_(None))).all()
        assert sent.to_number == CAREGIVER and CARE_TEAM in sent.body


def test_transfer_answered_ends_with_the_number(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "pt")
    call.press("0")
    root = call.dial_ends("completed")
    assert call.said() == [text(sms_app, "pt", "voice:goodbye")] and root.xpath("/Response/Hangup")
    assert count(sms_app, Alert, Alert.escalation_id.is_(None)) == 0


@pytest.mark.parametrize(("locale", "words", "first"), [
    ("en", "she can't breathe", "Hang up and call 9, 1, 1 now."),
    ("es", "no puede respirar", "Cuelgue y llame al 9, 1, 1 ahora."),
    ("ru", "у него судороги", "Положите трубку")])
def test_emergency_first_words_twice_then_the_call_ends_never_dialled(sms_client, sms_app, locale, words, first):
    call = Call(sms_client)
    choose(call, sms_app, locale)
    root = call.say(words)
    assert [el.tag for el in root] == ["Say", "Say", "Hangup"]
    one, two = call.said()
    assert one == two and one.startswith(first) and SPOKEN_CARE_TEAM in one
    assert not root.xpath("//Dial") and "911" not in root.xpath("string(//Dial)")
    with db(sms_app) as session:
        (escalation,) = session.scalars(select(Escalation)).all()
        assert (escalation.level, escalation.channel) == ("emergency", "voice")
        assert escalation.text == words  # the care team's record has the words; the logs never do


def test_twilio_repeating_a_request_escalates_and_alerts_once(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    answer = call.action()
    first = etree.tostring(call.post(answer, SpeechResult="my daughter has a fever"))
    second = etree.tostring(call.post(answer, SpeechResult="my daughter has a fever"))
    assert first == second
    assert count(sms_app, Escalation) == 1 and count(sms_app, Alert) == len(ALERTS)
    dial_status = call.action("Dial")
    call.post(dial_status, DialCallStatus="no-answer")
    call.post(dial_status, DialCallStatus="no-answer")
    assert count(sms_app, Alert, Alert.escalation_id.is_(None)) == 1  # the number texted once


@pytest.mark.parametrize("words", ["mab vaccine", "español", "what is a cancer vaccine", "purple elephant"])
def test_twilio_repeating_a_step_gets_the_same_twiml_once_it_is_stored(sms_client, sms_app, words):
    """The retry is answered from the database (written meanwhile), which keeps no list of choices."""
    call = Call(sms_client)
    choose(call, sms_app, "en")
    answer = call.action()
    first = etree.tostring(call.post(answer, SpeechResult=words))
    assert sms_app.extensions["recorder"].flush()
    again = etree.tostring(call.post(answer, SpeechResult=words))
    assert again == first
    if words == "mab vaccine":
        assert call.said()[0].startswith("Did you mean: For Monoclonal antibodies (mAbs), press 1.")


@pytest.mark.parametrize("words", ["tiene fiebre", "qué es una vacuna contra el cáncer"])
def test_a_repeated_step_says_each_part_in_the_same_voice_as_the_first_time(reviewed_app, words):
    call = Call(reviewed_app.test_client())
    choose(call, reviewed_app, "es")
    answer = call.action()
    first = voices(call.post(answer, SpeechResult=words))
    assert reviewed_app.extensions["recorder"].flush()
    assert voices(call.post(answer, SpeechResult=words)) == first
    assert first[0][:2] == ENGLISH_VOICE  # the English fallback, in the English voice both times


def test_escalation_is_said_even_when_the_catalog_fails(sms_client, sms_app, monkeypatch):
    call = Call(sms_client)
    choose(call, sms_app, "es")
    catalog = sms_app.extensions["assistant"].store.current
    monkeypatch.setattr(type(catalog), "text", lambda *a, **k: 1 / 0)
    root = call.say("no puede respirar")
    one, two = call.said()
    assert one == two and one.startswith("CALL 9, 1, 1 NOW") and root.xpath("/Response/Hangup")
    assert SPOKEN_CARE_TEAM in one
    assert count(sms_app, Escalation) == 1


def says_the_number_or_transfers(root) -> bool:
    """What every step must end in: the care-team number said, or the care team on the line."""
    return SPOKEN_CARE_TEAM in " ".join(root.xpath("//Say/text()")) or bool(root.xpath("/Response/Dial"))


def no_silent_gather(root) -> bool:
    return all(g.xpath("Say|Play") for g in root.xpath("//Gather"))


@pytest.mark.parametrize(("words", "tags", "said"), [
    ("she can't breathe", ["Say", "Say", "Hangup"], "9, 1, 1"),
    ("my son has a fever", ["Say", "Dial"], "care team"),
    ("what is a cancer vaccine", ["Say", "Hangup"], SPOKEN_CARE_TEAM)])
def test_a_failed_step_still_escalates_or_says_the_number(sms_client, sms_app, monkeypatch, words, tags, said):
    """The inbox failing part-way (here its memory) loses neither the escalation nor the number."""
    from assistant.inbox import Recorder

    call = Call(sms_client)
    choose(call, sms_app, "en")

    def broken(self, phone):
        raise RuntimeError("memory lost")

    monkeypatch.setattr(Recorder, "state", broken)
    root = call.say(words)
    assert [el.tag for el in root] == tags and said in call.heard()
    if tags[-1] == "Hangup" and "9, 1, 1" in said:
        one, two = call.said()
        assert one == two and one.startswith("Hang up and call 9, 1, 1 now") and SPOKEN_CARE_TEAM in one
    if tags[-1] == "Dial":
        assert root.xpath("/Response/Dial/text()") == [DIALLED_CARE_TEAM]
    monkeypatch.undo()
    escalations = count(sms_app, Escalation)
    assert escalations == (0 if words.startswith("what") else 1)  # recorded, with its alerts
    assert count(sms_app, Alert, Alert.escalation_id.is_not(None)) == escalations * len(ALERTS)


@pytest.mark.parametrize("steps", [(), ("1",), ("1", "what is a cancer vaccine"), ("1", ""), ("1", "1"),
                                   ("9", "4"), ("9", "4", "5")])
def test_a_broken_catalog_never_leaves_the_caller_in_silence(sms_client, sms_app, monkeypatch, steps):
    catalog = sms_app.extensions["assistant"].store.current
    monkeypatch.setattr(type(catalog), "text", lambda *a, **k: 1 / 0)
    call = Call(sms_client)
    root = call.start()
    for step in steps:
        if not root.xpath("/Response/Gather"):
            break
        root = call.press(step) if step.isdigit() else call.say(step) if step else call.silence()
    assert no_silent_gather(root), etree.tostring(root)
    if not root.xpath("/Response/Gather"):
        assert says_the_number_or_transfers(root) and root.xpath("/Response/*[last()][self::Hangup or self::Dial]")


def test_escalation_is_said_when_the_database_is_down(sms_client, sms_app, monkeypatch):
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import OperationalError

    call = Call(sms_client)
    choose(call, sms_app, "en")
    answer = call.action()

    def down(*args, **kwargs):
        raise OperationalError("connect", {}, Exception("connection refused"))

    with monkeypatch.context() as m:
        m.setattr(Engine, "raw_connection", down)
        root = call.post(answer, SpeechResult="fever")
        assert root.xpath("/Response/Dial/text()") == [DIALLED_CARE_TEAM]
    recorder = sms_app.extensions["recorder"]
    assert recorder.flush()
    recorder.drain()
    with db(sms_app) as session:
        (escalation,) = session.scalars(select(Escalation)).all()
        assert escalation.channel == "voice" and escalation.level == "call_now"


# --- Haitian Creole and Somali: keypad, nearest voice, texts ---------------------------------------------

@pytest.mark.parametrize(("locale", "voice"), [("ht", "Polly.Lea-Neural"), ("so", "Polly.Joanna-Neural")])
def test_keypad_only_languages_get_the_answer_as_a_text(sms_client, sms_app, locale, voice):
    call = Call(sms_client)
    choose(call, sms_app, locale)
    assert call.root.xpath("/Response/Gather/@input") == ["dtmf"]
    assert set(call.root.xpath("//Say/@voice")) == {voice, "Polly.Joanna-Neural"}  # "For another language" too
    call.press("5")  # a topic of the list
    said = call.said()
    assert said[0] == text(sms_app, locale, "voice:texted")
    assert said[1] == text(sms_app, locale, "voice:after.keypad")
    with db(sms_app) as session:
        (sent,) = session.scalars(select(Alert).where(Alert.escalation_id.is_(None))).all()
        summary = sms_app.extensions["assistant"].store.current.texts[locale]["topic:mab:summary"].string
        assert sent.to_number == CAREGIVER and sent.body.startswith(summary[:30])
    call.press("0")
    assert call.root.xpath("/Response/Dial/text()") == [DIALLED_CARE_TEAM]


@pytest.mark.parametrize("locale", ["ht", "so"])
def test_every_text_sent_from_a_call_gives_the_care_team_number(sms_client, sms_app, locale):
    call = Call(sms_client)
    choose(call, sms_app, locale)
    for key in "1234567":
        call.press(key)  # a topic: its answer is texted
        call.press("2")  # back to the list
    with db(sms_app) as session:
        bodies = [a.body for a in session.scalars(select(Alert).where(Alert.escalation_id.is_(None)))]
    assert len(bodies) == 7 and all(CARE_TEAM in b for b in bodies)
    line = sms_app.extensions["assistant"].text(locale, "text:care_team")
    assert any(b.endswith(line) for b in bodies)  # added where the answer did not give it


def test_a_text_sent_from_a_call_is_whole_never_cut_to_more(sms_client, sms_app):
    """A caller has no MORE to ask for: the Arabic "resources" answer, longer than an SMS's three
    segments, goes out whole."""
    assistant = sms_app.extensions["assistant"]
    catalog = assistant.store.current
    index = [t.id for t in catalog.source.topics].index("resources")
    call = Call(sms_client)
    choose(call, sms_app, "ar")
    call.post(f"/voice/after?lang=ar&n=3&t={index}&try=0", Digits="3")
    assert call.said()[0] == text(sms_app, "ar", "voice:texted")
    with db(sms_app) as session:
        (body,) = session.scalars(select(Alert.body).where(Alert.escalation_id.is_(None))).all()
    assert assistant.text("ar", "text:more.hint") not in body and "Lemonade Stand" in body and "FDA" in body
    assert CARE_TEAM in body and len(body) <= 1600


def test_a_coordinators_recording_is_played(sms_client, sms_app, tmp_path):
    sms_app.config["VOICE_RECORDINGS_DIR"] = str(tmp_path)
    (tmp_path / "ht").mkdir()
    (tmp_path / "ht" / "voice.welcome.mp3").write_bytes(b"ID3 recording")
    (tmp_path / "ht" / "topic.mab.summary.mp3").write_bytes(b"ID3 recording")
    call = Call(sms_client)
    choose(call, sms_app, "ht")
    plays = call.root.xpath("/Response/Gather/Play/text()")
    assert plays == [f"{PUBLIC_URL}/voice/recordings/ht/voice.welcome.mp3"]
    call.press("5")
    assert call.root.xpath("/Response/Play/text()") == [f"{PUBLIC_URL}/voice/recordings/ht/topic.mab.summary.mp3"]
    assert count(sms_app, Alert) == 0  # heard, so not texted
    got = sms_client.get("/voice/recordings/ht/voice.welcome.mp3")
    assert got.status_code == 200 and got.data == b"ID3 recording"
    assert sms_client.get("/voice/recordings/ht/..%2Fsecret.mp3").status_code == 404


def test_no_text_to_a_number_that_opted_out(sms_client, sms_app):
    text_sms(sms_client, "STOP")
    call = Call(sms_client)
    choose(call, sms_app, "so")
    call.press("5")
    assert call.said()[0] == text(sms_app, "so", "voice:not_texted")
    assert count(sms_app, Alert) == 0
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).opted_out  # a call does not opt back in


def test_hidden_number_gets_no_text(sms_client, sms_app):
    call = Call(sms_client, caller="anonymous")
    choose(call, sms_app, "en")
    call.say("fever")
    call.dial_ends("busy")
    assert call.heard().count(SPOKEN_CARE_TEAM) == 2 and "We could not send you a text message." in call.said()
    assert count(sms_app, Alert, Alert.escalation_id.is_(None)) == 0


@pytest.mark.parametrize("caller", ["anonymous", "Restricted", "unknown", "+266696687", "+86282452253", "+7378742833",
                                    "+2562533", ""])
def test_hidden_callers_share_no_language_get_no_text_and_staff_are_told(sms_client, sms_app, caller):
    first = Call(sms_client, caller=caller)
    choose(first, sms_app, "ru")
    second = Call(sms_client, caller=caller)  # someone else whose number is hidden too
    second.start()
    assert "For English, press 1." in second.said() and second.root.xpath("/Response/Gather/@input") == ["dtmf"]
    second.press("1")
    second.say("fever")
    second.dial_ends("no-answer")
    assert second.heard().count(SPOKEN_CARE_TEAM) == 2 and "We could not send you a text message." in second.said()
    assert count(sms_app, Sender) == 0 and count(sms_app, Alert, Alert.escalation_id.is_(None)) == 0
    with db(sms_app) as session:
        bodies = {a.body for a in session.scalars(select(Alert))}
    assert len(bodies) == 1 and "NO callback number" in bodies.pop()


# --- memory ------------------------------------------------------------------------------------------------

def test_a_caller_remembered_from_sms_goes_straight_on_in_their_language(sms_client, sms_app):
    text_sms(sms_client, "IDIOMA español")
    call = Call(sms_client)
    root = call.start()
    assert root.xpath("/Response/Gather/@language") == ["es-US"]
    assert call.said() == [text(sms_app, "es", "voice:welcome"), text(sms_app, "es", "voice:ask"),
                           *language_key(sms_app, "es")]


def test_a_language_guessed_from_one_text_can_be_changed_from_the_keypad(sms_client, sms_app):
    text_sms(sms_client, "con tôi bị ho")
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).locale == "vi"
    call = Call(sms_client)
    call.start()
    assert call.root.xpath("/Response/Gather/@language") == ["vi-VN"]
    assert voices(call.root)[-1] == (*ENGLISH_VOICE, "For another language, press 8.")  # in English too
    call.press("8")
    assert call.root.xpath("/Response/Gather/@action")[0].startswith(PUBLIC_URL + "/voice/language")
    assert "For English, press 1." in call.said()
    call.press("2")
    with db(sms_app) as session:
        assert session.get(Sender, CAREGIVER).locale == "es"


def test_a_keypad_only_caller_reaches_the_language_menu_from_the_list(sms_client, sms_app):
    choose(Call(sms_client), sms_app, "so")
    call = Call(sms_client)
    call.start()  # remembered: the Somali list of topics straight away
    said = call.said()
    assert said[said.index(text(sms_app, "so", "voice:language.key", digit="8")) + 1] == \
        "For another language, press 8."
    call.press("8")
    assert "For English, press 1." in call.said()
    call.press("1")
    assert call.root.xpath("/Response/Gather/@language") == ["en-US"]


def test_every_menu_offers_nine_choices_at_most_and_0_is_the_care_team(sms_client):
    def post(path: str, **fields):
        body = {"path": path, "From": "+15550100999", "CallSid": "SIMCA1", **fields}
        steps = sms_client.post("/simulator/voice", json=body).get_json()["steps"]
        gathers = [s for s in steps if s["kind"] == "gather"]
        for gather in gathers:
            assert len([k for k in gather["keys"] if k in "123456789"]) <= 9 and gather["keys"]["0"] == "care team"
        return gathers[-1]["action"] if gathers else None

    menu = post("/voice")
    post(post(menu, Digits="9"), Digits="4")  # Somali: the list of topics
    ask = post(menu, Digits="1")
    topics = post(ask, Digits="1")
    page2 = post(topics, Digits="9")
    post(page2, Digits="9")
    post(post(topics, Digits="3"), Digits="*")  # after an answer
    post(ask, SpeechResult="mab vaccine")  # did you mean


def test_a_caller_remembered_from_an_earlier_call(sms_client, sms_app):
    choose(Call(sms_client), sms_app, "vi")
    call = Call(sms_client)
    call.start()
    assert call.root.xpath("/Response/Gather/@language") == ["vi-VN"]
    with db(sms_app) as session:
        steps = session.scalars(select(InboundMessage).where(InboundMessage.message_sid.like(f"{call.sid}:%"))).all()
        assert [s.channel for s in steps] == ["voice"] and steps[0].locale == "vi"


def test_a_call_is_remembered_step_by_step(sms_client, sms_app):
    call = Call(sms_client)
    choose(call, sms_app, "en")
    call.press("1")
    call.press("3")
    with db(sms_app) as session:
        steps = session.scalars(select(InboundMessage).where(InboundMessage.phone == CAREGIVER)
                                .order_by(InboundMessage.message_sid)).all()
        assert [s.message_sid for s in steps] == [f"{call.sid}:{n}" for n in range(4)]
        assert [s.topic for s in steps] == ["call", "language", "answer:1", "cancer_and_immunity"]
        assert {s.channel for s in steps} == {"voice"} and steps[0].reply.startswith("For English, press 1.")


# --- signatures and bad input --------------------------------------------------------------------------

@pytest.mark.parametrize("url", STEP_URLS)
def test_every_voice_url_needs_twilios_signature(sms_client, url):
    form = {"CallSid": "CA1", "From": CAREGIVER, "Digits": "1"}
    assert sms_client.post(url, data=form).status_code == 403
    assert post_signed(sms_client, url, form, token="0" * 32).status_code == 403
    assert post_signed(sms_client, url, form, url="http://localhost" + url).status_code == 403
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + url, form)
    tampered = {**form, "Digits": "0"}
    assert sms_client.post(url, data=tampered, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert post_signed(sms_client, url, form).status_code == 200


BAD_FIELDS = [
    {}, {"Digits": ""}, {"Digits": "9" * 5000}, {"Digits": "12#*abc\x00"}, {"SpeechResult": ""},
    {"SpeechResult": "fever " * 3000}, {"SpeechResult": "\x00 ☃ 🙂 \u202e"}, {"Digits": "1", "SpeechResult": "x"},
    {"DialCallStatus": "weird"}, {"CallSid": "", "From": ""}, {"CallSid": "C" * 500, "From": "+" + "1" * 300},
]


@pytest.mark.parametrize("url", [*STEP_URLS, "/voice/answer?lang=xx&n=-4&try=7", "/voice/pick?lang=en&o=99.x.-1&n=a",
                                 "/voice/after?t=banana", "/voice/language?page=0"])
def test_bad_input_never_fails(sms_client, url):
    for fields in BAD_FIELDS:
        form = {"CallSid": "CA" + uuid.uuid4().hex, "From": CAREGIVER, **fields}
        response = post_signed(sms_client, url, form)
        assert response.status_code == 200, fields
        root = etree.fromstring(response.data)
        assert root.tag == "Response" and len(root), fields
        if url.startswith("/voice/answer") and "fever " in fields.get("SpeechResult", ""):
            assert root.xpath("/Response/Dial"), "a long text is still triaged"


# --- the simulator's call mode --------------------------------------------------------------------------------

def test_simulator_call_mode_shows_what_twilio_would_get(sms_client, sms_app):
    start = sms_client.post("/simulator/voice", json={"path": "/voice", "From": "+15550100999"}).get_json()
    assert start["twiml"].startswith("<?xml") and start["steps"][-1]["kind"] == "gather"
    says = [s for s in start["steps"] if s["kind"] == "say"]
    assert says[1] == {"kind": "say", "text": "Para español, oprima 2.", "language": "es-US",
                       "voice": "Polly.Lupe-Neural"}
    gather = start["steps"][-1]
    assert gather["keys"]["2"] == "Español" and gather["keys"]["0"] == "care team" and gather["speech"] is False
    sid = start["call_sid"]
    asked = sms_client.post("/simulator/voice", json={"path": gather["action"], "From": "+15550100999",
                                                      "CallSid": sid, "Digits": "1"}).get_json()
    listen = asked["steps"][-1]
    assert listen["speech"] is True and listen["language"] == "en-US"
    fever = sms_client.post("/simulator/voice", json={"path": listen["action"], "From": "+15550100999",
                                                      "CallSid": sid, "SpeechResult": "fever"}).get_json()
    assert [s["kind"] for s in fever["steps"]] == ["say", "dial"]
    assert fever["steps"][1]["number"] == DIALLED_CARE_TEAM
    assert "<Dial" in fever["twiml"]
    bad = sms_client.post("/simulator/voice", json={"path": "/elsewhere"})
    assert bad.status_code == 400


def test_simulator_call_mode_is_off_in_production(sms_app, sms_client):
    sms_app.config["SIMULATOR"] = False
    assert sms_client.post("/simulator/voice", json={"path": "/voice"}).status_code == 404


# --- texts from a call go out through the worker ------------------------------------------------------------

def test_the_worker_sends_a_callers_text_and_never_fails_it_over_to_staff(sms_client, sms_app, fake_twilio):
    from assistant import alerts

    call = Call(sms_client)
    choose(call, sms_app, "ht")
    call.press("5")
    fake_twilio.failures.append((400, 21211))  # Twilio refuses it for good (not a mobile number, say)
    assert alerts.run_once(sms_app) == 1
    assert fake_twilio.sent == []
    with db(sms_app) as session:
        (row,) = session.scalars(select(Alert)).all()
        assert row.status == "failed" and row.escalation_id is None  # and no row for an on-call number
    other = "+16175550177"
    call2 = Call(sms_client, caller=other)
    choose(call2, sms_app, "so")
    call2.press("5")
    assert alerts.run_once(sms_app) == 1
    (message,) = fake_twilio.sent
    summary = sms_app.extensions["assistant"].store.current.texts["so"]["topic:mab:summary"].string
    assert message["To"] == other and message["Body"].startswith(summary[:30])


def test_a_callers_text_is_not_sent_once_the_number_opts_out(sms_client, sms_app, fake_twilio):
    from assistant import alerts

    call = Call(sms_client)
    choose(call, sms_app, "so")
    call.press("5")
    assert count(sms_app, Alert, Alert.escalation_id.is_(None)) == 1
    text_sms(sms_client, "STOP")
    assert alerts.run_once(sms_app) == 1 and fake_twilio.sent == []
    with db(sms_app) as session:
        (row,) = session.scalars(select(Alert)).all()
        assert row.status == "failed" and "opted out" in row.error


# --- the load test's call mix ----------------------------------------------------------------------------------

def test_the_bench_voice_mix_covers_every_language_and_step_and_each_request_is_answered(database_url, fake_twilio,
                                                                                        tmp_path):
    """bench/load.py measures calls in every language, with the steps that wait for a text's commit."""
    import importlib.util
    from urllib.parse import parse_qs, urlsplit

    from .conftest import ROOT, close_app, make_sms_app

    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    requests = load.requests_for("/voice", 160, seed=7, symptom_share=0.125)
    langs = {parse_qs(urlsplit(step).query).get("lang", [""])[0] for step, _, _ in requests} - {""}
    assert langs == set(LOCALES)
    kinds = {urlsplit(step).path for step, _, _ in requests}
    assert kinds == {"/voice", "/voice/language", "/voice/answer", "/voice/pick", "/voice/after", "/voice/dial-status"}
    app = make_sms_app(database_url, fake_twilio, tmp_path, TWILIO_AUTH_TOKEN=load.TOKEN, PUBLIC_BASE_URL=load.PUBLIC)
    try:
        client = app.test_client()
        for step, body, headers in requests:
            response = client.post(step, data=body, headers=headers)
            assert response.status_code == 200, step
        assert count(app, Alert, Alert.escalation_id.is_(None)) > 0  # texts from calls: commits waited for
    finally:
        close_app(app)
