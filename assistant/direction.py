"""Writing direction: which languages are written right to left, and numbers that read correctly in them.

In an Arabic sentence the Unicode bidirectional algorithm, which phones and browsers apply alike, turns
European digits that follow Arabic letters into Arabic numbers, and a hyphen does not join two of those:
"555-0100" is shown as "0100-555". Wrapping each number in a left-to-right isolate (U+2066 … U+2069)
keeps it whole and in order without changing the direction of the sentence around it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from babel import Locale

LRI, PDI = "\u2066", "\u2069"
# A number as replies write them: phone numbers (555-0100, +1 555 010 0123), temperatures (38.0, 100,4).
_NUMBER = re.compile(r"\+?[0-9](?:[0-9]|[-. ,/](?=[0-9]))*")


@lru_cache(maxsize=64)
def text_direction(locale: str) -> str:
    """``rtl`` or ``ltr`` for a locale code (``ltr`` for one Babel does not know)."""
    try:
        return "rtl" if Locale.parse(locale).character_order == "right-to-left" else "ltr"
    except Exception:
        return "ltr"


def html_lang(locale: str) -> str:
    """The BCP 47 tag for a ``lang`` attribute: ``zh_Hans`` is ``zh-Hans``."""
    return locale.replace("_", "-")


def isolate_numbers(text: str) -> str:
    """Each number of ``text`` made of parts (555-0100, 38.5, +1 555) wrapped in a left-to-right isolate.
    Plain digit runs (911, the 2 of a menu) need none, and a number already wrapped stays as it is."""
    if not text:
        return text

    def wrap(match: re.Match[str]) -> str:
        start = match.start()
        if match.group().isdigit() or (start > 0 and text[start - 1] == LRI):
            return match.group()  # a run of digits alone reads the same in either direction
        return f"{LRI}{match.group()}{PDI}"

    return _NUMBER.sub(wrap, text)


def for_locale(text: str, locale: str) -> str:
    """``text`` as a phone in ``locale`` should get it: numbers isolated in a right-to-left language."""
    return isolate_numbers(text) if text_direction(locale) == "rtl" else text
