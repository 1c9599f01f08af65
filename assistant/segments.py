"""SMS encoding and segment counts, and cutting a reply to fit a number of segments.

GSM 03.38: 160 septets in one segment, 153 per segment when concatenated; the extension table's
characters take two septets. Any other character makes the whole message UCS-2: 70 UTF-16 units in
one segment, 67 when concatenated (an emoji takes two units).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

# Typographic punctuation that phones show the same in GSM-7; replacing it keeps a reply out of UCS-2
# (what Twilio's "smart encoding" does). Letters are never changed.
_SMART = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"',
    "\u201e": '"', "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ", "\u2009": " ",
    "\u202f": " ", "\u2022": "-",
})


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets or UTF-16 code units
    segments: int


def smart_encode(text: str) -> str:
    """Replace typographic punctuation with its GSM-7 look-alike when that makes the text GSM-7; a text
    that is UCS-2 anyway (Chinese, Arabic...) keeps its own punctuation."""
    plain = text.translate(_SMART)
    return plain if plain != text and measure(plain).encoding == "GSM-7" else text


def measure(text: str) -> SmsSize:
    """Encoding, length in units and segment count of ``text`` as a carrier would send it."""
    chars = set(text)  # set operations run in C: every reply is measured several times
    if chars <= _GSM7:
        septets = len(text) + sum(text.count(ch) for ch in chars & GSM7_EXTENSION)
        return SmsSize("GSM-7", septets, _count(septets, 160, 153))
    units = len(text.encode("utf-16-le")) // 2
    return SmsSize("UCS-2", units, _count(units, 70, 67))


def _count(units: int, single: int, multi: int) -> int:
    if units == 0:
        return 1
    if units <= single:
        return 1
    return -(-units // multi)


# Sentence ends in the scripts we serve: Latin and Arabic ones only before a space ("100.4" is one number),
# Chinese and Japanese ones anywhere.
_SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+|(?<=[。！？])\s*")
# A number the reader must get whole: a phone number, a temperature ("+1 617-555-0142", "38.0", "100,4").
# Its left-to-right isolate, if any (assistant.direction), stays with it.
NUMBER = re.compile(r"\u2066?(?:[+(]?\d(?:[\d().,/-]|\s(?=[\d(]))*\d|\d)\u2069?")


def fit(text: str, max_segments: int, hint: str) -> tuple[str, str]:
    """Cut ``text`` so that it fits ``max_segments``; return (what to send, the rest for MORE).

    The cut falls after a sentence when one fits, else between words, else between characters, and never
    inside a number; the sent part ends with ``hint`` (e.g. "Text MORE for the rest.") when something is
    left over.
    """
    if measure(text).segments <= max_segments:
        return text, ""
    numbers = [m.span() for m in NUMBER.finditer(text)]

    def whole(end: int) -> int:
        """``end`` moved back to before any number it would cut."""
        for a, b in numbers:
            if a < end < b:
                return a
        return end

    cuts = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text)]
    for end in reversed(cuts):
        if whole(end) != end:
            continue
        head = text[:end].rstrip()
        if measure(f"{head} {hint}").segments <= max_segments:
            return f"{head} {hint}", text[end:].lstrip()
    # No sentence fits: cut between words (or characters for scripts without spaces).
    lo, hi = 1, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(f"{text[:mid].rstrip()}... {hint}").segments <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    end = whole(lo)
    space = text.rfind(" ", 0, end)
    if space > end * 0.6:
        end = whole(space)
    end = max(end, 1)
    return f"{text[:end].rstrip()}... {hint}", text[end:].lstrip()
