"""Which of our languages a word belongs to, and how common it is there.

Two sources: word-frequency data from ``wordfreq`` (every language it covers among ours: not Somali or
Haitian Creole) and the catalog's own words in each language (its texts, keyword lists and the
``common_words`` cue, which coordinators fill where no frequency data exists). Words are folded the way
texts are (:func:`assistant.normalize.fold`), so "nó" (Vietnamese "he") is looked up as "no".

Used to tell whose word a short shared word is ("di" is Tagalog "not" and Spanish "I gave"), and to keep
typo matching away from real words ("sinabi" is a Tagalog verb, not a misspelled symptom).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType

from .normalize import fold

log = logging.getLogger(__name__)

# wordfreq's name for each of our locales that it covers.
WORDFREQ_CODES = {"en": "en", "es": "es", "zh_Hans": "zh", "vi": "vi", "ko": "ko", "tl": "fil", "ru": "ru",
                  "ar": "ar", "pt": "pt", "fr": "fr"}
CATALOG_ZIPF = 5.0  # a word of the catalog's own text in a language counts as a common word there
# ... and as one of the most common words in a language without frequency data (Haitian Creole, Somali),
# whose small words ("li", "te", "ba") would otherwise always lose to a language with data.
UNMEASURED_ZIPF = 6.5
COMMON_ZIPF = 3.0  # about once per million words: "common" in a language the text is known to be in
EVERYDAY_ZIPF = 4.0  # ten times that: "common" when the text's language is unknown ("fevr" is a rare French
# abbreviation, and a lone "fevr" is a misspelled fever; "sinabi" is an everyday Tagalog verb)
CLOSE = 1.5  # a language whose frequency is this close to the best one shares the word
NEUTRAL_SHARE = 6  # a word common in this many of our languages says nothing about the language
# Languages not written in Latin letters: wordfreq's lists for them also hold the Latin-letter strings of
# web pages ("img", "http"), which are no sign of the language (a lone "img" was answered in Russian).
# Their romanized words come from the catalog's own lists instead.
OTHER_SCRIPTS = {"zh_Hans", "ko", "ru", "ar"}


@lru_cache(maxsize=4)
def frequency_table(locales: tuple[str, ...]) -> Mapping[str, Mapping[str, float]]:
    """Folded word -> {locale: Zipf frequency} from wordfreq's small lists (words at least about once per
    million). Built once per process (about a second); empty when wordfreq is not installed."""
    try:
        from wordfreq import get_frequency_dict
    except ImportError:  # pragma: no cover - a dependency; the catalog's own words still work
        log.warning("wordfreq is not installed: word languages come from the catalog only")
        return MappingProxyType({})
    out: dict[str, dict[str, float]] = {}
    for locale in locales:
        code = WORDFREQ_CODES.get(locale)
        if code is None:
            continue
        for word, freq in get_frequency_dict(code, wordlist="small").items():
            zipf = round(math.log10(freq) + 9, 2)
            if zipf < COMMON_ZIPF:
                continue
            for key in fold(word).split():
                if locale in OTHER_SCRIPTS and key.isascii():
                    continue
                scores = out.setdefault(key, {})
                if scores.get(locale, 0.0) < zipf:
                    scores[locale] = zipf
    return MappingProxyType(out)


class Vocabulary:
    """Word -> the languages it is a word of, with a frequency score."""

    def __init__(self, frequencies: Mapping[str, Mapping[str, float]],
                 catalog_words: Iterable[tuple[str, str]]) -> None:
        self._freq = frequencies
        own: dict[str, set[str]] = {}
        for locale, word in catalog_words:
            own.setdefault(word, set()).add(locale)
        self._own = {w: frozenset(locs) for w, locs in own.items()}
        self._cache: dict[str, frozenset[str]] = {}

    def scores(self, word: str) -> dict[str, float]:
        scores = dict(self._freq.get(word, {}))
        for locale in self._own.get(word, ()):
            own = CATALOG_ZIPF if locale in WORDFREQ_CODES else UNMEASURED_ZIPF
            scores[locale] = max(scores.get(locale, 0.0), own)
        return scores

    def languages(self, word: str) -> frozenset[str]:
        """The languages ``word`` most plausibly belongs to: those whose frequency is close to the best."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        scores = self.scores(word)
        top = max(scores.values(), default=0.0)
        result = frozenset(loc for loc, z in scores.items() if z >= top - CLOSE)
        if len(self._cache) < 50_000:
            self._cache[word] = result
        return result

    def is_common(self, word: str, locales: Iterable[str] | None = None) -> bool:
        """Whether ``word`` is a common word in one of ``locales``, or, when None, a very common word in any."""
        scores = self.scores(word)
        if locales is None:
            return any(z >= EVERYDAY_ZIPF for z in scores.values())
        return any(scores.get(loc, 0.0) >= COMMON_ZIPF for loc in locales)

    def frequency(self, word: str, locale: str) -> float:
        """The measured Zipf frequency of ``word`` in ``locale`` (0 without data)."""
        return self._freq.get(word, {}).get(locale, 0.0)

    def is_everyday(self, word: str, locales: Iterable[str]) -> bool:
        """Whether ``word`` is measured as a very common word in one of ``locales`` (frequency data only: a
        catalog's own words say a word exists there, not how common it is)."""
        scores = self._freq.get(word, {})
        return any(scores.get(loc, 0.0) >= EVERYDAY_ZIPF for loc in locales)

    def is_neutral(self, word: str) -> bool:
        """A word of many of our languages (a drug name, "ok"): no sign of any one language."""
        return len(self.languages(word)) >= NEUTRAL_SHARE


EMPTY = Vocabulary({}, ())
