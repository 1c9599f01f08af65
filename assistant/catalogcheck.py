"""Everything `assistant catalog check` (and every publish and import) looks at, with file and line.

The content is handled as one unit, a mapping of repository paths to bytes (``messages/*.toml`` and
``locales/<locale>/LC_MESSAGES/messages.po``): read from a directory, from a spreadsheet import or from a
revision stored in the database, it is checked and built the same way.

Errors block publishing; warnings do not. The service itself never needs these checks to be safe (a
broken language falls back to English, see catalog.py): they keep a coordinator's mistake from ever
reaching a caregiver in the first place.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po

from .catalog import SOURCE_LOCALE, Catalog, Problem, build_catalog, check
from .normalize import phrase_tokens
from .pofile import PoFile, parse_po
from .source import SOURCE_FILES, VOICE_FILE, Source, SourceError, parse_source

Content = dict[str, bytes]  # "messages/topics.toml" -> bytes, "locales/es/LC_MESSAGES/messages.po" -> bytes

# Texts a caregiver must get in their own language whatever else is missing (issue 11): escalations,
# fever advice, help, fallback, the opt-out and opt-in confirmations.
SAFETY_CONTEXTS = ("text:escalation.emergency", "text:escalation.call_now", "text:triage.low_temperature",
                   "text:triage.below_threshold", "text:help", "text:fallback", "text:stop", "text:start",
                   # on a call: what a caller hears first in an emergency, before a transfer, and when nobody answers
                   "voice:escalation.emergency", "voice:escalation.call_now", "voice:no_answer", "voice:goodbye")
# Every text the code itself sends (conversation.py, voice.py): a revision whose English lacks one would
# answer with an error, or in English, so it cannot be published (tests/test_catalogcheck.py keeps this list
# complete by reading the code). Topic texts and a rule's advice are required by the topic or rule itself.
CODE_TEXTS = ("text:escalation.emergency", "text:escalation.call_now", "text:stop", "text:start", "text:help",
              "text:fallback", "text:thanks", "text:empty", "text:media_only", "text:menu", "text:did_you_mean",
              "text:language.menu", "text:language.set", "text:more.hint", "text:more.none", "text:source",
              "text:triage.low_temperature", "text:triage.below_threshold", "text:care_team",
              "voice:escalation.emergency", "voice:escalation.call_now", "voice:no_answer", "voice:goodbye",
              "voice:welcome", "voice:ask", "voice:option", "voice:menu.more", "voice:menu.end", "voice:after",
              "voice:after.keypad", "voice:language.option", "voice:language.more", "voice:no_input",
              "voice:wrong_key", "voice:not_understood", "voice:transfer", "voice:texted", "voice:not_texted",
              "voice:language.key", "voice:did_you_mean")
# Words the carriers act on themselves (../shared/twilio.md): a keyword equal to one of them would opt a
# parent out, back in, or get the carrier's help text instead of ours.
CARRIER_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout",
                           "opt out", "start", "yes", "unstop", "help", "info"})
# Lists whose words are the carrier's own on purpose.
_CARRIER_LISTS = ("command:stop", "command:start", "command:help")
_DIGIT_PLACEHOLDERS = ("{care_team}", "{emergency}")


def po_path(locale: str) -> str:
    return f"locales/{locale}/LC_MESSAGES/messages.po"


def read_tree(root: Path) -> Content:
    """The content under ``root`` (which holds ``messages/`` and ``locales/``)."""
    return read_dirs(Path(root) / "messages", Path(root) / "locales")


def read_dirs(messages_dir: Path, locales_dir: Path) -> Content:
    content: Content = {}
    for f in sorted(Path(messages_dir).glob("*.toml")):
        content[f"messages/{f.name}"] = f.read_bytes()
    for f in sorted(Path(locales_dir).glob("*/LC_MESSAGES/messages.po")):
        content[po_path(f.parent.parent.name)] = f.read_bytes()
    return content


def write_tree(content: Mapping[str, bytes], root: Path) -> list[Path]:
    """Write ``content`` under ``root``; returns the files that changed."""
    changed = []
    for rel, data in sorted(content.items()):
        path = Path(root) / rel
        if path.exists() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        changed.append(path)
    return changed


def source_of(content: Mapping[str, bytes]) -> Source:
    """The English source in ``content``; :class:`SourceError` names what is wrong."""
    texts = {}
    for name in SOURCE_FILES:
        data = content.get(f"messages/{name}")
        if data is None:
            raise SourceError(f"messages/{name} is missing")
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"messages/{name} is not UTF-8") from exc
    voice = content.get(f"messages/{VOICE_FILE}")  # optional: the phone prompts and the call table
    if voice is not None:
        try:
            texts[VOICE_FILE] = voice.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"messages/{VOICE_FILE} is not UTF-8") from exc
    try:
        return parse_source(texts)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"messages/: {exc}") from exc


@dataclass
class LocaleStatus:
    translated: int = 0
    reviewed: int = 0
    unreviewed: int = 0
    stale: int = 0
    missing: int = 0
    over_budget: int = 0


@dataclass
class Report:
    problems: list[Problem]
    catalog: Catalog | None
    status: dict[str, LocaleStatus] = field(default_factory=dict)
    files: dict[str, PoFile] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def build(content: Mapping[str, bytes], *, serve_unreviewed: bool = True) -> tuple[Catalog, dict[str, PoFile],
                                                                                   list[Problem]]:
    """Build the catalog from ``content``. A locale whose file does not parse strictly is left out (English
    is served for it) and reported. Raises :class:`SourceError` for a broken English source."""
    source = source_of(content)
    problems: list[Problem] = []
    files: dict[str, PoFile] = {}
    pos: dict[str, object] = {}
    for locale in source.languages:
        path = po_path(locale)
        data = content.get(path)
        if data is None:
            if locale != SOURCE_LOCALE:
                problems.append(Problem(locale, path, "catalog file is missing; English is served"))
            continue
        parsed = parse_po(data)
        files[locale] = parsed
        if parsed.errors:
            for err in parsed.errors:
                problems.append(Problem(locale, f"{path}:{err.lineno}", err.message))
            continue
        pos[locale] = read_po(io.BytesIO(data), locale=locale, abort_invalid=True)
    catalog = build_catalog(source, pos, serve_unreviewed=serve_unreviewed)
    return catalog, files, problems


def check_content(content: Mapping[str, bytes], *, serve_unreviewed: bool = True) -> Report:
    """Every problem in ``content``, errors first, each with its locale, file and line."""
    try:
        catalog, files, problems = build(content, serve_unreviewed=serve_unreviewed)
    except SourceError as exc:
        return Report([Problem(SOURCE_LOCALE, "messages/", str(exc))], None)
    where = _Locator(catalog.source, files)
    for p in check(catalog):  # load problems (placeholders, braces...) and the budget checks
        problems.append(Problem(p.locale, where.relocate(p.locale, p.where), p.message, p.severity))
    problems += _code_texts(catalog.source)
    problems += _safety(catalog, files, where)
    problems += _digits(catalog, where)
    problems += _carrier_words(catalog, where)
    problems += _triage_kept(catalog, where)
    problems += _indistinct_topics(catalog, where)
    problems += _stale_and_unreviewed(catalog, files, where)
    problems = _dedupe(problems)
    order = {loc: i for i, loc in enumerate(catalog.languages)}
    problems.sort(key=lambda p: (p.severity != "error", order.get(p.locale, 99), _sort_where(p.where)))
    return Report(problems, catalog, status(catalog, files, problems), files)


def _sort_where(where: str) -> tuple[str, int]:
    m = re.match(r"^(.*?):(\d+)", where)
    return (m.group(1), int(m.group(2))) if m else (where, 0)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    # A safety text missing is an error here; the general "not translated" warning for it says less. One cause,
    # one line: a text refused for its placeholders or braces is not also "missing" (twice).
    errors_at = {(p.locale, _context_of(p.where)) for p in problems if p.severity == "error"}
    cause_at = {(p.locale, _context_of(p.where)) for p in problems
                if p.severity == "error" and p.message.startswith(("placeholders ", "broken braces"))}
    missing_at = {(p.locale, _context_of(p.where)) for p in problems if p.message.startswith("safety text missing")}
    out, seen = [], set()
    for p in problems:
        key = (p.locale, p.where, p.message)
        at = (p.locale, _context_of(p.where))
        if key in seen:
            continue
        if p.severity != "error" and at in errors_at and "not translated" in p.message:
            continue
        if p.message.startswith(("safety text missing", "safety template missing")) and at in cause_at:
            continue
        if p.message.startswith("safety template missing") and at in missing_at:
            continue
        seen.add(key)
        out.append(p)
    return out


def _context_of(where: str) -> str:
    m = re.search(r"\(([^()]*)\)\s*$", where)
    return m.group(1) if m else where


class _Locator:
    """File and line of an entry: the msgctxt line in a language's .po, the line in messages/*.toml."""

    def __init__(self, source: Source, files: Mapping[str, PoFile]) -> None:
        self.source_lines = {e.context: e.lineno for e in source.entries}
        self.lines = {loc: {e.context: e.lineno for e in f.entries if e.msgid} for loc, f in files.items()}

    def __call__(self, locale: str, context: str) -> str:
        if locale == SOURCE_LOCALE:
            kind = context.split(":", 1)[0]
            name = {"topic": "topics.toml", "rule": "triage.toml", "voice": VOICE_FILE}.get(kind, "system.toml")
            return f"messages/{name}:{self.source_lines.get(context, 1)} ({context})"
        line = self.lines.get(locale, {}).get(context)
        return f"{po_path(locale)}:{line} ({context})" if line else f"{po_path(locale)} ({context})"

    def relocate(self, locale: str, where: str) -> str:
        if where.startswith(("locales/", "messages/")):
            return where
        return self(locale, _context_of(where))


def missing_code_texts(source: Source) -> list[str]:
    """The texts the code sends (and the advice its rules name) that ``source`` does not define."""
    known = {e.context for e in source.entries}
    wanted = [*CODE_TEXTS, *(f"text:{r.advice}" for r in source.rules if r.advice)]
    return [ctx for ctx in dict.fromkeys(wanted) if ctx not in known]


def _code_texts(source: Source) -> list[Problem]:
    out = []
    for ctx in missing_code_texts(source):
        kind, key = ctx.split(":", 1)
        name = VOICE_FILE if kind == "voice" else "system.toml"
        out.append(Problem(SOURCE_LOCALE, f"messages/{name} ({ctx})", f'"{key}" is missing from [texts]: the service '
                           "sends this text (every language would get an error or English instead); put it back"))
    return out


def _safety(catalog: Catalog, files: Mapping[str, PoFile], where: _Locator) -> list[Problem]:
    out = []
    known = {e.context for e in catalog.source.entries}
    for locale in catalog.languages:
        if locale == SOURCE_LOCALE or locale not in files or files[locale].errors:
            continue  # a missing or unreadable file is reported as such
        have = catalog.texts.get(locale, {})
        for ctx in SAFETY_CONTEXTS:
            if ctx in known and ctx not in have:
                out.append(Problem(locale, where(locale, ctx), "safety text missing, empty or unusable: "
                                   "a caregiver would get it in English"))
    return out


def _digits_in(text: str) -> list[str]:
    """The digits a text writes itself (not its {placeholders}), in any script, as 0-9."""
    text = re.sub(r"\{\w*\}", "", text)
    return [str(unicodedata.digit(ch)) for ch in text if unicodedata.digit(ch, None) is not None]


def _digits(catalog: Catalog, where: _Locator) -> list[Problem]:
    out = []
    for ctx, english in catalog.texts[SOURCE_LOCALE].items():
        # The safety texts that carry the numbers; a topic summary may write a date its own way.
        if ctx not in SAFETY_CONTEXTS or not any(p in english.string for p in _DIGIT_PLACEHOLDERS):
            continue
        want = _digits_in(english.string)
        for locale in catalog.languages:
            entry = catalog.texts.get(locale, {}).get(ctx)
            if locale == SOURCE_LOCALE or entry is None:
                continue
            got = _digits_in(entry.string)
            if sorted(got) != sorted(want):
                out.append(Problem(locale, where(locale, ctx), f"digits changed in a care-team/emergency text: "
                                   f"{''.join(got) or 'none'} where the English has {''.join(want) or 'none'} "
                                   "(numbers come only from {care_team} and {emergency})"))
    return out


def _folded(item: str) -> str:
    return " ".join(phrase_tokens(item.replace("*", " ").replace("...", " ")))


def _carrier_words(catalog: Catalog, where: _Locator) -> list[Problem]:
    out = []
    for locale, by_ctx in catalog.lists.items():
        for ctx, items in by_ctx.items():
            if ctx in _CARRIER_LISTS or not ctx.startswith(("topic:", "rule:", "command:")):
                continue
            for item in items:
                if _folded(item) in CARRIER_WORDS:
                    out.append(Problem(locale, where(locale, ctx), f"'{item}' is a carrier word (STOP, CANCEL, "
                                       "START, HELP...): the phone company acts on it before we see it; remove it"))
    return out


def _triage_kept(catalog: Catalog, where: _Locator) -> list[Problem]:
    """Every symptom phrase, texted alone, must still escalate: a keyword or word list that turns one into a
    topic answer (or reads it as no symptom) is an error, named with the keyword's line."""
    from .conversation import Assistant
    from .triage import assess

    out, seen = [], set()
    for locale, by_ctx in catalog.lists.items():
        for ctx, items in by_ctx.items():
            kind, ident = ctx.split(":")[:2]
            if kind == "rule":
                level = catalog.rules[ident].level if ident in catalog.rules else "none"
            elif kind == "topic" and ctx.endswith(":keywords") and ident in catalog.topics:
                level = catalog.topics[ident].level  # symptom topics (fever, chills) escalate too
            else:
                continue
            if level not in ("emergency", "call_now"):
                continue
            for item in items:
                if item.startswith("*"):
                    continue
                text = item.replace("...", " ").replace("*", "")
                _body, toks, hits = Assistant._read(catalog, text)
                if assess(catalog, toks, hits, 38.0).level in ("emergency", "call_now"):
                    continue
                culprits = [h.target for h in hits if h.target.kind not in ("rule", "topic") or
                            (h.target.kind == "topic" and catalog.topics[h.target.id].level != "call_now")]
                lists = sorted({_list_of(t.kind, t.id) for t in culprits}, key=_blame_order)
                key = (locale, ctx, item)
                if key in seen:
                    continue
                seen.add(key)
                what = f"{kind} {ident}" if kind == "rule" else f"topic {ident}"
                if not lists:
                    out.append(Problem(locale, where(locale, ctx), f"'{item}' ({level} symptom, {what}) no longer "
                                       "escalates when texted alone"))
                    continue
                out.append(Problem(locale, where(locale, lists[0]), f"'{item}' ({level} symptom, {what}) no longer "
                                   f"escalates when texted: it is read as {', '.join(lists)}. Remove what matches it "
                                   f"from {lists[0]}"))
    return out


def _list_of(kind: str, ident: str) -> str:
    """The list (msgctxt) a phrase index target comes from: ("not_symptom", "not_symptom") -> "cue:not_symptom"."""
    if kind == "topic":
        return f"topic:{ident}:keywords"
    if kind == "rule":
        return f"rule:{ident}:phrases"
    if kind == "command":
        return f"command:{ident}"
    return f"cue:{ident}"


_BLAME = ("cue:not_symptom", "cue:negation", "cue:negation_after", "cue:unsure", "topic:", "command:")


def _blame_order(context: str) -> tuple[int, str]:
    """Which list most likely swallowed a symptom: the everyday phrases and negations before the hints."""
    return next((i for i, p in enumerate(_BLAME) if context.startswith(p)), len(_BLAME)), context


def _indistinct_topics(catalog: Catalog, where: _Locator) -> list[Problem]:
    out = []
    for locale, by_ctx in catalog.lists.items():
        owner: dict[str, str] = {}
        for ctx, items in by_ctx.items():
            if not (ctx.startswith("topic:") and ctx.endswith(":keywords")):
                continue
            for item in items:
                folded = _folded(item)
                other = owner.setdefault(folded, ctx)
                if other != ctx:
                    out.append(Problem(locale, where(locale, ctx), f"'{item}' is also a keyword of "
                                       f"{other.split(':')[1]}: the two topics cannot be told apart by it",
                                       "warning"))
    return out


def _stale_and_unreviewed(catalog: Catalog, files: Mapping[str, PoFile], where: _Locator) -> list[Problem]:
    out = []
    source = {e.context: e.msgid for e in catalog.source.entries}
    for locale, f in files.items():
        if locale == SOURCE_LOCALE or f.errors:
            continue
        unreviewed = []
        for e in f.entries:
            if not e.msgid or e.context not in source or not e.msgstr.strip():
                continue
            if e.previous_msgid is not None and e.previous_msgid != e.msgid:
                out.append(Problem(locale, where(locale, e.context), "stale: the English changed since this was "
                                   "translated; check the translation and clear 'Needs work'", "warning"))
            elif e.fuzzy:
                unreviewed.append(e.lineno)
        if unreviewed:
            out.append(Problem(locale, f"{po_path(locale)}:{unreviewed[0]}", f"{len(unreviewed)} entries unreviewed "
                               f"(marked 'Needs work'); `assistant catalog unreviewed --locale {locale}` lists them",
                               "warning"))
    return out


def status(catalog: Catalog, files: Mapping[str, PoFile], problems: list[Problem]) -> dict[str, LocaleStatus]:
    """Per locale: translated, reviewed, unreviewed, stale, missing and over-budget counts."""
    source = {e.context: e.msgid for e in catalog.source.entries}
    out: dict[str, LocaleStatus] = {}
    for locale in catalog.languages:
        st = out.setdefault(locale, LocaleStatus())
        f = files.get(locale)
        entries = f.by_context() if f and not f.errors else {}
        for ctx, msgid in source.items():
            e = entries.get(ctx)
            if locale == SOURCE_LOCALE:
                st.translated += 1
                st.reviewed += 1
                continue
            if e is None or not e.msgstr.strip():
                st.missing += 1
                continue
            st.translated += 1
            stale = e.msgid != msgid or (e.previous_msgid is not None and e.previous_msgid != e.msgid)
            st.stale += stale
            if e.fuzzy or stale:
                st.unreviewed += 1
            else:
                st.reviewed += 1
        st.over_budget = sum(1 for p in problems if p.locale == locale and "SMS segments" in p.message)
    return out
