"""The conversation core: one text in, one reply out, the same for SMS, voice and the command line.

Order matters and is fixed: symptom triage first, then commands, then numbered choices, then topics.
Whatever fails, the caregiver gets an answer with the care-team number (:meth:`Assistant.reply`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from babel.numbers import format_decimal

from .catalog import SOURCE_LOCALE, TONE_LOCALES, Catalog, CatalogStore
from .config import Settings
from .direction import for_locale
from .language import choose, drop_mistoned, drop_unlikely_typos, language_by_name
from .matching import Hit
from .normalize import BREAK, accented_tokens, tokens
from .segments import fit, measure, smart_encode
from .triage import Finding, assess, drop_not_symptoms

log = logging.getLogger(__name__)
LOW_TEMPERATURE = "triage.low_temperature"
_TONED = frozenset(TONE_LOCALES)
MAX_TEXT_CHARS = 20_000  # read this much of a text (Twilio stops at 1600; the web form may send more)

# Last-resort wording when the catalog itself cannot be used. English only, by design: it is sent
# only when the reviewed templates could not be read at all.
LAST_RESORT = {
    "emergency": "CALL {emergency} NOW. This may be an emergency. Then call the care team: {care_team}.",
    "call_now": "CALL YOUR CARE TEAM NOW: {care_team}. Day or night, do not wait.",
    "none": "Sorry, something went wrong. If your child is unwell, call the care team: {care_team}. "
            "Emergency: {emergency}.",
}


def last_resort(level: str, settings: Settings, *, spoken: bool = False) -> str:
    """The last-resort words for ``level`` (emergency, call_now, else none) with the numbers; ``spoken``:
    for a call, the numbers said digit by digit."""
    number = spell_digits if spoken else str
    return LAST_RESORT.get(level, LAST_RESORT["none"]).format(care_team=number(settings.care_team_phone),
                                                               emergency=number(settings.emergency_number))


class Rendered(str):
    """A catalog text with its placeholders filled, and the language it is written in (English when the
    language's own could not be served): a call says each piece in that language's voice."""

    locale: str

    def __new__(cls, text: str, locale: str) -> Rendered:
        self = super().__new__(cls, text)
        self.locale = locale
        return self


@dataclass(frozen=True)
class State:
    """What the assistant remembers about one sender between texts."""

    locale: str | None = None
    locale_explicit: bool = False  # chosen with LANG rather than guessed from their words
    menu: tuple[str, ...] = ()  # what each number of the last numbered list stands for
    more: str = ""  # the rest of an answer that did not fit
    reply_locale: str | None = None  # the language of the last reply, which MORE goes on in
    opted_out: bool = False


@dataclass(frozen=True)
class Reply:
    text: str | None  # None: send nothing (opted out, STOP)
    level: str  # emergency, call_now, info, none
    topic: str | None  # topic id, command name, or None
    locale: str
    state: State
    finding: Finding = field(default_factory=lambda: Finding("none"))
    failed: bool = False  # the last-resort path answered
    unanswered: str | None = None  # "fallback" or "did_you_mean": a text the catalog could not answer
    pieces: tuple[tuple[str, str], ...] = ()  # spoken answers: (language, text) of each part, in order

    @property
    def encoding(self) -> str:
        return measure(self.text or "").encoding

    @property
    def segments(self) -> int:
        return measure(self.text).segments if self.text else 0

    def as_dict(self) -> dict:
        return {"topic": self.topic, "level": self.level, "locale": self.locale, "reply": self.text,
                "segments": self.segments, "encoding": self.encoding, "rules": list(self.finding.rules)}


class Assistant:
    """Answers texts from the live catalog with the given settings.

    ``voice``: answers to be spoken on a phone call. The same steps in the same order, with three
    differences: a text that has a spoken version in the catalog (``voice:<key>`` for ``text:<key>``)
    uses it, so no answer tells a caller to "text MORE"; an answer is never cut to SMS size; and it is
    in the call's language (one ``<Say>`` voice, one speech language). Numbers in it are said digit by
    digit."""

    def __init__(self, catalog: Catalog | CatalogStore, settings: Settings | None = None, *,
                 voice: bool = False, whole: bool = False) -> None:
        self.store = catalog if isinstance(catalog, CatalogStore) else CatalogStore(catalog)
        self.settings = settings or Settings()
        self.voice = voice
        self.whole = whole  # texts never cut to MORE
        self._spoken: Assistant | None = self if voice else None
        self._uncut: Assistant | None = self if whole else None

    @property
    def spoken(self) -> Assistant:
        """This assistant answering for a phone call (same catalog store and settings)."""
        if self._spoken is None:
            self._spoken = Assistant(self.store, self.settings, voice=True)
        return self._spoken

    @property
    def uncut(self) -> Assistant:
        """This assistant writing texts whole, never cut to MORE: for a text sent from a call, whose
        caller has no MORE to ask for (Twilio takes up to 1,600 characters in one message)."""
        if self._uncut is None:
            self._uncut = Assistant(self.store, self.settings, whole=True)
        return self._uncut

    def text(self, locale: str, key: str, **extra: str) -> str:
        """The catalog text ``key`` (a msgctxt) in ``locale`` with its placeholders filled; English if the
        language's text does not format; "" if even that fails. Never raises."""
        return self.text_in(locale, key, **extra)[0]

    def text_in(self, locale: str, key: str, **extra: str) -> tuple[str, str]:
        """:meth:`text`, and the language it is written in (``locale``, or English where it fell back)."""
        try:
            text = self._render(self.store.current, locale, key, **extra)
            return str(text), text.locale
        except Exception:
            log.exception("text %s cannot be made", key)
            return "", locale

    def language_of(self, locale: str, key: str) -> str:
        """The language the text ``key`` is served in for ``locale`` (English where it falls back)."""
        try:
            catalog = self.store.current
            return catalog.language_of(locale, self._spoken_key(catalog, key))
        except Exception:
            log.exception("text %s cannot be looked up", key)
            return locale

    # -- public ------------------------------------------------------------------------------
    def reply(self, text: str | None, state: State | None = None, *, media: int = 0,
              lang: str | None = None) -> Reply:
        """The reply to ``text`` from a sender in ``state``. Never raises."""
        state = state or State()
        finding: Finding | None = None
        try:
            catalog = self.store.current
            if lang:
                state = replace(state, locale=self._known_locale(catalog, lang), locale_explicit=True)
            body, toks, hits = self._read(catalog, text)
            finding = assess(catalog, toks, hits, self.settings.fever_threshold_c)
            return self._answer(catalog, body, toks, hits, finding, state, media)
        except Exception:
            # Log the failure, never the text: it may hold health information.
            log.exception("reply failed; sending the last-resort answer")
            level = finding.level if finding and finding.escalates else "none"
            return Reply(last_resort(level, self.settings, spoken=self.voice), level,
                         finding.topic if finding else None, "en", state, finding or Finding(level), failed=True)

    def classify(self, text: str, state: State | None = None) -> tuple[Finding, str | None, str]:
        """Triage level, topic and language of ``text``, without composing a reply (for benchmarks
        and tools)."""
        state = state or State()
        catalog = self.store.current
        body, toks, hits = self._read(catalog, text)
        finding = assess(catalog, toks, hits, self.settings.fever_threshold_c)
        choice = choose(body, hits, catalog.languages, state.locale, self.settings.default_locale,
                        accented=catalog.accented, toks=toks, vocabulary=catalog.vocabulary)
        if finding.escalates:
            return finding, finding.topic, choice.locale
        topics = self._rank_topics(catalog, hits, finding)
        return finding, topics[0][0] if topics else finding.topic, choice.locale

    # -- steps -------------------------------------------------------------------------------
    @staticmethod
    def _read(catalog: Catalog, text: str | None) -> tuple[str, list[str], list[Hit]]:
        """The text's tokens and every phrase of the catalog found in them."""
        body = (text or "")[:MAX_TEXT_CHARS]
        toks = tokens(body)
        hits = drop_unlikely_typos(catalog.index.find(toks), toks, catalog.index, catalog.vocabulary)
        if catalog.toned and any(h.target.locales <= _TONED for h in hits):
            hits = drop_mistoned(hits, toks, accented_tokens(body) if not body.isascii() else toks,
                                 catalog.toned, TONE_LOCALES, catalog.vocabulary, catalog.languages)
        return body, toks, drop_not_symptoms(catalog, hits, toks)

    def _answer(self, catalog: Catalog, body: str, toks: list[str], hits: list[Hit], finding: Finding,
                state: State, media: int) -> Reply:
        words = [t for t in toks if t != BREAK]
        command_hit = self._command(hits, len(toks))
        command = command_hit.target.id if command_hit else None
        choice = choose(body, hits, catalog.languages, state.locale, self.settings.default_locale,
                        english_neutral=command is not None, accented=catalog.accented, toks=toks,
                        vocabulary=catalog.vocabulary)
        locale = choice.locale
        if self.voice and state.locale_explicit and state.locale:
            locale = state.locale  # the call's voice speaks one language
        elif command_hit and state.locale and ({"en", state.locale} & command_hit.target.locales):
            locale = state.locale  # START, STOP, HELP in English or in their own language: their language
        if choice.detected and not state.locale_explicit:
            state = replace(state, locale=locale)

        if state.opted_out and command != "start":
            # Nothing goes to an opted-out number (carrier rules); an escalation is still reported to
            # the channel, which alerts the care team.
            return Reply(None, finding.level if finding.escalates else "none", finding.topic, locale, state,
                         finding)
        if finding.escalates:
            also = choice.also if not state.locale and choice.also != locale else None
            return self._escalation(catalog, finding, state, locale, also)
        if command:
            return self._run_command(catalog, command, toks, hits, finding, state, locale)
        lang_pick = self._language_named(catalog, words)
        if lang_pick:
            return self._set_language(catalog, lang_pick, state, finding)
        if len(words) == 1 and words[0].isdigit() and state.menu:
            picked = self._pick(catalog, int(words[0]), state, finding, locale)
            if picked:
                return picked
        topics = self._rank_topics(catalog, hits, finding)
        if topics:
            best, score = topics[0]
            if len(topics) > 1 and topics[1][1] >= score * 0.9:
                return self._did_you_mean(catalog, [t for t, _ in topics[:3]], state, finding, locale)
            return self._topic(catalog, best, state, finding, locale)
        if finding.reading:
            return self._topic(catalog, "fever", state, finding, locale)
        if not body.strip():
            key = "text:media_only" if media else "text:empty"
            return self._send(catalog, key, "none", None, state, finding, locale)
        return replace(self._send(catalog, "text:fallback", "none", None, state, finding, locale),
                       unanswered="fallback")

    def _command(self, hits: Sequence[Hit], n: int) -> Hit | None:
        """The whole-text command word (or LANG followed by a language)."""
        for h in hits:
            if h.target.kind == "command" and h.start == 0 and (h.end == n or h.target.id == "language"):
                return h
        return None

    def _rank_topics(self, catalog: Catalog, hits: Sequence[Hit], finding: Finding) -> list[tuple[str, float]]:
        """Topics by score; each token counts once, for the longest phrase that covers it."""
        topic_hits = [h for h in hits if h.target.kind == "topic"]
        negated = set(finding.negated)
        live = [h for h in topic_hits if h.target.id not in negated]
        if not live and topic_hits:
            # Only denied symptoms ("no fever or chills"): answer about the first one, no question.
            first = min(topic_hits, key=lambda h: h.start)
            return [(first.target.id, float(first.length))]
        live.sort(key=lambda h: (-h.length, -h.similarity))
        claimed: set[int] = set()
        scores: dict[str, float] = {}
        for h in live:
            span = range(h.start, h.end)
            if claimed.intersection(span):
                continue
            claimed.update(span)
            scores[h.target.id] = scores.get(h.target.id, 0.0) + h.length * h.similarity
        if finding.topic and finding.topic in scores:
            scores[finding.topic] += 0.5
        specific = {t: v for t, v in scores.items() if not catalog.topics[t].umbrella}
        if specific:  # "side effects of immunotherapy" is about side effects
            scores = specific
        return sorted(scores.items(), key=lambda kv: -kv[1])

    # -- replies -----------------------------------------------------------------------------
    def _values(self, catalog: Catalog, locale: str, **extra: str) -> dict[str, str]:
        threshold, low = self.settings.fever_threshold_c, catalog.source.temperature.low_c
        number = spell_digits if self.voice else str
        values = {
            "care_team": number(self.settings.care_team_phone),
            "emergency": number(self.settings.emergency_number),
            "fever_c": _number(threshold, locale),
            "fever_f": _number(threshold * 9 / 5 + 32, locale),
            "low_c": _number(low, locale),
            "low_f": _number(low * 9 / 5 + 32, locale),
        }
        values.update(extra)
        return values

    def _spoken_key(self, catalog: Catalog, key: str) -> str:
        """On a call, the spoken version of a text where the catalog has one: ``voice:<key>`` for
        ``text:<key>``, ``voice:topic.<id>`` for ``topic:<id>:summary`` (an answer written for a screen)."""
        if not self.voice:
            return key
        if key.startswith("text:"):
            spoken = f"voice:{key[5:]}"
        elif key.startswith("topic:") and key.endswith(":summary"):
            spoken = f"voice:topic.{key[6:-8]}"
        else:
            return key
        return spoken if spoken in catalog.texts[SOURCE_LOCALE] else key

    def _render(self, catalog: Catalog, locale: str, key: str, **extra: str) -> Rendered:
        key = self._spoken_key(catalog, key)
        values = self._values(catalog, locale, **extra)
        try:
            return Rendered(catalog.text(locale, key).format_map(values), catalog.language_of(locale, key))
        except (KeyError, ValueError, IndexError):
            log.error("text %s of %s does not format; English sent", key, locale)
            return Rendered(catalog.text("en", key).format_map(values), SOURCE_LOCALE)

    def _finish(self, catalog: Catalog, parts: Sequence[str], level: str, topic: str | None, state: State,
                finding: Finding, locale: str, optional: Sequence[str] = ()) -> Reply:
        """Join ``parts`` (what does not fit goes to MORE) and add each of ``optional`` only if it fits."""
        if self.voice:  # a call has no MORE: it is all said, each part in the voice of its own language
            pieces = tuple((getattr(p, "locale", locale), p.strip()) for p in (*parts, *optional) if p and p.strip())
            text = " ".join(t for _, t in pieces)
            return Reply(text, level, topic, locale, replace(state, more=""), finding, pieces=pieces)
        text = for_locale(smart_encode(" ".join(p.strip() for p in parts if p and p.strip())), locale)
        for extra in optional:
            longer = for_locale(smart_encode(f"{text} {extra.strip()}"), locale)
            if self.whole or measure(longer).segments <= self.settings.max_segments:
                text = longer
        if self.whole:
            return Reply(text, level, topic, locale, replace(state, more="", reply_locale=locale), finding)
        head, rest = fit(text, self.settings.max_segments, self._render(catalog, locale, "text:more.hint"))
        return Reply(head, level, topic, locale, replace(state, more=rest, reply_locale=locale), finding)

    def _send(self, catalog: Catalog, key: str, level: str, topic: str | None, state: State,
              finding: Finding, locale: str, **extra: str) -> Reply:
        return self._finish(catalog, [self._render(catalog, locale, key, **extra)], level, topic, state,
                            finding, locale)

    def _escalation(self, catalog: Catalog, finding: Finding, state: State, locale: str,
                    also: str | None = None) -> Reply:
        extra = {"reading": self._reading(finding, locale)} if finding.reading else {}
        header = f"text:escalation.{finding.level}"
        parts = [self._render(catalog, locale, header)]
        if also:
            # Unsure between two languages and nothing known of the sender: the action and the number in
            # the other one too, when the whole reply still fits.
            both = self._escalation(catalog, finding, state, locale)
            head = for_locale(parts[0], locale)
            second = self._render(catalog, also, header)
            text = for_locale(smart_encode(f"{both.text[:len(head)]} {second} {both.text[len(head):].strip()}"),
                              also)
            if both.text.startswith(head) and not both.state.more and \
                    measure(text).segments <= self.settings.max_segments:
                return replace(both, text=text)
            return both
        parts += [self._render(catalog, locale, f"text:{key}", **extra) for key in finding.advice]
        # A low temperature has its own text; the fever summary would say the opposite. On a call the
        # transfer (or the hang-up) follows at once: no topic summary before it.
        if finding.topic and not self.voice and not (finding.topic == "fever" and LOW_TEMPERATURE in finding.advice):
            parts.append(self._render(catalog, locale, f"topic:{finding.topic}:summary"))
        return self._finish(catalog, parts, finding.level, finding.topic, replace(state, menu=()), finding,
                            locale)

    def _topic(self, catalog: Catalog, topic: str, state: State, finding: Finding, locale: str) -> Reply:
        parts = []
        if topic == "fever" and finding.reading and not finding.escalates:
            parts.append(self._render(catalog, locale, "text:triage.below_threshold",
                                      reading=self._reading(finding, locale)))
        parts.append(self._render(catalog, locale, f"topic:{topic}:summary"))
        return self._finish(catalog, parts, "info", topic, replace(state, menu=()), finding, locale)

    @staticmethod
    def _reading(finding: Finding, locale: str) -> str:
        r = finding.reading
        return f"{_number(r.value, locale)} {r.unit}" if r else ""

    def _numbered(self, catalog: Catalog, locale: str, labels: Sequence[str]) -> str:
        if self.voice:  # "For Fever, press 1."
            return " ".join(self._render(catalog, locale, "voice:option", label=label, digit=str(i))
                            for i, label in enumerate(labels, 1))
        return " ".join(f"{i}) {label}" for i, label in enumerate(labels, 1))

    def _did_you_mean(self, catalog: Catalog, topics: Sequence[str], state: State, finding: Finding,
                      locale: str) -> Reply:
        items = self._numbered(catalog, locale, [self._render(catalog, locale, f"topic:{t}:title") for t in topics])
        reply = self._send(catalog, "text:did_you_mean", "info", None,
                           replace(state, menu=tuple(f"topic:{t}" for t in topics)), finding, locale, items=items)
        return replace(reply, unanswered="did_you_mean")

    def _menu(self, catalog: Catalog, state: State, finding: Finding, locale: str) -> Reply:
        topics = [t.id for t in catalog.source.topics]
        items = self._numbered(catalog, locale, [self._render(catalog, locale, f"topic:{t}:title") for t in topics])
        return self._send(catalog, "text:menu", "none", "menu",
                          replace(state, menu=tuple(f"topic:{t}" for t in topics)), finding, locale, items=items)

    def _language_menu(self, catalog: Catalog, state: State, finding: Finding, locale: str) -> Reply:
        items = self._numbered(catalog, locale, [catalog.language_name(code) for code in catalog.languages])
        return self._send(catalog, "text:language.menu", "none", "language",
                          replace(state, menu=tuple(f"lang:{c}" for c in catalog.languages)), finding, locale,
                          items=items)

    def _set_language(self, catalog: Catalog, code: str, state: State, finding: Finding) -> Reply:
        state = replace(state, locale=code, locale_explicit=True, menu=())
        return self._send(catalog, "text:language.set", "none", "language", state, finding, code)

    def _pick(self, catalog: Catalog, number: int, state: State, finding: Finding, locale: str) -> Reply | None:
        if not 1 <= number <= len(state.menu):
            return None
        kind, _, value = state.menu[number - 1].partition(":")
        if kind == "lang":
            return self._set_language(catalog, value, state, finding)
        return self._topic(catalog, value, state, finding, locale)

    def _run_command(self, catalog: Catalog, command: str, toks: list[str], hits: Sequence[Hit],
                     finding: Finding, state: State, locale: str) -> Reply:
        if command == "stop":
            state = replace(state, opted_out=True, menu=(), more="")
            if " ".join(toks) in _carrier_words(catalog):
                return Reply(None, "none", "stop", locale, state, finding)  # the carrier confirms its own words
            # A localized opt-out word: the one confirmation allowed, in that language, with both numbers.
            return self._send(catalog, "text:stop", "none", "stop", state, finding, locale)
        if command == "start":
            return self._send(catalog, "text:start", "none", "start", replace(state, opted_out=False), finding,
                              locale)
        if command == "help":
            return self._finish(catalog, [self._render(catalog, locale, "text:help")], "none", "help", state,
                                finding, locale, optional=[self._render(catalog, locale, "text:source")])
        if command == "menu":
            return self._menu(catalog, state, finding, locale)
        if command == "thanks":  # no topic: to the care team's figures it is chatter the fallback would answer
            return self._send(catalog, "text:thanks", "none", None, state, finding, locale)
        if command == "about":  # ABOUT alone; "call me back about a bill" is not about this service
            return self._topic(catalog, "about", state, finding, locale)
        if command == "more":
            # In the language of what it continues: an English answer to a sender who chose Spanish goes
            # on in English, and so does "that is all".
            locale = state.reply_locale if state.reply_locale in catalog.languages else locale
            if not state.more:
                return self._send(catalog, "text:more.none", "none", "more", state, finding, locale)
            head, rest = fit(state.more, self.settings.max_segments,
                             self._render(catalog, locale, "text:more.hint"))
            return Reply(head, "none", "more", locale, replace(state, more=rest), finding)
        # LANG, LANG ES, IDIOMA 2, LANGUE français
        cmd = next(h for h in hits if h.target.kind == "command" and h.start == 0)
        rest = [t for t in toks[cmd.end:] if t != BREAK]
        if rest:
            if len(rest) == 1 and rest[0].isdigit() and 1 <= int(rest[0]) <= len(catalog.languages):
                return self._set_language(catalog, catalog.languages[int(rest[0]) - 1], state, finding)
            code = self._language_named(catalog, rest)
            if code:
                return self._set_language(catalog, code, state, finding)
        return self._language_menu(catalog, state, finding, locale)

    def _language_named(self, catalog: Catalog, words: Sequence[str]) -> str | None:
        return language_by_name(catalog.languages).get(" ".join(words)) if words else None

    def _known_locale(self, catalog: Catalog, lang: str) -> str:
        code = language_by_name(catalog.languages).get(" ".join(tokens(lang)))
        return code or self.settings.default_locale


def _carrier_words(catalog: Catalog) -> frozenset[str]:
    """The English opt-out words of the source: the carrier's own, which it confirms itself."""
    return frozenset(" ".join(tokens(w)) for w in catalog.source.commands.get("stop", ()))


def spell_digits(number: str) -> str:
    """A phone number to be said slowly, digit by digit: "+1 617-555-0142" -> "1, 6, 1, 7, ..."."""
    digits = [c for c in number if c.isdigit()]
    return ", ".join(digits) if digits else number


@lru_cache(maxsize=4096)
def _number(value: float, locale: str) -> str:
    """A temperature written the way the language writes decimals (38.0, 38,0)."""
    try:
        return format_decimal(value, format="0.0", locale=locale)
    except Exception:  # unknown to Babel: plain digits
        return f"{value:.1f}"
