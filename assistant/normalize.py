"""Text normalisation shared by keywords and caregiver texts, so both sides compare the same way.

Case, accents and tones, Arabic letter variants and diacritics, Unicode digits, punctuation, emoji,
emphasis ("feverrrr") and spacing are folded; Chinese and Japanese characters become one token each, since
those scripts are written without spaces.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

BREAK = "|"  # token standing for sentence punctuation; no phrase contains it


def _build_fold_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    ranges = [(0x00C0, 0x024F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x1E00, 0x1EFF)]
    for lo, hi in ranges:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
            if stripped and stripped != ch:
                table[cp] = stripped
    for cp in range(0x0300, 0x0370):  # combining diacritics
        table[cp] = None
    for cp in [*range(0x064B, 0x0660), 0x0670, 0x0640]:  # Arabic harakat, superscript alef, tatweel
        table[cp] = None
    table.update({ord(k): v for k, v in {
        "đ": "d", "ð": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "ı": "i", "ħ": "h",
        # Arabic: alef variants, alef maqsura, taa marbuta and hamza seats fold as search engines do.
        "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي",
        "٫": ".", "٬": ",", "،": ",", "؛": ";", "؟": "?",
        # Apostrophes join the letters around them: can't -> cant, l'enfant -> lenfant.
        "'": "", "’": "", "‘": "", "ʼ": "", "`": "", "´": "",
    }.items()})
    # Other scripts' digits (Arabic-Indic, Devanagari...) become ASCII; NFKC already covers the rest.
    for cp in range(0x0660, 0x10000):
        ch = chr(cp)
        if unicodedata.category(ch) == "Nd":
            table[cp] = str(unicodedata.decimal(ch))
    return table


_FOLD = _build_fold_table()
# A number (with either decimal mark), or a run of letters; CJK ideographs and kana split one by one.
_TOKEN = re.compile(
    r"\d+(?:[.,]\d+)?"
    r"|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
    r"|[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
    r"|[.,!?;:。，、！？；\n]+"
)
# Three or more of the same letter are emphasis ("sooo", "feverrrr"); doubles are spelling (chill/child).
_REPEAT = re.compile(r"([^\W\d_])\1{2,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def fold(text: str) -> str:
    """Lower-case, compatibility-normalised text without accents, tones or Arabic diacritics."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)


# Folding without taking accents and tones off: the same tokens, spelled as written ("ơi", not "oi").
_KEEP_ACCENTS = {cp: v for cp, v in _FOLD.items()
                 if (v is not None and not unicodedata.category(chr(cp)).startswith("L")) or chr(cp) in "'’‘ʼ`´"}


def tokens(text: str) -> list[str]:
    """The matching tokens of ``text``; sentence punctuation becomes :data:`BREAK`."""
    return _tokens(fold(text))


def accented_tokens(text: str) -> list[str]:
    """:func:`tokens` with the accents and tones kept, position for position (when the text's marks are
    all composed; otherwise the two lists may differ in length)."""
    return _tokens(unicodedata.normalize("NFKC", text).casefold().translate(_KEEP_ACCENTS))


def _tokens(folded: str) -> list[str]:
    out = []
    emphasis = _REPEAT.search(folded) is not None  # most texts have none: no per-word substitution then
    for tok in _TOKEN.findall(folded):
        ch = tok[0]
        if ch.isdigit():
            out.append(tok)
        elif ch in ".,!?;:。，、！？；\n":
            if out and out[-1] != BREAK:
                out.append(BREAK)
        else:
            out.append(_REPEAT.sub(r"\1", tok) if emphasis else tok)
    while out and out[-1] == BREAK:
        out.pop()
    return out


@lru_cache(maxsize=100_000)
def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """:func:`tokens` of a catalog phrase or text, remembered: a catalog is rebuilt from the same words."""
    return tuple(tokens(phrase))
