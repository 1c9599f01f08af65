"""Which language to answer in.

The language of the matched words when they belong to one language (a script used by only one of
our languages counts as such a word, and common small words break ties); when they fit several, the
sender's stored preference; without one, the default if the words fit it, else the first of their
languages in the catalog's order ("temperatura" with no preference: Spanish). With no matched words:
the sender's preference, else the default.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from babel import Locale, UnknownLocaleError

from .matching import Hit
from .normalize import tokens

# Scripts that only one of the catalog's languages uses; checked on the raw text.
_SCRIPTS = (
    (re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"), "ko"),
    (re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), "zh_Hans"),
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0600-\u06ff]"), "ar"),
    # Letters only Vietnamese uses among our languages (ơ ư ă đ and the stacked tone marks).
    (re.compile(r"[ơưăđƠƯĂĐ\u1ea0-\u1ef9]"), "vi"),
)
STRONG_KINDS = ("topic", "rule", "command", "negation", "unsure", "temperature_words")


@dataclass(frozen=True)
class LanguageChoice:
    locale: str
    detected: bool  # True when the words themselves named one language


def script_locale(text: str, languages: Sequence[str]) -> str | None:
    for rx, code in _SCRIPTS:
        if code in languages and rx.search(text):
            return code
    return None


def choose(text: str, hits: Sequence[Hit], languages: Sequence[str], preference: str | None,
           default: str, *, english_neutral: bool = False) -> LanguageChoice:
    """Pick the reply language. ``english_neutral``: English-only words (carrier commands such as
    HELP) do not override a stored preference."""
    votes: Counter[str] = Counter()
    strong = [h for h in hits if h.target.kind in STRONG_KINDS]
    for h in strong:
        if english_neutral and preference and h.target.locales == {"en"}:
            continue
        for loc in h.target.locales:
            votes[loc] += h.length * (1.0 if h.similarity == 1.0 else 0.5)
    by_script = script_locale(text, languages)
    if by_script:
        votes[by_script] += 100
    if not votes:
        hints = Counter(loc for h in hits if h.target.kind == "language_hints" for loc in h.target.locales)
        if hints and (hints.most_common(1)[0][1] >= 2):
            votes = hints
    if not votes:
        return LanguageChoice(preference or default, False)
    best = max(votes.values())
    tied = [loc for loc in languages if votes.get(loc, 0) >= best - 1e-9]
    if len(tied) > 1:
        hints = Counter(loc for h in hits if h.target.kind == "language_hints" for loc in h.target.locales
                        if loc in tied)
        if hints:
            top = max(hints.values())
            tied = [loc for loc in tied if hints.get(loc, 0) == top]
    if len(tied) == 1:
        return LanguageChoice(tied[0], True)
    if preference:
        return LanguageChoice(preference, False)
    return LanguageChoice(default if default in tied else tied[0], False)


@lru_cache(maxsize=8)
def language_by_name(languages: tuple[str, ...]) -> dict[str, str]:
    """Normalised code or name (in any of our languages, from Babel's data) -> locale code."""
    names: dict[str, str] = {}

    def add(name: str | None, code: str) -> None:
        key = " ".join(tokens(name or ""))
        if key and key not in names:
            names[key] = code

    for code in languages:
        add(code, code)
        try:
            loc = Locale.parse(code)
        except (UnknownLocaleError, ValueError):
            continue
        add(loc.language, code)
        for other in languages:
            try:
                in_other = Locale.parse(other)
            except (UnknownLocaleError, ValueError):
                continue
            add(loc.get_language_name(in_other), code)
            add(loc.get_display_name(in_other), code)
            add(in_other.languages.get(code.split("_")[0]), code)
    return names
