"""Twilio voice webhooks: ``POST /voice`` (a call comes in) and the steps its TwiML points to.

A thin layer over the conversation core and the inbox, like ``sms.py``: what a caller says goes through
:func:`inbox.handle` (triage first, the durable record, escalation and alerts, channel "voice"), and
the spoken answer comes from the core in its spoken mode. This module only turns answers into TwiML:
which voice says what, which keys do what, when to transfer and when to hang up.

The call's state travels in the action URLs Twilio posts back (signed with them): the language
(``lang``), the step number (``n``), the page or the choices of a keypad list, and how many times
silence was met (``try``). Each step is recorded under ``<CallSid>:<n>``; Twilio repeating a request
repeats its step id, so a repeated request escalates, alerts and texts once.

Keys: ``0`` always reaches the care team; ``*`` repeats; ``9`` is "more" in lists longer than a page;
``8`` is the language menu from the first question and the lists of topics (seven a page); no menu
offers more than nine choices.
"""

from __future__ import annotations

import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import zip_longest
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, abort, current_app, jsonify, request, send_from_directory
from twilio.twiml.voice_response import Gather, VoiceResponse

from . import inbox
from .alerts import callback_number
from .catalog import SOURCE_LOCALE, Catalog
from .config import ROOT
from .conversation import Assistant, State, last_resort
from .direction import for_locale
from .logs import mask_phone
from .segments import smart_encode
from .voicetable import LANGUAGE_DIGIT, MORE_DIGIT, VoiceLocale, voice_table
from .webhooks import twilio_signed

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__)

PAGE = 7  # topics a keypad list says at once; 8 is the language menu and 9 says the rest
GATHER_TIMEOUT = 6  # seconds of silence after the prompt before Twilio calls the action without input
DIAL_TIMEOUT = 25  # seconds the care team's phone rings before the call counts as not answered
MAX_SPEECH = 2000  # characters of a SpeechResult read (Twilio's are a sentence or two)
MAX_HINTS = 500  # Twilio's limit on <Gather hints> entries (each at most 100 characters)
ANSWERED = ("completed", "answered")
NUMBER_TEXTS = ("voice:goodbye", "voice:no_answer")  # the ways out of a call: never without the number
TEXTABLE = re.compile(r"\+[1-9]\d{7,14}")  # E.164 (hidden numbers: alerts.callback_number)


# -- one turn of the call: the TwiML, and what a person reading it should know ------------------------

@dataclass
class Turn:
    """The TwiML of one answer, built verb by verb, with the keys each <Gather> offers (for the
    simulator) and what was said (for the call's record)."""

    speaker: Speaker | None
    response: VoiceResponse = field(default_factory=VoiceResponse)
    keys: list[dict[str, str]] = field(default_factory=list)  # one per <Gather>, in order
    said: list[str] = field(default_factory=list)
    _target: VoiceResponse | Gather | None = None

    @property
    def target(self) -> VoiceResponse | Gather:
        return self._target if self._target is not None else self.response

    def say(self, locale: str, text: str, key: str | None = None, times: int = 1, *, lang: str | None = None) -> None:
        """Say ``text`` with the voice of ``lang``, the language it is written in (``locale``, the call's, by
        default), or play the coordinator's recording of ``key`` in ``locale`` if there is one. Empty text
        says nothing."""
        if not text:
            return
        row = self.speaker.row(lang or locale)
        recording = self.speaker.recording(locale, key) if key else None
        for _ in range(times):
            if recording:
                self.target.play(recording)
            else:
                for chunk in _chunks(text, row.say_limit):
                    self.target.say(chunk, voice=row.voice, language=row.say_language)
            self.said.append(text)

    def say_pieces(self, pieces: Sequence[tuple[str, str]], times: int = 1) -> None:
        """An answer made of (language, text) pieces, each in its own language's voice (one <Say> per run
        of pieces in the same language)."""
        runs: list[tuple[str, str]] = []
        for lang, text in pieces:
            if not text:
                continue
            if runs and runs[-1][0] == lang:
                runs[-1] = (lang, f"{runs[-1][1]} {text}")
            else:
                runs.append((lang, text))
        for _ in range(times):
            for lang, text in runs:
                self.say(lang, text)

    def prompt(self, locale: str, key: str, **extra: str) -> None:
        """Say the catalog text ``key``, in the voice of the language it is written in. One that cannot be
        made inside a <Gather> raises :class:`Unsayable`: a menu with a line missing could leave the caller
        in silence (the step then says the number)."""
        self.line(locale, key, *self.speaker.line(locale, key, **extra))

    def line(self, locale: str, key: str, text: str, lang: str) -> None:
        """Say a text made for ``key`` (see :meth:`prompt`) in the voice of ``lang``."""
        if not text and isinstance(self._target, Gather) and not self.speaker.recording(locale, key):
            raise Unsayable(key)
        self.say(locale, text, key, lang=lang)

    def gather(self, action: str, locale: str | None = None, *, speech: bool = False) -> None:
        """Open a <Gather>: the verbs that follow are said while it listens. Keypad only unless ``speech``
        (then in the locale's speech language, with its keywords as hints)."""
        attrs = {"action": action, "method": "POST", "timeout": GATHER_TIMEOUT, "num_digits": 1,
                 "action_on_empty_result": True}
        if speech and locale:
            row = self.speaker.row(locale)
            attrs.update(input="dtmf speech", language=row.speech, speech_timeout="auto",
                         hints=self.speaker.hints(locale))
        else:
            attrs["input"] = "dtmf"
        self._target = self.response.gather(**attrs)
        self.keys.append({})

    def key(self, digit: str | int, meaning: str) -> None:
        self.keys[-1][str(digit)] = meaning

    def dial(self, number: str, action: str) -> None:
        self._target = None
        self.response.dial(number, action=action, method="POST", timeout=DIAL_TIMEOUT)

    def hangup(self) -> None:
        self._target = None
        self.response.hangup()

    def twiml(self) -> str:
        return str(self.response)


class Unsayable(Exception):
    """A menu's line could not be made (the catalog failed): the step says the care-team number instead."""


def _chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces a <Say> takes, cut between sentences."""
    if len(text) <= limit:
        return [text]
    out, current = [], ""
    for sentence in re.split(r"(?<=[.!?。！？؟])\s*", text):
        if current and len(current) + 1 + len(sentence) > limit:
            out.append(current)
            current = ""
        while len(sentence) > limit:  # one sentence longer than a <Say>: cut it where it must be
            out.append(sentence[:limit])
            sentence = sentence[limit:]
        current = f"{current} {sentence}".strip()
    return [*out, current] if current else out


# -- what the call knows ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One request of a call: the step's URL (path and query) and Twilio's fields."""

    path: str
    args: Mapping[str, str]
    form: Mapping[str, str]

    @cached_property
    def call_sid(self) -> str:  # one made-up id for a request without one (a hand-made test)
        return self.form.get("CallSid") or f"local-{uuid.uuid4().hex}"

    @property
    def phone(self) -> str:
        return self.form.get("From") or ""

    def number(self, name: str, default: int = 0, top: int = 999) -> int:
        try:
            return min(max(int(self.args.get(name, default)), 0), top)
        except (TypeError, ValueError):
            return default

    @property
    def n(self) -> int:
        return self.number("n", 0, 99_999)

    @property
    def tries(self) -> int:
        return self.number("try", 0, 1)

    @property
    def digits(self) -> str:
        # A menu takes one key; anything longer or stranger is a wrong key, never an error.
        return (self.form.get("Digits") or "").strip()[:32]

    @property
    def speech(self) -> str:
        return (self.form.get("SpeechResult") or "").strip()[:MAX_SPEECH]


class Speaker:
    """The catalog, the language table and the recordings, as one call step sees them."""

    def __init__(self, app, step: Step) -> None:
        self.app = app
        self.step = step
        self.recorded = False  # the step's record is written (with the answer or the language)
        self.known: str | None = None  # the language a known caller's call goes on in
        self.assistant: Assistant = app.extensions["assistant"]
        self.catalog: Catalog = self.assistant.store.current
        self.table = voice_table(self.catalog)
        self.default = self.assistant.settings.default_locale if self.assistant.settings.default_locale in self.table \
            else next(iter(self.table), "en")

    @property
    def callback(self) -> str | None:
        """The caller's number, None when hidden: then no language is looked up or remembered for it (it
        is shared by every hidden caller) and no text is sent."""
        return callback_number(self.step.phone)

    def locale(self) -> str:
        lang = self.known or self.step.args.get("lang", "")
        return lang if lang in self.table else self.default

    def row(self, locale: str) -> VoiceLocale:
        return self.table.get(locale) or self.table[self.default]

    def handle(self, text: str, locale: str, menu: tuple[str, ...] = ()) -> inbox.Outcome:
        """The caller's words (or a key in a list) through the inbox and the core, as a text would go."""
        self.recorded = True
        return inbox.handle(self.app, _sid(self.step), self.step.phone, text,
                            call=State(locale, True, menu=menu))

    def text(self, locale: str, key: str, **extra: str) -> str:
        """:meth:`line` without its language."""
        return self.line(locale, key, **extra)[0]

    def line(self, locale: str, key: str, **extra: str) -> tuple[str, str]:
        """A spoken catalog text (numbers said digit by digit) and the language it is written in (English
        where the language's own cannot be served). One that must give the care-team number gives it
        even when the catalog cannot be read (the core's last-resort words)."""
        text, lang = self.assistant.spoken.text_in(locale, key, **extra)
        if not text and key in NUMBER_TEXTS:
            return last_resort("none", self.assistant.settings, spoken=True), SOURCE_LOCALE
        return text, lang

    def common(self, locale: str, keys: Sequence[str]) -> str:
        """The language a line made of the texts ``keys`` is said in: the call's if each of them is served
        in it, else English for all (never a sentence of one language naming things in another)."""
        spoken = self.assistant.spoken
        return locale if all(spoken.language_of(locale, k) == locale for k in keys) else SOURCE_LOCALE

    def option(self, locale: str, topic: str, digit: int | str) -> tuple[str, str]:
        """"For Fever, press 3.": the line and its title in one language."""
        lang = self.common(locale, ("voice:option", f"topic:{topic}:title"))
        return self.line(lang, "voice:option", label=self.text(lang, f"topic:{topic}:title"), digit=str(digit))

    def sms_text(self, locale: str, key: str) -> str:
        return self.assistant.text(locale, key)

    def hints(self, locale: str) -> str:
        return _hints(self.catalog, locale)

    def recording(self, locale: str, key: str) -> str | None:
        name = recording_name(key)
        if name not in _recordings(recordings_dir(self.app), locale):
            return None
        return self.url(f"/voice/recordings/{locale}/{name}")

    def url(self, path: str, **params: str | int) -> str:
        """An absolute URL of this app as Twilio reaches it (PUBLIC_BASE_URL behind a proxy), so that the
        signature Twilio sends with its request is over the same URL the app rebuilds."""
        base = (self.app.config.get("PUBLIC_BASE_URL") or request.url_root).rstrip("/")
        query = urlencode(sorted((k, str(v)) for k, v in params.items()))
        return f"{base}{path}" + (f"?{query}" if query else "")

    def action(self, path: str, locale: str | None, **params: str | int) -> str:
        """The URL of the next step: the language and the step number travel with it."""
        if locale:
            params["lang"] = locale
        return self.url(path, n=self.step.n + 1, **params)


_HINTS: dict[tuple[int, str], tuple[Catalog, str]] = {}


def _hints(catalog: Catalog, locale: str) -> str:
    """The locale's keywords and symptom phrases (no patterns), for the speech recognizer: made once per
    catalog and language (a published catalog is a new object)."""
    cached = _HINTS.get((id(catalog), locale))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    if len(_HINTS) > 64:
        _HINTS.clear()
    # Twilio takes 500 hints: each symptom rule and topic gets its first words in before any gets more
    # (the lists start with the main words: "fiebre", "no puede respirar"), symptoms first.
    lists = [[i for i in items if "*" not in i and "..." not in i and len(i) <= 100]
             for prefix in ("rule:", "topic:") for ctx, items in catalog.lists.get(locale, {}).items()
             if ctx.startswith(prefix)]
    words = [w for row in zip_longest(*lists) for w in row if w]
    words += [catalog.text(locale, f"topic:{t.id}:title") for t in catalog.source.topics]
    unique = list(dict.fromkeys(w.replace(",", " ").strip() for w in words if w.strip()))
    hints = ", ".join(unique[:MAX_HINTS])
    _HINTS[(id(catalog), locale)] = (catalog, hints)
    return hints


def recordings_dir(app) -> Path:
    return Path(app.config.get("VOICE_RECORDINGS_DIR") or ROOT / "recordings")


def recording_name(key: str) -> str:
    """The file a coordinator records for a text: ``voice:welcome`` -> ``voice.welcome.mp3``."""
    return key.replace(":", ".") + ".mp3"


def _recordings(folder: Path, locale: str) -> frozenset[str]:
    """The recordings of one language (read again when its folder changes)."""
    path = folder / locale
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return frozenset()
    return _listing(str(path), stamp)


@lru_cache(maxsize=64)
def _listing(path: str, _stamp: int) -> frozenset[str]:
    return frozenset(p.name for p in Path(path).glob("*.mp3"))


# -- the steps -------------------------------------------------------------------------------------------

def start(sp: Speaker) -> Turn:
    """A call comes in: a caller whose number has a language goes straight on in it."""
    turn = Turn(sp)
    known = inbox.sender_state(sp.app, sp.step.phone) if sp.callback else None
    if known and known.locale in sp.table:
        sp.known = known.locale
        ask(sp, turn, known.locale, welcome=True)
    else:
        language_menu(sp, turn, page=1)
    return turn


def language_menu(sp: Speaker, turn: Turn, page: int, tries: int = 0) -> None:
    """Each language offers itself in its own words and voice; 9 on the first page says the others. A
    language whose own line cannot be served (not reviewed) is named in its own voice, then offered in
    English ("For Spanish, press 2."): never "For English" on another language's key."""
    turn.gather(sp.action("/voice/language", None, page=page, **{"try": tries}))
    rows = sorted((r for r in sp.table.values() if r.page == page), key=lambda r: r.digit)
    for row in rows:
        text, lang = sp.line(row.code, "voice:language.option", digit=str(row.digit))
        if lang != row.code or not text:
            turn.say(row.code, sp.catalog.language_name(row.code))
            text, lang = sp.line(SOURCE_LOCALE, "voice:option", label=english_name(row.code), digit=str(row.digit))
        turn.line(row.code, "voice:language.option", text, lang)
        turn.key(row.digit, sp.catalog.language_name(row.code))
    later = [r for r in sp.table.values() if r.page > page]
    if later:
        said: set[tuple[str, str]] = set()
        for row in sorted(later, key=lambda r: (r.page, r.digit)):
            text, lang = sp.line(row.code, "voice:language.more", digit=str(MORE_DIGIT))
            if (text, lang) not in said:  # the English line once, for all that fell back to it
                said.add((text, lang))
                turn.line(row.code, "voice:language.more", text, lang)
        turn.key(MORE_DIGIT, "more languages")
    # 0 and *, once, in the service's language: in every language it would double the menu's length.
    turn.prompt(sp.default, "voice:menu.end")
    turn.key(0, "care team")
    turn.key("*", "repeat")


def language_key(sp: Speaker, turn: Turn, locale: str) -> None:
    """"For another language, press 8", in the call's language and in English: a caller whose language was
    remembered or guessed from a text may not understand it."""
    said = sp.line(locale, "voice:language.key", digit=str(LANGUAGE_DIGIT))
    turn.line(locale, "voice:language.key", *said)
    english = sp.line(SOURCE_LOCALE, "voice:language.key", digit=str(LANGUAGE_DIGIT))
    if english != said:
        turn.line(SOURCE_LOCALE, "voice:language.key", *english)
    turn.key(LANGUAGE_DIGIT, "languages")


def on_language(sp: Speaker) -> Turn:
    step, turn = sp.step, Turn(sp)
    page = sp.step.number("page", 1, 2) or 1
    digit = step.digits
    chosen = next((r.code for r in sp.table.values() if r.page == page and str(r.digit) == digit), None)
    if chosen:
        sp.recorded = True
        inbox.record_step(sp.app, _sid(step), step.phone, chosen, "language", None,
                          language=chosen if sp.callback else None)
        ask(sp, turn, chosen, welcome=True)
        return turn
    if digit == "0":
        return transfer(sp, turn, sp.default)
    if digit == str(MORE_DIGIT) and any(r.page > page for r in sp.table.values()):
        language_menu(sp, turn, page + 1)
    elif digit == "*":
        language_menu(sp, turn, page)
    elif not digit:
        if step.tries:
            return goodbye(sp, turn, sp.default, no_input=True)
        language_menu(sp, turn, page, tries=1)  # silence: the menu once more
    else:  # a wrong key: the menu again, in every language (no sentence in one language before it)
        language_menu(sp, turn, page)
    return turn


def ask(sp: Speaker, turn: Turn, locale: str, *, welcome: bool = False, tries: int = 0,
        before: tuple[str, ...] = ()) -> None:
    """Say what worries you, or press a key. Keypad-only languages get the list of topics instead."""
    if sp.row(locale).keypad_only:
        topic_menu(sp, turn, locale, 1, welcome=welcome, before=before, tries=tries)
        return
    turn.gather(sp.action("/voice/answer", locale, **{"try": tries}), locale, speech=True)
    for key in before:
        turn.prompt(locale, key)
    if welcome:
        turn.prompt(locale, "voice:welcome")
    turn.prompt(locale, "voice:ask")
    turn.key(1, "topics")
    language_key(sp, turn, locale)
    turn.key(0, "care team")
    turn.key("*", "repeat")


def on_answer(sp: Speaker) -> Turn:
    """What the caller said (speech) or pressed after "what worries you"."""
    step, turn, locale = sp.step, Turn(sp), sp.locale()
    if step.speech:
        outcome = sp.handle(step.speech, locale)
        return speak(sp, turn, locale, outcome)
    if step.digits == "1":
        topic_menu(sp, turn, locale, 1)
    elif step.digits == str(LANGUAGE_DIGIT):
        language_menu(sp, turn, 1)
    elif step.digits == "0":
        return transfer(sp, turn, locale)
    elif step.digits == "*":
        ask(sp, turn, locale)
    elif step.digits:
        ask(sp, turn, locale, before=("voice:wrong_key",))
    elif step.tries:
        return goodbye(sp, turn, locale, no_input=True)
    else:
        ask(sp, turn, locale, tries=1, before=("voice:no_input",))
    return turn


def topic_menu(sp: Speaker, turn: Turn, locale: str, page: int, *, welcome: bool = False, tries: int = 0,
               before: tuple[str, ...] = ()) -> None:
    """A page of the list of topics (seven at most; 8 is the language menu, 9 says the next page)."""
    keypad_list(sp, turn, locale, _page(sp.catalog, page), {"page": page}, more=bool(_page(sp.catalog, page + 1)),
                welcome=welcome, tries=tries, before=before, languages=True)


def keypad_list(sp: Speaker, turn: Turn, locale: str, topics: list[str], params: dict[str, str | int], *,
                more: bool = False, welcome: bool = False, tries: int = 0, before: tuple[str, ...] = (),
                question: bool = False, languages: bool = False) -> None:
    """Topics to pick by key (``question``: the choices of "did you mean"; ``languages``: 8 offers the
    language menu)."""
    turn.gather(sp.action("/voice/pick", locale, **params, **{"try": tries}))
    for key in before:
        turn.prompt(locale, key)
    if welcome:
        turn.prompt(locale, "voice:welcome")
    if question:  # "Did you mean: For X, press 1. For Y, press 2.", all in one language
        lang = sp.common(locale, ("voice:did_you_mean", "voice:option", *(f"topic:{t}:title" for t in topics)))
        items = " ".join(sp.option(lang, t, i)[0] for i, t in enumerate(topics, 1))
        turn.line(locale, "voice:did_you_mean", *sp.line(lang, "voice:did_you_mean", items=items))
    for i, topic in enumerate(topics, 1):
        if not question:
            turn.line(locale, "voice:option", *sp.option(locale, topic, i))
        turn.key(i, sp.text(locale, f"topic:{topic}:title"))
    if languages:
        language_key(sp, turn, locale)
    if more:
        turn.prompt(locale, "voice:menu.more", digit=str(MORE_DIGIT))
        turn.key(MORE_DIGIT, "more topics")
    turn.prompt(locale, "voice:menu.end")
    turn.key(0, "care team")
    turn.key("*", "repeat")


def _page(catalog: Catalog, page: int) -> list[str]:
    topics = [t.id for t in catalog.source.topics]
    return topics[(page - 1) * PAGE: page * PAGE] if page >= 1 else []


def _choices(sp: Speaker, options: list[str]) -> dict[str, str]:
    """The URL parameter naming a list of choices: their places in the catalog ("3.7")."""
    index = [t.id for t in sp.catalog.source.topics]
    return {"o": ".".join(str(index.index(t)) for t in options)}


def on_pick(sp: Speaker) -> Turn:
    """A key in a list of topics (a page of the menu, or the choices of "did you mean")."""
    step, turn, locale = sp.step, Turn(sp), sp.locale()
    page = step.number("page", 1, 99) or 1
    options = _options(sp.catalog, step.args.get("o")) if "o" in step.args else _page(sp.catalog, page)

    def again(tries: int = 0, before: tuple[str, ...] = ()) -> None:
        if "o" in step.args:
            keypad_list(sp, turn, locale, options, _choices(sp, options), tries=tries, before=before)
        else:
            topic_menu(sp, turn, locale, page, tries=tries, before=before)

    digit = step.digits
    if digit.isdigit() and len(digit) == 1 and 1 <= int(digit) <= len(options):
        # The choice goes through the core like a texted number after MENU: the same answer.
        outcome = sp.handle(digit, locale, tuple(f"topic:{t}" for t in options))
        return speak(sp, turn, locale, outcome)
    if digit == "0":
        return transfer(sp, turn, locale)
    if digit == str(MORE_DIGIT) and "o" not in step.args and _page(sp.catalog, page + 1):
        topic_menu(sp, turn, locale, page + 1)
    elif digit == str(LANGUAGE_DIGIT) and "o" not in step.args:
        language_menu(sp, turn, 1)
    elif digit == "*":
        again()
    elif digit:
        again(before=("voice:wrong_key",))
    elif step.tries:
        return goodbye(sp, turn, locale, no_input=True)
    else:
        again(tries=1, before=("voice:no_input",))
    return turn


def _options(catalog: Catalog, value: str | None) -> list[str]:
    topics = [t.id for t in catalog.source.topics]
    out = []
    for part in (value or "").split(".")[:PAGE]:
        if part.isdigit() and int(part) < len(topics):
            out.append(topics[int(part)])
    return out


def speak(sp: Speaker, turn: Turn, locale: str, outcome: inbox.Outcome) -> Turn:
    """The core's answer, said: an emergency ends the call, call_now transfers, a topic offers more."""
    said_in = outcome.locale if outcome.locale in sp.table else locale
    # Each part in the voice of the language it is written in (a part that fell back is English).
    pieces = outcome.pieces or ((said_in, outcome.text or ""),)
    if not outcome.text and (outcome.failed or outcome.level in ("emergency", "call_now")):
        pieces = ((SOURCE_LOCALE, last_resort(outcome.level, sp.assistant.settings, spoken=True)),)
    if outcome.failed and outcome.level not in ("emergency", "call_now"):
        # Handling failed and nothing escalated: the last-resort words (the care-team number), then the end.
        turn.say_pieces(pieces)
        turn.hangup()
        return turn
    if outcome.level == "emergency":
        # First words: hang up and call the emergency number now. Twice, then the call ends; never
        # dialled from here (Twilio would give the emergency service no location).
        turn.say_pieces(pieces, times=2)
        turn.hangup()
        return turn
    if outcome.level == "call_now":
        turn.say_pieces(pieces)
        turn.dial(dialable(sp.assistant.settings.care_team_phone), sp.action("/voice/dial-status", locale))
        return turn
    topic = outcome.topic
    if topic in sp.catalog.topics:
        if sp.row(locale).keypad_only:
            key = f"topic:{topic}:summary"
            if sp.recording(locale, key):
                turn.say(locale, outcome.text or "", key)
            else:
                text_answer(sp, turn, locale, topic)
        else:
            turn.say_pieces(pieces)
        after(sp, turn, locale, topic)
        return turn
    options = [m.split(":", 1)[1] for m in outcome.menu if m.startswith("topic:")][:PAGE]
    if topic is None and options and outcome.text:  # "did you mean": the choices, each with its key
        keypad_list(sp, turn, locale, options, _choices(sp, options), question=True)
        return turn
    if topic == "language" and outcome.locale in sp.table and outcome.locale != locale:
        # "Español" said on an English call: the call goes on in Spanish, and the number keeps it.
        inbox.record_step(sp.app, _sid(sp.step, "language"), sp.step.phone, outcome.locale, "language", None,
                          language=outcome.locale if sp.callback else None)
        ask(sp, turn, outcome.locale)
    elif topic == "language":
        language_menu(sp, turn, 1)
    elif topic == "menu":
        topic_menu(sp, turn, locale, 1)
    else:  # nothing matched (or a text-only command such as STOP): say so, offer the keypad list
        topic_menu(sp, turn, locale, 1, before=("voice:not_understood",))
    return turn


def after(sp: Speaker, turn: Turn, locale: str, topic: str, tries: int = 0, before: tuple[str, ...] = ()) -> None:
    index = [t.id for t in sp.catalog.source.topics].index(topic)
    turn.gather(sp.action("/voice/after", locale, t=index, **{"try": tries}))
    for key in before:
        turn.prompt(locale, key)
    if sp.row(locale).keypad_only:
        turn.prompt(locale, "voice:after.keypad")
    else:
        turn.prompt(locale, "voice:after")
        turn.key(1, "repeat")
        turn.key(3, "as a text message")
    turn.key(2, "topics")
    turn.key(0, "care team")
    turn.key("*", "repeat" if not sp.row(locale).keypad_only else "repeat the choices")


def on_after(sp: Speaker) -> Turn:
    step, turn, locale = sp.step, Turn(sp), sp.locale()
    options = _options(sp.catalog, step.args.get("t"))
    if not options:
        topic_menu(sp, turn, locale, 1)
        return turn
    topic, digit = options[0], step.digits
    keypad = sp.row(locale).keypad_only
    if digit == "1" and not keypad:
        outcome = sp.handle("1", locale, (f"topic:{topic}",))
        return speak(sp, turn, locale, outcome)
    if digit == "2":
        topic_menu(sp, turn, locale, 1)
    elif digit == "3" and not keypad:
        text_answer(sp, turn, locale, topic)
        after(sp, turn, locale, topic)
    elif digit == "0":
        return transfer(sp, turn, locale)
    elif digit == "*":
        after(sp, turn, locale, topic)
    elif digit:
        after(sp, turn, locale, topic, before=("voice:wrong_key",))
    elif step.tries:
        return goodbye(sp, turn, locale, no_input=True)
    else:
        after(sp, turn, locale, topic, tries=1, before=("voice:no_input",))
    return turn


def text_answer(sp: Speaker, turn: Turn, locale: str, topic: str) -> None:
    """The topic's answer as a text message in the caller's language: the core's SMS answer, whole (a
    caller has no MORE to ask for)."""
    reply = sp.assistant.uncut.reply("1", State(locale, True, menu=(f"topic:{topic}",)), lang=locale)
    send_text(sp, turn, locale, "text", reply.text or "")


def with_care_team(sp: Speaker, locale: str, body: str) -> str:
    """``body`` ending with the care-team number, in the caller's language, unless it gives it already."""
    number = sp.assistant.settings.care_team_phone
    if not body or number in body:
        return body
    line = sp.sms_text(locale, "text:care_team") or number
    return for_locale(smart_encode(f"{body} {line}"), locale)


def send_text(sp: Speaker, turn: Turn, locale: str, step_name: str, body: str) -> bool:
    """Queue a text to the caller (the outbox, sent by the worker), with the care-team number, and say
    whether it was. A number that opted out of texts, or a hidden one, gets none."""
    body = with_care_team(sp, locale, body)
    phone = sp.step.phone
    textable = bool(sp.callback and TEXTABLE.fullmatch(phone))
    known = inbox.sender_state(sp.app, phone) if textable else None
    if not body or not textable or (known is not None and known.opted_out):
        turn.prompt(locale, "voice:not_texted")
        inbox.record_step(sp.app, _sid(sp.step, step_name), phone, locale, f"{step_name}:refused", None)
        return False
    inbox.record_step(sp.app, _sid(sp.step, step_name), phone, locale, step_name, body, texts=((phone, body),))
    turn.prompt(locale, "voice:texted")
    return True


def transfer(sp: Speaker, turn: Turn, locale: str) -> Turn:
    """0: the care team on the line."""
    turn.prompt(locale, "voice:transfer")
    turn.dial(dialable(sp.assistant.settings.care_team_phone), sp.action("/voice/dial-status", locale))
    return turn


@lru_cache(maxsize=32)
def english_name(code: str) -> str:
    """The language's name in English ("Spanish"), for the English line that offers it."""
    from babel import Locale, UnknownLocaleError

    try:
        loc = Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return code
    name = loc.get_language_name("en") or code
    return f"{name} ({loc.get_script_name('en')})" if loc.script else name


@lru_cache(maxsize=8)
def dialable(number: str) -> str:
    """CARE_TEAM_PHONE as Twilio dials it (E.164: "+16175550142"); as written if it cannot be read."""
    import phonenumbers

    try:
        return phonenumbers.format_number(phonenumbers.parse(number, "US"), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return number


def on_dial_status(sp: Speaker) -> Turn:
    """The transfer ended: answered (then goodbye), or not (the number, twice, slowly, and by text)."""
    step, turn, locale = sp.step, Turn(sp), sp.locale()
    status = (step.form.get("DialCallStatus") or "").strip().lower()
    if status in ANSWERED:
        return goodbye(sp, turn, locale)
    turn.prompt(locale, "voice:no_answer")
    send_text(sp, turn, locale, "care_team_number", sp.sms_text(locale, "text:escalation.call_now"))
    turn.hangup()
    return turn


def goodbye(sp: Speaker, turn: Turn, locale: str, no_input: bool = False) -> Turn:
    """Every way out of a call says the care-team number."""
    if no_input:
        turn.prompt(locale, "voice:no_input")
    turn.prompt(locale, "voice:goodbye")
    turn.hangup()
    return turn


def _sid(step: Step, suffix: str = "") -> str:
    """The step's record id: the call and the step number (Twilio repeats both when it retries)."""
    return f"{step.call_sid}:{step.n}" + (f":{suffix}" if suffix else "")


STEPS: dict[str, Callable[[Speaker], Turn]] = {
    "/voice": start, "/voice/language": on_language, "/voice/answer": on_answer, "/voice/pick": on_pick,
    "/voice/after": on_after, "/voice/dial-status": on_dial_status,
}


def run(app, step: Step) -> Turn:
    """One step of a call. Never raises: whatever fails, the caller hears the care-team number."""
    sp: Speaker | None = None
    try:
        sp = Speaker(app, step)
        turn = STEPS[step.path](sp)
    except Exception:
        log.exception("voice step failed; the care-team number is said", extra={
            "event": "voice.error", "path": step.path, "phone": mask_phone(step.phone)})
        turn = _last_resort(app, sp)
    # Never the words: a SpeechResult is health information.
    log.info("voice step", extra={"event": "voice", "path": step.path, "n": step.n, "phone": mask_phone(step.phone),
                                  "sid": step.form.get("CallSid", ""), "speech": bool(step.speech),
                                  "digits": len(step.digits)})
    if sp is not None and not sp.recorded:
        # The call's steps, kept like texts: what was pressed, what was said back, in which language.
        name = "call" if step.path == "/voice" else step.path.rsplit("/", 1)[-1]
        pressed = step.digits[:1] if step.digits[:1] in "0123456789*#" else "?"
        inbox.record_step(app, _sid(step), step.phone, sp.locale(), f"{name}:{pressed}" if step.digits else name,
                          " ".join(turn.said))
    return turn


def _last_resort(app, sp: Speaker | None) -> Turn:
    turn = Turn(None)
    text = last_resort("none", app.extensions["assistant"].settings, spoken=True)
    turn.response.say(text, voice="Polly.Joanna-Neural", language="en-US")
    turn.response.hangup()
    turn.said.append(text)
    return turn


# -- the webhooks ----------------------------------------------------------------------------------------

def _twiml(turn: Turn) -> Response:
    return Response(turn.twiml(), mimetype="text/xml")


def _webhook() -> Response:
    step = Step(request.path, request.args.to_dict(), request.form.to_dict())
    return _twiml(run(current_app._get_current_object(), step))


for _path, _fn in STEPS.items():
    bp.add_url_rule(_path, f"step_{_fn.__name__}", twilio_signed(_webhook), methods=["POST"])


@bp.get("/voice/recordings/<locale>/<name>")
def recording(locale: str, name: str):
    """A coordinator's recording, for <Play> (prompt audio: no health information, not signed)."""
    if not re.fullmatch(r"[A-Za-z_]{2,16}", locale) or not re.fullmatch(r"[\w.-]{1,120}\.mp3", name):
        abort(404)
    return send_from_directory(recordings_dir(current_app) / locale, name, mimetype="audio/mpeg")


# -- the simulator's call mode ---------------------------------------------------------------------------

@bp.post("/simulator/voice")
def simulator_voice():
    """One step of a call, as Twilio would post it, without a signature (only with SIMULATOR on).

    Request JSON: ``path`` (``"/voice"`` to start a call, then the ``action`` of the last ``gather`` or
    ``dial`` step, query string included), ``From``, ``CallSid``, and ``Digits`` (a key), ``SpeechResult``
    (words standing in for speech) or ``DialCallStatus`` (``completed`` or ``no-answer``: the transfer's
    outcome) as the step needs.

    Response JSON: ``twiml``, the very TwiML Twilio would get, and ``steps``, that TwiML in order:

    - ``{"kind": "say", "text", "language", "voice"}``: said (verbs inside a Gather come before it);
    - ``{"kind": "play", "url"}``: a coordinator's recording;
    - ``{"kind": "gather", "input", "language", "keys": {"1": "topics", "0": "care team", ...}, "action",
      "speech": true|false}``: the call listens; post its ``action`` as the next ``path`` with ``Digits``
      or ``SpeechResult`` (or neither: silence);
    - ``{"kind": "dial", "number", "action"}``: transferred to the care team; post ``action`` with a
      ``DialCallStatus``;
    - ``{"kind": "hangup"}``: the call ends.
    """
    if not current_app.config.get("SIMULATOR"):
        abort(404)
    data = request.get_json(silent=True) or {}
    raw_path = str(data.get("path") or "/voice")
    path, _, query = raw_path.partition("?")
    if "://" in path:  # a full action URL: keep its path
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if path not in STEPS:
        return jsonify({"error": f"path must be one of {', '.join(STEPS)}"}), 400
    phone = str(data.get("From") or "+15550100000")[:40]
    from .simulator import PHONE_ERROR, valid_phone

    if not valid_phone(phone):
        return jsonify({"error": PHONE_ERROR}), 400
    form = {"CallSid": str(data.get("CallSid") or f"SIMCA{uuid.uuid4().hex}")[:64], "From": phone,
            "To": "+15550100001", "CallStatus": "in-progress", "Direction": "inbound"}
    for name in ("Digits", "SpeechResult", "DialCallStatus"):
        if data.get(name) is not None:
            form[name] = str(data[name])
    step = Step(path, dict(parse_qsl(query)), form)
    turn = run(current_app._get_current_object(), step)
    twiml = turn.twiml()
    return jsonify({"twiml": twiml, "steps": steps_of(twiml, turn.keys), "call_sid": form["CallSid"]})


def steps_of(twiml: str, keys: list[dict[str, str]] | None = None) -> list[dict]:
    """The verbs of ``twiml`` in the order Twilio runs them (see :func:`simulator_voice`)."""
    keys = list(keys or [])
    out: list[dict] = []

    def verb(el: ET.Element) -> dict | None:
        if el.tag == "Say":
            return {"kind": "say", "text": el.text or "", "language": el.get("language"), "voice": el.get("voice")}
        if el.tag == "Play":
            return {"kind": "play", "url": el.text or ""}
        if el.tag == "Dial":
            return {"kind": "dial", "number": (el.text or "").strip(), "action": el.get("action"),
                    "timeout": el.get("timeout")}
        if el.tag == "Hangup":
            return {"kind": "hangup"}
        return None

    for el in ET.fromstring(twiml):
        if el.tag == "Gather":
            out += [v for child in el if (v := verb(child))]
            out.append({"kind": "gather", "input": el.get("input"), "language": el.get("language"),
                        "speech": "speech" in (el.get("input") or ""), "action": el.get("action"),
                        "keys": keys.pop(0) if keys else {}})
        elif (v := verb(el)) is not None:
            out.append(v)
    return out


__all__ = ["bp", "run", "steps_of"]
