"""The catalog: English source plus every language's gettext catalog, loaded into one immutable object.

A :class:`Catalog` is built once and never changed: publishing a change means building a new one and
swapping it whole (:class:`CatalogStore`), so a reply is always made from one consistent version.
Nothing in here knows about SMS or voice.

Review status: an entry marked ``fuzzy`` ("Needs work" in Poedit) has not been reviewed by a
qualified medical translator. Keywords and symptom phrases are always used, reviewed or not: missing
a symptom is worse than a false alarm. Texts shown to caregivers are served unreviewed only when
``serve_unreviewed`` is on (the default); off, the English text is sent instead.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from babel import Locale, UnknownLocaleError
from babel.messages.pofile import PoFileError, read_po

from .language import accented_words
from .matching import PhraseIndex
from .normalize import BREAK, accented_tokens, phrase_tokens
from .numbers import spelled_numbers
from .source import RuleSource, Source, SourceError, TopicSource, read_source, split_list
from .vocabulary import COMMON_ZIPF, Vocabulary, frequency_table
from .vocabulary import EMPTY as EMPTY_VOCABULARY

log = logging.getLogger(__name__)
PLACEHOLDER = re.compile(r"\{(\w*)\}")
SOURCE_LOCALE = "en"


@dataclass(frozen=True)
class Problem:
    """Something wrong in a catalog file, said so a coordinator can fix it."""

    locale: str
    where: str  # file:line or msgctxt
    message: str
    severity: str = "error"  # "error" blocks publishing; "warning" does not

    def __str__(self) -> str:
        return f"{self.severity}: [{self.locale}] {self.where}: {self.message}"


@dataclass(frozen=True)
class Text:
    string: str
    reviewed: bool


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def language_name(code: str) -> str:
    """The language's name in the language itself, from Babel's locale data (e.g. "Español")."""
    try:
        loc = Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return code
    name = loc.get_language_name(loc) or code
    if loc.script:
        name = f"{name} ({loc.get_script_name(loc)})"
    return name[:1].upper() + name[1:]


@dataclass(frozen=True)
class Catalog:
    source: Source
    languages: tuple[str, ...]
    texts: Mapping[str, Mapping[str, Text]]  # locale -> msgctxt -> Text
    lists: Mapping[str, Mapping[str, tuple[str, ...]]]  # locale -> msgctxt -> items
    index: PhraseIndex
    topics: Mapping[str, TopicSource]
    rules: Mapping[str, RuleSource]
    unreviewed_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    accented: Mapping[str, frozenset[str]] = field(default_factory=dict)  # "fatigué" -> {"fr"}
    vocabulary: Vocabulary = EMPTY_VOCABULARY  # which languages a word is a word of
    # Tone languages: folded word -> its spellings in that language's phrases ("oi" -> {"ói"}), so a text
    # written with tones matches only the words it spells ("anh ơi" is not "ói", vomiting).
    toned: Mapping[tuple[str, str, str], frozenset[str]] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    serve_unreviewed: bool = True

    def text(self, locale: str, context: str) -> str:
        """The text to send for ``context`` in ``locale``, falling back to the English source."""
        entry = self.texts.get(locale, {}).get(context)
        if entry is not None and entry.string and (entry.reviewed or self.serve_unreviewed):
            return entry.string
        return self.texts[SOURCE_LOCALE][context].string

    def language_of(self, locale: str, context: str) -> str:
        """The language :meth:`text` gives ``context`` in for ``locale``: ``locale``, or the English source's
        when the language's own text is missing or may not be served (not reviewed)."""
        entry = self.texts.get(locale, {}).get(context)
        if locale == SOURCE_LOCALE or (entry is not None and entry.string
                                       and (entry.reviewed or self.serve_unreviewed)):
            return locale
        return SOURCE_LOCALE

    def language_name(self, locale: str) -> str:
        return self.names.get(locale) or language_name(locale)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    def unreviewed(self, locale: str | None = None) -> Iterator[tuple[str, str]]:
        """(locale, msgctxt) of every translated entry not yet reviewed."""
        for loc in self.languages:
            if locale and loc != locale:
                continue
            for ctx, entry in self.texts.get(loc, {}).items():
                if not entry.reviewed:
                    yield loc, ctx
            for ctx in self.unreviewed_lists.get(loc, ()):
                yield loc, ctx


def _read_po(path: Path, locale: str, problems: list[Problem]):
    try:
        with path.open("rb") as fh:
            return read_po(fh, locale=locale, abort_invalid=True)
    except FileNotFoundError:
        problems.append(Problem(locale, str(path), "catalog file is missing; English is served"))
    except (PoFileError, UnicodeDecodeError, ValueError, OSError) as exc:
        problems.append(Problem(locale, str(path), f"cannot read the catalog ({exc}); English is served"))
    return None


def build_catalog(source: Source, pos: Mapping[str, object], *, serve_unreviewed: bool = True,
                  problems: list[Problem] | None = None) -> Catalog:
    """Build a catalog from the source and already-read Babel catalogs (locale -> Catalog or None)."""
    problems = list(problems or [])
    entries = {e.context: e for e in source.entries}
    texts: dict[str, dict[str, Text]] = {SOURCE_LOCALE: {}}
    lists: dict[str, dict[str, tuple[str, ...]]] = {SOURCE_LOCALE: {}}
    unreviewed_lists: dict[str, list[str]] = {}
    for e in source.entries:
        if e.is_list:
            lists[SOURCE_LOCALE][e.context] = split_list(e.msgid)
        else:
            texts[SOURCE_LOCALE][e.context] = Text(e.msgid, True)

    for locale in source.languages:
        po = pos.get(locale)
        if po is None:
            continue
        texts.setdefault(locale, {})
        lists.setdefault(locale, {})
        for msg in po:
            if not msg.id:
                continue
            ctx = msg.context or ""
            entry = entries.get(ctx)
            where = f"{locale}/LC_MESSAGES/messages.po:{msg.lineno} ({ctx})"
            if entry is None:
                problems.append(Problem(locale, where, "not in the English source (run `make catalogs`)",
                                        "warning"))
                continue
            string = msg.string if isinstance(msg.string, str) else (msg.string[0] if msg.string else "")
            if not string.strip():
                continue
            reviewed = not msg.fuzzy
            if msg.id != entry.msgid:
                problems.append(Problem(locale, where, "translates an older English text; update it",
                                        "warning"))
                reviewed = False
            if entry.is_list:
                items = tuple(i for i in split_list(string))
                if locale == SOURCE_LOCALE:
                    items = tuple(dict.fromkeys(lists[SOURCE_LOCALE][ctx] + items))
                lists[locale][ctx] = items
                if not reviewed:
                    unreviewed_lists.setdefault(locale, []).append(ctx)
                continue
            if placeholders(string) != placeholders(entry.msgid):
                problems.append(Problem(
                    locale, where, f"placeholders {placeholders(string)} must be exactly "
                    f"{placeholders(entry.msgid)}; English is served"))
                continue
            try:
                string.format_map(_Sample())
            except (ValueError, IndexError) as exc:
                problems.append(Problem(locale, where, f"broken braces ({exc}); English is served"))
                continue
            if locale != SOURCE_LOCALE:
                texts[locale][ctx] = Text(string, reviewed)
        for e in source.entries:
            if e.context.startswith("text:escalation.") and e.context not in texts[locale] \
                    and locale != SOURCE_LOCALE:
                problems.append(Problem(locale, e.context, "safety template missing; English is served"))

    rows = english_phrases(phrase_rows(lists), texts)
    rows += [("number", str(value), locale, words) for locale in source.languages
             for value, words in spelled_numbers(locale)]
    index = PhraseIndex(rows, protected=command_words(rows), known=known_words(texts))
    return Catalog(
        source=source, languages=source.languages,
        texts=MappingProxyType({k: MappingProxyType(v) for k, v in texts.items()}),
        lists=MappingProxyType({k: MappingProxyType(v) for k, v in lists.items()}),
        index=index,
        topics=MappingProxyType({t.id: t for t in source.topics}),
        rules=MappingProxyType({r.id: r for r in source.rules}),
        unreviewed_lists=MappingProxyType({k: tuple(v) for k, v in unreviewed_lists.items()}),
        names=MappingProxyType({code: language_name(code) for code in source.languages}),
        accented=MappingProxyType(accented_words((loc, item) for (_k, _i, loc, item) in rows)),
        vocabulary=Vocabulary(frequency_table(source.languages), catalog_words(texts, rows)),
        toned=MappingProxyType(toned_spellings(rows)),
        problems=tuple(problems), serve_unreviewed=serve_unreviewed,
    )


def phrase_rows(lists: Mapping[str, Mapping[str, tuple[str, ...]]]) -> list[tuple[str, str, str, str]]:
    """(kind, id, locale, phrase) for every list item of every language."""
    return [(*_target(ctx), locale, item) for locale, by_ctx in lists.items() for ctx, items in by_ctx.items()
            for item in items]


def english_phrases(rows: list[tuple[str, str, str, str]],
                    texts: Mapping[str, Mapping[str, Text]]) -> list[tuple[str, str, str, str]]:
    """The rows, plus an English row for each phrase another language lists in English words only ("has a
    fever" in a Spanish list, for Spanglish): such a phrase is a sign of English as much as of that language."""
    english = {tok for (_k, _i, loc, item) in rows if loc == SOURCE_LOCALE
               for tok in phrase_tokens(item.replace("*", " "))}
    english |= {tok for text in texts.get(SOURCE_LOCALE, {}).values() for tok in phrase_tokens(text.string)}
    own = {}
    for loc, by_ctx in texts.items():
        own[loc] = {tok for text in by_ctx.values() for tok in phrase_tokens(text.string)}
    have = {(k, i, item) for (k, i, loc, item) in rows if loc == SOURCE_LOCALE}
    freq = frequency_table(tuple(texts))

    def local(word: str, loc: str) -> bool:
        return (word in own.get(loc, ()) and word not in english) or freq.get(word, {}).get(loc, 0.0) >= COMMON_ZIPF

    extra = []
    for kind, ident, loc, item in rows:
        if loc == SOURCE_LOCALE or kind not in ("topic", "rule") or (kind, ident, item) in have:
            continue
        words = [t for t in phrase_tokens(item.replace("*", " ").replace("...", " ")) if t != BREAK]
        if words and all(w in english or freq.get(w, {}).get(SOURCE_LOCALE, 0.0) >= COMMON_ZIPF for w in words) \
                and not all(local(w, loc) for w in words):
            extra.append((kind, ident, SOURCE_LOCALE, item))
            have.add((kind, ident, item))
    return rows + extra


def command_words(rows) -> set[str]:
    """Carrier and command words: never typo-matched onto or from (CANCEL is not CANCER)."""
    return {tok for (kind, _i, _l, item) in rows if kind == "command" for tok in phrase_tokens(item)}


TONE_LOCALES = ("vi",)  # languages whose tone marks tell words apart


def toned_spellings(rows) -> dict[tuple[str, str, str], frozenset[str]]:
    """(kind, id, folded word) -> the spellings with tones that the tone languages' phrases for that rule or
    topic use for the word."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for (kind, ident, locale, item) in rows:
        if locale not in TONE_LOCALES or kind not in ("topic", "rule", "not_symptom"):
            continue
        phrase = item.replace("*", " ").replace("...", " ")
        folded, written = phrase_tokens(phrase), accented_tokens(phrase)
        if len(folded) == len(written):
            for f, w in zip(folded, written, strict=True):
                out.setdefault((kind, ident, f), set()).add(w)
    return {key: frozenset(ws) for key, ws in out.items()}


def catalog_words(texts: Mapping[str, Mapping[str, Text]], rows) -> set[tuple[str, str]]:
    """(locale, word) for every word of each language's own texts and lists. English texts are the source
    of every language's fallback, so they count for English only."""
    written = {(locale, tok) for locale, by_ctx in texts.items() for text in by_ctx.values()
               for tok in phrase_tokens(text.string)}
    listed = {(locale, tok) for (_k, _i, locale, item) in rows for tok in phrase_tokens(item.replace("*", " "))}
    # Lists mix in the English words bilingual parents use ("may fever si baby") and texts the English
    # commands (MENU): those stay English.
    english = {w for loc, w in listed if loc == SOURCE_LOCALE}
    return {(loc, w) for loc, w in written | listed if w != BREAK and not w[0].isdigit()
            and (loc == SOURCE_LOCALE or w not in english)}


def known_words(texts: Mapping[str, Mapping[str, Text]]) -> set[str]:
    """Every word of the catalog's own texts, in every language: real words, so never typo-corrected
    ("infection" is not "injection")."""
    return {tok for by_ctx in texts.values() for text in by_ctx.values() for tok in phrase_tokens(text.string)}


class _Sample(dict):
    """Format values for checking a text: known placeholders get realistic values, others "0"."""

    def __missing__(self, key: str) -> str:
        return "0"


def _target(context: str) -> tuple[str, str]:
    """msgctxt -> (kind, id): "topic:fever:keywords" -> ("topic", "fever")."""
    parts = context.split(":")
    if parts[0] in ("topic", "rule"):
        return parts[0], parts[1]
    if parts[0] == "command":
        return "command", parts[1]
    return parts[1], parts[1]  # cue:negation -> ("negation", "negation")


_LOADED: dict[tuple, Catalog] = {}


def _files_key(messages_dir: Path, locales_dir: Path, serve_unreviewed: bool) -> tuple:
    files = sorted([*Path(messages_dir).glob("*.toml"), *Path(locales_dir).glob("*/LC_MESSAGES/messages.po")])
    stats = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        stats.append((str(f), st.st_mtime_ns, st.st_size))
    return (str(messages_dir), str(locales_dir), serve_unreviewed, tuple(stats))


def load_catalog(messages_dir: Path, locales_dir: Path, *, serve_unreviewed: bool = True) -> Catalog:
    """Read ``messages/`` and ``locales/<locale>/LC_MESSAGES/messages.po`` into a :class:`Catalog`.

    A broken language file never stops the service: it is reported in ``problems`` and that
    language falls back to English. A broken English source raises :class:`SourceError`. The same
    unchanged files give the same (immutable) catalog without reading them again.
    """
    key = _files_key(messages_dir, locales_dir, serve_unreviewed)
    cached = _LOADED.get(key)
    if cached is not None:
        return cached
    catalog = _load_catalog(messages_dir, locales_dir, serve_unreviewed=serve_unreviewed)
    _LOADED.clear()  # one catalog is kept: the files it was read from may change
    _LOADED[key] = catalog
    return catalog


def _load_catalog(messages_dir: Path, locales_dir: Path, *, serve_unreviewed: bool = True) -> Catalog:
    source = read_source(messages_dir)
    problems: list[Problem] = []
    pos = {}
    for locale in source.languages:
        path = locales_dir / locale / "LC_MESSAGES" / "messages.po"
        if locale == SOURCE_LOCALE and not path.exists():
            continue
        pos[locale] = _read_po(path, locale, problems)
    for p in problems:
        log.warning("catalog problem: %s", p)
    return build_catalog(source, pos, serve_unreviewed=serve_unreviewed, problems=problems)


class CatalogStore:
    """Holds the live catalog; ``swap`` replaces it whole, atomically, for the next request."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._lock = threading.Lock()

    @property
    def current(self) -> Catalog:
        return self._catalog

    def swap(self, catalog: Catalog) -> Catalog:
        with self._lock:
            old, self._catalog = self._catalog, catalog
        return old


__all__ = ["Catalog", "CatalogStore", "Problem", "SourceError", "build_catalog", "load_catalog"]


SAMPLE_VALUES = {"care_team": "+1 617-555-0142", "emergency": "911", "fever_c": "38,0", "fever_f": "100,4",
                 "reading": "37,2 C", "items": "1) xxxxxxxxxx 2) xxxxxxxxxx"}


def check(catalog: Catalog) -> list[Problem]:
    """Everything a coordinator must fix before publishing: load problems, plus untranslated safety
    texts, texts too long for SMS (escalations: 2 segments, the rest: 3), and the phone calls' table
    and spoken texts (:func:`assistant.voicetable.voice_problems`)."""
    from .segments import measure

    problems = list(catalog.problems)
    for locale in catalog.languages:
        have = catalog.texts.get(locale, {})
        if locale != SOURCE_LOCALE and not have and not catalog.lists.get(locale):
            continue  # already reported as missing or unreadable
        for entry in catalog.source.entries:
            if entry.is_list:
                if locale != SOURCE_LOCALE and entry.context.startswith(("rule:", "topic:")) \
                        and entry.context not in catalog.lists.get(locale, {}):
                    problems.append(Problem(locale, entry.context, "no words in this language yet", "warning"))
                continue
            text = have.get(entry.context) if locale != SOURCE_LOCALE else Text(entry.msgid, True)
            if text is None:
                severity = "error" if entry.context.startswith("text:escalation.") else "warning"
                if severity == "warning":
                    problems.append(Problem(locale, entry.context, "not translated; English is sent", severity))
                continue
            if entry.context.startswith("voice:"):
                continue  # said, not texted: checked below against the <Say> limits
            limit = 2 if entry.context.startswith("text:escalation.") else 3
            size = measure(text.string.format_map(_Sample(SAMPLE_VALUES)))
            if size.segments > limit:
                problems.append(Problem(locale, entry.context, f"{size.segments} SMS segments ({size.encoding}, "
                                        f"{size.units} units); keep it to {limit}",
                                        "error"))  # over budget: cut or split by MORE
    from .voicetable import voice_problems

    return problems + voice_problems(catalog)
