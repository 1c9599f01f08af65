"""The English source in ``messages/``: topics, triage rules, system texts, commands and cues.

Both the Babel extractor and the catalog loader read the source through :func:`read_source`, so the
``.pot`` and the running service can never disagree about what a message id is.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = ("emergency", "call_now", "info", "none")
LIST_SEPARATOR = ", "
# Translators may separate list items with their own script's comma or with new lines.
LIST_SPLIT = re.compile(r"[,，、،;；\n]+")

# Texts that must exist, with the care-team number, in every language.
SAFETY_TEXTS = ("escalation.emergency", "escalation.call_now", "fallback", "help")


@dataclass(frozen=True)
class TopicSource:
    id: str
    section: str
    level: str
    title: str
    keywords: tuple[str, ...]
    summary: str
    umbrella: bool = False  # a general topic that yields to a more specific one


@dataclass(frozen=True)
class RuleSource:
    id: str
    level: str
    phrases: tuple[str, ...]
    topic: str | None = None
    advice: str | None = None
    when_negated: str | None = None  # level when negated: "not breathing" is the emergency itself
    when_persisting: str | None = None  # level when said to go on: bleeding that "won't stop" is an emergency


@dataclass(frozen=True)
class TemperatureSource:
    celsius_range: tuple[float, float]
    fahrenheit_range: tuple[float, float]
    low_c: float
    celsius_units: tuple[str, ...]
    fahrenheit_units: tuple[str, ...]


@dataclass(frozen=True)
class Entry:
    """One translatable message: gettext context, English text, note for translators, source line."""

    context: str
    msgid: str
    comment: str
    lineno: int
    is_list: bool = False


@dataclass(frozen=True)
class Source:
    languages: tuple[str, ...]
    topics: tuple[TopicSource, ...]
    rules: tuple[RuleSource, ...]
    temperature: TemperatureSource
    texts: dict[str, str]
    commands: dict[str, tuple[str, ...]]
    cues: dict[str, tuple[str, ...]]
    entries: tuple[Entry, ...]
    voice_locales: dict[str, dict] = field(default_factory=dict)  # voice.toml [locales]: the call table


class SourceError(ValueError):
    """The English source is broken; the message names the file and what is wrong."""


def split_list(text: str) -> tuple[str, ...]:
    """Split a translated keyword list into its items."""
    return tuple(item.strip() for item in LIST_SPLIT.split(text) if item.strip())


def _line_of(lines: list[str], pattern: str, start: int = 0) -> int:
    rx = re.compile(pattern)
    for i in range(start, len(lines)):
        if rx.search(lines[i]):
            return i + 1
    return start + 1


KEYWORD_NOTE = (
    "Comma-separated words and phrases caregivers text in your language for this. Add the everyday words "
    "families really use, spellings without accents or tones, and common misspellings. Rules: word* "
    "matches any ending; '...' lets up to four words stand between."
)
SAFETY_NOTE = (
    "SAFETY wording: needs review by a qualified medical translator. Keep every {placeholder} exactly, "
    "start with the action and the number, and keep it short (one SMS)."
)


VOICE_NOTE = (
    "Said on a phone call by a computer voice, never read: no 'text', 'reply' or screen words. Keep every "
    "{placeholder} exactly. Short sentences."
)


def parse_source(texts: dict[str, str]) -> Source:
    """Build the source from the TOML texts (file name -> content): the three required ones and, if
    given, voice.toml."""
    try:
        topics_doc = tomllib.loads(texts["topics.toml"])
        triage_doc = tomllib.loads(texts["triage.toml"])
        system_doc = tomllib.loads(texts["system.toml"])
        voice_doc = tomllib.loads(texts.get(VOICE_FILE, ""))
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - message is what matters
        raise SourceError(f"messages/: {exc}") from exc
    topic_lines = texts["topics.toml"].splitlines()
    triage_lines = texts["triage.toml"].splitlines()
    system_lines = texts["system.toml"].splitlines()

    entries: list[Entry] = []
    topics = []
    for raw in topics_doc.get("topic", []):
        try:
            topic = TopicSource(
                id=raw["id"], section=raw["section"], level=raw.get("level", "info"), title=raw["title"],
                keywords=tuple(raw["keywords"]), summary=" ".join(raw["summary"].split()),
                umbrella=bool(raw.get("umbrella", False)),
            )
        except KeyError as exc:
            raise SourceError(f"messages/topics.toml: topic {raw.get('id', '?')} lacks {exc}") from exc
        if topic.level not in ("info", "call_now"):
            raise SourceError(f"messages/topics.toml: topic {topic.id}: level must be info or call_now")
        line = _line_of(topic_lines, rf'^id\s*=\s*"{re.escape(topic.id)}"')
        note = f"Topic '{topic.id}', from the article section '{topic.section}'."
        entries.append(Entry(f"topic:{topic.id}:title", topic.title, note + " Short name for the MENU.", line))
        entries.append(Entry(f"topic:{topic.id}:keywords", LIST_SEPARATOR.join(topic.keywords),
                             note + " " + KEYWORD_NOTE, line, is_list=True))
        entries.append(Entry(f"topic:{topic.id}:summary", topic.summary,
                             note + " Plain words, about a 6th-grade level. Keep every {placeholder}.", line))
        topics.append(topic)

    rules = []
    for raw in triage_doc.get("rule", []):
        rule = RuleSource(id=raw["id"], level=raw["level"], phrases=tuple(raw["phrases"]),
                          topic=raw.get("topic"), advice=raw.get("advice"), when_negated=raw.get("when_negated"),
                          when_persisting=raw.get("when_persisting"))
        for name in ("when_negated", "when_persisting"):
            if getattr(rule, name) not in (None, "emergency", "call_now"):
                raise SourceError(f"messages/triage.toml: rule {rule.id}: {name} must be emergency or call_now")
        if rule.level not in ("emergency", "call_now", "none") or (rule.level == "none" and not rule.when_negated):
            raise SourceError(f"messages/triage.toml: rule {rule.id}: level must be emergency or call_now "
                              "(or none, with when_negated)")
        line = _line_of(triage_lines, rf'^id\s*=\s*"{re.escape(rule.id)}"')
        entries.append(Entry(
            f"rule:{rule.id}:phrases", LIST_SEPARATOR.join(rule.phrases),
            f"SAFETY: symptom triage rule '{rule.id}' (level {rule.level}). Every way a caregiver could text "
            "this symptom in your language, including informal words and spellings without accents. "
            + KEYWORD_NOTE, line, is_list=True))
        rules.append(rule)

    temp = triage_doc["temperature"]
    temperature = TemperatureSource(
        celsius_range=tuple(temp["celsius_range"]), fahrenheit_range=tuple(temp["fahrenheit_range"]),
        low_c=float(temp["low_c"]), celsius_units=tuple(temp["celsius_units"]),
        fahrenheit_units=tuple(temp["fahrenheit_units"]),
    )

    system_texts = {k: " ".join(v.split()) for k, v in system_doc["texts"].items()}
    for key, text in system_texts.items():
        line = _line_of(system_lines, rf'^"{re.escape(key)}"\s*=')
        note = SAFETY_NOTE if key in SAFETY_TEXTS or key.startswith(("escalation.", "advice.", "triage.")) \
            else "Keep every {placeholder} exactly. Keep it short."
        entries.append(Entry(f"text:{key}", text, note, line))
    commands = {k: tuple(v) for k, v in system_doc["commands"].items()}
    for name, words in commands.items():
        line = _line_of(system_lines, rf"^{re.escape(name)}\s*=")
        entries.append(Entry(
            f"command:{name}", LIST_SEPARATOR.join(words),
            f"Words that, texted alone, run the {name.upper()} command in your language (comma-separated). "
            "The English words keep working in every language.", line, is_list=True))
    cues = {k: tuple(v) for k, v in system_doc["cues"].items()}
    for name, words in cues.items():
        line = _line_of(system_lines, rf"^{re.escape(name)}\s*=")
        entries.append(Entry(f"cue:{name}", LIST_SEPARATOR.join(words),
                             f"Comma-separated list for your language: see the comment above '{name}' "
                             "in messages/system.toml.", line, is_list=True))

    voice_lines = texts.get(VOICE_FILE, "").splitlines()
    for key, text in voice_doc.get("texts", {}).items():
        line = _line_of(voice_lines, rf'^"{re.escape(key)}"\s*=')
        note = VOICE_NOTE + (" SAFETY wording: needs review by a qualified medical translator."
                             if key.startswith(("escalation.", "no_answer")) else "")
        if key == "language.option":
            note += " Name YOUR language in your language: this is how a caller finds it in the menu."
        entries.append(Entry(f"voice:{key}", " ".join(text.split()), note, line))

    known_topics = {t.id for t in topics}
    for rule in rules:
        if rule.topic and rule.topic not in known_topics:
            raise SourceError(f"messages/triage.toml: rule {rule.id} names unknown topic {rule.topic}")
        if rule.advice and rule.advice not in system_texts:
            raise SourceError(f"messages/triage.toml: rule {rule.id} names unknown text {rule.advice}")
    return Source(
        languages=tuple(system_doc["languages"]), topics=tuple(topics), rules=tuple(rules),
        temperature=temperature, texts=system_texts, commands=commands, cues=cues, entries=tuple(entries),
        voice_locales={k: dict(v) for k, v in voice_doc.get("locales", {}).items()},
    )


SOURCE_FILES = ("topics.toml", "triage.toml", "system.toml")
VOICE_FILE = "voice.toml"  # optional: without it, no phone prompts (and /voice says so)


def read_source(messages_dir: Path) -> Source:
    """Read and check the English source in ``messages_dir``."""
    texts = {}
    for name in SOURCE_FILES:
        try:
            texts[name] = (messages_dir / name).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot read {messages_dir / name}: {exc}") from exc
    voice = messages_dir / VOICE_FILE
    if voice.exists():
        texts[VOICE_FILE] = voice.read_text(encoding="utf-8")
    return parse_source(texts)


