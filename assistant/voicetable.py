"""The phone-call language table (``messages/voice.toml``), checked against Twilio's own value lists,
and the catalog checks of spoken prompts. No Flask here: ``assistant catalog check`` uses it too.

Twilio's Python library sends any ``language``/``voice`` string as it is (an unknown one fails only on a
live call), so the project keeps Twilio's published lists (``twilio_voice_values.json``, from the
twilio-node ``VoiceResponse`` type unions) and refuses a table row outside them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .catalog import SOURCE_LOCALE, Catalog, Problem, _Sample

VALUES_FILE = Path(__file__).resolve().parent / "twilio_voice_values.json"
MORE_DIGIT = 9  # "more languages" / "more topics"; 0 is always the care team, * repeats
LANGUAGE_DIGIT = 8  # the language menu, from the first question and the lists of topics (seven a page)
PAGES = (1, 2)
# <Say> limits per voice family (Twilio error 13521): Polly 3,000 characters, Google 5,000, others 4,096.
SAY_LIMITS = {"Polly.": 3000, "Google.": 5000}
BASIC_SAY_LIMIT = 4096
# Screen-only wording a caller cannot act on: "text MORE", "reply 1", "1)". Command words written in
# capitals or quotes are how the SMS texts name them, in every language ("Escriba MENU", «المزيد»). Each
# language's own words are in its row of the table (screen_words, send_words).
_SCREEN = re.compile(r"\b(?i:text|reply|type|send|tap|click)\s+(?i:us\s+|me\s+)?(?i:with\s+)?(?i:a\s+)?"
                     r"(\d|[A-Z]{3,})\b|\b\d\)|\b(?i:reply)\b")
_QUOTED = re.compile(r"[«“„‘'\"「『]\s*([^»”“’'\"」』]{1,30}?)\s*[»”“’'\"」』]")
_OPENING_QUOTES = "«“„‘'\"「『"
# A number to dial written for the eye ("1-800-227-2345", "800-ACS-2345"): on a call, numbers are said
# digit by digit ("1, 8, 0, 0, ..."), as {care_team} is.
_WRITTEN_NUMBER = re.compile(r"(?<![\d,])\d(?:[-. ]?\d){6,}(?!\d)|\b\d+(?:-[0-9A-Z]+)*?-[A-Z]{2,}[0-9A-Z-]*")


@dataclass(frozen=True)
class VoiceLocale:
    """One row of the table: how a call in this language is listened to and spoken."""

    code: str
    speech: str | None  # <Gather language>, None: keypad only
    voice: str  # <Say voice>
    say_language: str  # <Say language>, the voice's own
    page: int  # of the language menu
    digit: int
    nearest: str | None = None  # the language whose voice says this one's prompts (no voice of its own)
    screen_words: tuple[str, ...] = ()  # words that on a call tell the caller to use a screen ("escriba")
    send_words: tuple[str, ...] = ()  # words that do so before a command word, number or quote ("voye PLIS")

    @property
    def keypad_only(self) -> bool:
        return self.speech is None

    @property
    def say_limit(self) -> int:
        return next((n for prefix, n in SAY_LIMITS.items() if self.voice.startswith(prefix)), BASIC_SAY_LIMIT)


@lru_cache(maxsize=1)
def twilio_values() -> dict[str, frozenset[str]]:
    """Twilio's published Gather languages, Say languages and Say voices."""
    data = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    return {key: frozenset(data[key]) for key in ("gather_languages", "say_languages", "say_voices")}


@lru_cache(maxsize=1)
def voice_languages() -> dict[str, frozenset[str]]:
    """The languages each Polly voice (by name: "Joanna") and each basic voice (man, woman, alice) speaks."""
    data = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    return {name: frozenset(codes) for key in ("polly_voice_languages", "basic_voice_languages")
            for name, codes in data[key].items()}


# Language codes Twilio and Polly write for our languages where they differ from the catalog's code.
_SPOKEN_AS = {"zh": {"zh", "cmn"}, "tl": {"tl", "fil"}, "ar": {"ar", "arb"}}


def speaks(code: str, tag: str) -> bool:
    """Whether the Twilio language tag ``tag`` ("cmn-Hans-CN", "fil-PH", "arb") is the language ``code``."""
    base = code.split("_")[0]
    return tag.split("-")[0].lower() in _SPOKEN_AS.get(base, {base})


def voice_speaks(voice: str) -> frozenset[str] | None:
    """The <Say> languages of ``voice`` ("Polly.Hala-Neural": ar-AE), None if the voice is not in the lists."""
    if voice.startswith("Polly."):
        return voice_languages().get(re.sub(r"-(Neural|Generative|LongForm)$", "", voice[6:]))
    return voice_languages().get(voice)


def parse_table(rows: Mapping[str, Mapping], languages: tuple[str, ...]) -> tuple[dict[str, VoiceLocale],
                                                                                   list[Problem]]:
    """The table's rows that are usable, and what is wrong with the others."""
    values = twilio_values()
    table: dict[str, VoiceLocale] = {}
    problems: list[Problem] = []
    taken: dict[tuple[int, int], str] = {}
    for code in languages:
        raw = rows.get(code)
        where = f"messages/voice.toml [locales.{code}]"
        if raw is None:
            problems.append(Problem(code, where, "no row: callers cannot choose this language", "error"))
            continue
        try:
            row = VoiceLocale(code=code, speech=str(raw.get("speech") or "") or None, voice=str(raw["voice"]),
                              say_language=str(raw["say_language"]), page=int(raw["page"]), digit=int(raw["digit"]),
                              nearest=raw.get("nearest") or None,
                              screen_words=tuple(str(w) for w in raw.get("screen_words") or ()),
                              send_words=tuple(str(w) for w in raw.get("send_words") or ()))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(code, where, f"incomplete row ({exc})", "error"))
            continue
        wrong = []
        if row.speech is not None and row.speech not in values["gather_languages"]:
            wrong.append(f"speech {row.speech!r} is not a Twilio <Gather> language")
        if row.voice not in values["say_voices"]:
            wrong.append(f"voice {row.voice!r} is not a Twilio <Say> voice")
        if row.say_language not in values["say_languages"]:
            wrong.append(f"say_language {row.say_language!r} is not a Twilio <Say> language")
        if row.voice.startswith("Google."):
            if not row.voice.startswith(f"Google.{row.say_language}-"):
                wrong.append(f"voice {row.voice} does not speak {row.say_language}")
        elif (spoken := voice_speaks(row.voice)) is None:
            wrong.append(f"voice {row.voice}: its language is not known (assistant/twilio_voice_values.json)")
        elif row.say_language not in spoken:
            wrong.append(f"voice {row.voice} speaks {', '.join(sorted(spoken))}, not {row.say_language}")
        said_as = row.nearest or code  # a language without a voice of its own is said by the nearest one's
        if row.nearest is not None and (row.nearest not in languages or row.nearest == code):
            wrong.append(f"nearest {row.nearest!r} is not another of the languages")
        elif not speaks(said_as, row.say_language):
            wrong.append(f"say_language {row.say_language} is not {said_as}" + (
                "" if row.nearest else " (a language Twilio cannot speak names its nearest one)"))
        if row.speech is not None and not speaks(code, row.speech):
            wrong.append(f"speech {row.speech} does not listen for {code}")
        if row.page not in PAGES or not 1 <= row.digit <= 8:
            wrong.append("page must be 1 or 2 and digit 1 to 8 (9: more, 0: care team)")
        elif (row.page, row.digit) in taken:
            wrong.append(f"page {row.page} digit {row.digit} is taken by {taken[(row.page, row.digit)]}")
        if wrong:
            problems.extend(Problem(code, where, w, "error") for w in wrong)
            continue
        taken[(row.page, row.digit)] = code
        table[code] = row
    return table, problems


_TABLES: dict[int, tuple[Catalog, dict[str, VoiceLocale], list[Problem]]] = {}


def voice_table(catalog: Catalog) -> dict[str, VoiceLocale]:
    """The usable rows for ``catalog`` (computed once per catalog: a published catalog is a new one)."""
    return _table(catalog)[0]


def _table(catalog: Catalog) -> tuple[dict[str, VoiceLocale], list[Problem]]:
    cached = _TABLES.get(id(catalog))
    if cached is None or cached[0] is not catalog:
        table, problems = parse_table(catalog.source.voice_locales, catalog.languages)
        _TABLES.clear()
        _TABLES[id(catalog)] = cached = (catalog, table, problems)
    return cached[1], cached[2]


@lru_cache(maxsize=256)
def _phrase(word: str) -> re.Pattern:
    """A table word as a pattern: whole words, case-insensitive; "*" at an end lets the word go on there
    (Chinese and Korean write words together: "*回复*")."""
    start = "" if word.startswith("*") else r"(?<!\w)"
    end = "" if word.endswith("*") else r"(?!\w)"
    return re.compile(start + re.escape(word.strip("*")) + end, re.IGNORECASE)


def screen_words(catalog: Catalog, locale: str, text: str) -> list[str]:
    """What in ``text`` only makes sense on a screen, in English or in the language's own words: "reply 1",
    "1)", a command word in capitals or quotes, one of the row's screen words ("Responda", "Escriba"), or
    one of its send words before a number, a command word or a quote ("voye PLIS")."""
    found = [m.group(0) for m in _SCREEN.finditer(text)]
    commands = {w for ctx, items in [*catalog.lists.get(SOURCE_LOCALE, {}).items(),
                                     *catalog.lists.get(locale, {}).items()]
                if ctx.startswith("command:") for w in items}
    found += [w.upper() for w in commands if len(w) >= 3 and re.search(rf"(?<!\w){re.escape(w.upper())}(?!\w)", text)
              and w.upper() != w.lower()]
    lowered = {w.lower() for w in commands}
    found += [m.group(0) for m in _QUOTED.finditer(text) if m.group(1).strip().lower() in lowered]
    table = voice_table(catalog)
    rows = [r for r in (table.get(SOURCE_LOCALE), table.get(locale)) if r is not None]
    for word in {w for r in rows for w in r.screen_words}:
        found += [m.group(0) for m in _phrase(word).finditer(text)]
    for word in {w for r in rows for w in r.send_words}:
        for m in _phrase(word).finditer(text):
            following = text[m.end():].split()[:2]
            if any(_names_a_command(t, lowered) for t in following):
                found.append(" ".join([m.group(0), *following]))
    return found


def _names_a_command(token: str, commands: set[str]) -> bool:
    """A word after "send": a number, a quote, a word in capitals or a command word ("PLIS", "plis", "1")."""
    word = token.strip(".,:;!?()")
    return bool(word) and (token[0] in _OPENING_QUOTES or any(c.isdigit() for c in word) or word.lower() in commands
                           or (len(word) >= 2 and word.isupper()))


def spoken_texts(catalog: Catalog, locale: str) -> list[str]:
    """The catalog texts said on a call in ``locale``: the prompts, the escalations' advice and, where the
    language is listened to, the topic answers (their spoken versions, ``voice:topic.<id>``, where the
    catalog has one). Keypad-only languages get topic answers by text message."""
    table = voice_table(catalog)
    source = catalog.texts[SOURCE_LOCALE]
    spoken = [e.context for e in catalog.source.entries if e.context.startswith("voice:")]
    row = table.get(locale)
    if row is not None and row.keypad_only:
        return spoken
    advice = {f"text:{r.advice}" for r in catalog.source.rules if r.advice}
    advice |= {"text:triage.low_temperature", "text:triage.below_threshold"}
    answers = [f"topic:{t.id}:summary" for t in catalog.source.topics if f"voice:topic.{t.id}" not in source]
    return spoken + sorted(a for a in advice if a in source) + answers


def voice_problems(catalog: Catalog) -> list[Problem]:
    """The table's problems, and every text said on a call (prompts, advice, topic answers) that says
    screen words or a number written for the eye, or is too long for one <Say> of the language's voice."""
    table, problems = _table(catalog)
    problems = list(problems)
    summaries = [f"topic:{t.id}:summary" for t in catalog.source.topics]
    for locale in catalog.languages:
        row = table.get(locale)
        limit = row.say_limit if row else BASIC_SAY_LIMIT
        said = set(spoken_texts(catalog, locale))
        for ctx in list(dict.fromkeys([*said, *summaries])):
            entry = catalog.texts.get(locale, {}).get(ctx)
            if entry is None:
                continue
            text = entry.string.format_map(_Sample({"care_team": "1, 6, 1, 7, 5, 5, 5, 0, 1, 4, 2",
                                                    "emergency": "9, 1, 1", "label": "x" * 30, "digit": "1",
                                                    "items": "x" * 300}))
            if len(text) > limit:
                voice = row.voice if row else "?"
                problems.append(Problem(locale, ctx, f"{len(text)} characters: one <Say> with {voice} takes {limit} "
                                        "at most", "error"))
            if ctx not in said:
                continue
            if words := screen_words(catalog, locale, text):
                problems.append(Problem(locale, ctx, f"said on a call, but tells the caller to use a screen: "
                                        f"{', '.join(sorted(set(words)))}", "error"))
            if numbers := _WRITTEN_NUMBER.findall(text):
                problems.append(Problem(locale, ctx, f"said on a call, but writes a number for the eye "
                                        f"({', '.join(numbers)}): write it digit by digit (1, 8, 0, 0, ...)",
                                        "error"))
    return problems
