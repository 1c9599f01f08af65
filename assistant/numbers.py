"""Numbers written in words, so that "treinta y ocho y medio" or "三十八度五" is read as a temperature.

Spellings come from ``num2words`` (English, Spanish, Portuguese, French, Russian, Arabic, Korean,
Vietnamese) and, for Chinese, from the numerals themselves; the other languages' catalogs may list their
own words in the ``decimal_words`` and ``half_words`` cues and in symptom phrases. Only the numbers a
temperature is made of: 34-43 (Celsius), 93-107 (Fahrenheit) and 0-9 (after "point").
"""

from __future__ import annotations

import logging
from functools import lru_cache

log = logging.getLogger(__name__)

VALUES = (*range(10), *range(34, 44), *range(93, 108))
NUM2WORDS = {"en": "en", "es": "es", "pt": "pt_BR", "fr": "fr", "ru": "ru", "ar": "ar", "ko": "ko", "vi": "vi"}
_ZH_DIGITS = "零一二三四五六七八九"


def _chinese(n: int) -> list[str]:
    if n < 10:
        return [_ZH_DIGITS[n]]
    if n < 100:
        tens, units = divmod(n, 10)
        return [f"{_ZH_DIGITS[tens]}十{_ZH_DIGITS[units] if units else ''}"]
    hundreds, rest = divmod(n, 100)
    tens, units = divmod(rest, 10)
    middle = f"{_ZH_DIGITS[tens]}十" if tens else "零"
    return [f"{_ZH_DIGITS[hundreds]}百{middle}{_ZH_DIGITS[units] if units else ''}"]


@lru_cache(maxsize=16)
def spelled_numbers(locale: str) -> tuple[tuple[int, str], ...]:
    """(value, words) for every number a temperature is made of, in ``locale``'s words."""
    if locale == "zh_Hans":
        return tuple((n, w) for n in VALUES for w in _chinese(n))
    code = NUM2WORDS.get(locale)
    if code is None:
        return ()
    try:
        from num2words import num2words
    except ImportError:  # pragma: no cover - a dependency; digits still work
        log.warning("num2words is not installed: numbers in words are not read")
        return ()
    out = []
    for n in VALUES:
        try:
            words = num2words(n, lang=code)
        except (NotImplementedError, OverflowError, ValueError):
            continue
        out.append((n, words.replace("-", " ")))
        if locale == "ko" and n >= 10:  # Korean writes the degrees joined to the number: "삼십팔도"
            out.append((n, f"{words}도"))
        if locale == "en" and n > 100:  # "one hundred one" as well as "one hundred and one"
            out.append((n, words.replace("-", " ").replace(" and ", " ")))
    return tuple(out)
