"""Which language to answer in.

The language of the matched words when they belong to one language (a script used by only one of
our languages counts as such a word, and common small words break ties); when they fit several, the
sender's stored preference; without one, the default if the words fit it, else the first of their
languages in the catalog's order ("temperatura" with no preference: Spanish). With no matched words:
the sender's preference, else the default.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from babel import Locale, UnknownLocaleError

from .matching import Hit, PhraseIndex
from .normalize import BREAK, tokens
from .vocabulary import Vocabulary

# Scripts that only one of the catalog's languages uses; checked on the raw text.
_SCRIPTS = (
    (re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"), "ko"),
    (re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), "zh_Hans"),
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0600-\u06ff]"), "ar"),
    # Letters only Vietnamese uses among our languages (ơ ư ă đ and the stacked tone marks).
    (re.compile(r"[ơưăđƠƯĂĐ\u1ea0-\u1ef9]"), "vi"),
)
_ACCENTED = re.compile(r"[À-ÖØ-öø-ɏ\u1e00-\u1eff]")
_RAW_WORD = re.compile(r"[^\W\d_]+")
WORD_WEIGHT = 1.0  # an everyday word outside the catalog's phrases (bench/language.py measured 0.25-2)
UNSURE_MARGIN = 1.0  # votes by which another language must beat the sender's known one
STRONG_KINDS = ("topic", "rule", "command", "negation", "unsure", "temperature_words")


@dataclass(frozen=True)
class LanguageChoice:
    locale: str
    detected: bool  # True when the words themselves named one language
    # Without a known language for the sender: the runner-up when it was nearly as likely (an escalation
    # may then start in both).
    also: str | None = None


def script_locale(text: str, languages: Sequence[str]) -> str | None:
    for rx, code in _SCRIPTS:
        if code in languages and rx.search(text):
            return code
    return None


def accented_words(items: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """Accented spellings of the catalog's words -> languages that write them so ("fatigué": fr)."""
    out: dict[str, set[str]] = {}
    for locale, phrase in items:
        for w in _RAW_WORD.findall(unicodedata.normalize("NFC", phrase).casefold()):
            if _ACCENTED.search(w):
                out.setdefault(w, set()).add(locale)
    return {w: frozenset(locs) for w, locs in out.items()}


def choose(text: str, hits: Sequence[Hit], languages: Sequence[str], preference: str | None,
           default: str, *, english_neutral: bool = False,
           accented: Mapping[str, frozenset[str]] | None = None, toks: Sequence[str] = (),
           vocabulary: Vocabulary | None = None) -> LanguageChoice:
    """Pick the reply language. ``english_neutral``: English-only words (carrier commands such as
    HELP) do not override a stored preference."""
    # Each word position counts once per language that has a phrase covering it, so a language does
    # not win by listing the same word twice ("vaccine" and "vaccin*").
    strong_hits = [h for h in hits if h.target.kind in STRONG_KINDS
                   and not (english_neutral and preference and h.target.locales == {"en"})]
    exact = [h for h in strong_hits if h.similarity == 1.0]
    covered: dict[str, set[int]] = {}
    for h in exact or strong_hits:  # typo-corrected words vote only when nothing matched exactly
        for loc in h.target.locales:
            covered.setdefault(loc, set()).update(range(h.start, h.end))
    weight = 1.0 if exact else 0.5
    votes: Counter[str] = Counter({loc: weight * len(pos) for loc, pos in covered.items()})
    strong = bool(votes)
    # Small common words: a word only one language has counts fully, a shared one counts less.
    hint_positions: dict[int, frozenset[str]] = {}
    for h in hits:
        if h.target.kind == "language_hints":
            hint_positions[h.start] = hint_positions.get(h.start, frozenset()) | h.target.locales
    for i, locs in hint_positions.items():
        if vocabulary is not None and i < len(toks):
            # A small word of one language's list that is as common in others ("a", "le") is shared.
            locs = locs | vocabulary.languages(toks[i])  # the vocabulary knows only our languages
        for loc in locs:
            votes[loc] += 1.0 / len(locs)
    if vocabulary is not None:
        # Every other word: the languages it is an everyday word of ("bom dia", "merci", "nos vemos").
        matched = set(hint_positions) | {i for h in strong_hits for i in range(h.start, h.end)}
        for i, tok in enumerate(toks):
            if i in matched or tok == BREAK or tok[0].isdigit() or vocabulary.is_neutral(tok):
                continue
            locs = vocabulary.languages(tok)
            for loc in locs:
                votes[loc] += WORD_WEIGHT / len(locs)
    by_script = script_locale(text, languages)
    if by_script:
        votes[by_script] += 100
    if votes and _ACCENTED.search(text):
        if "en" in votes:
            votes["en"] *= 0.5  # English is written without accents
        for w in _RAW_WORD.findall(unicodedata.normalize("NFC", text).casefold()):
            for loc in (accented or {}).get(w, ()):  # the exact accented spelling: "fatigué" is French
                if loc in votes:
                    votes[loc] += 0.5
    if not votes or (not strong and max(votes.values()) < 1.0):  # one word of one language is enough
        return LanguageChoice(preference or default, False)
    best = max(votes.values())
    tied = [loc for loc in languages if votes.get(loc, 0) >= best - 1e-9]
    if preference and preference in votes and best - votes[preference] < UNSURE_MARGIN:
        # Words of the sender's own language nearly as strong as another's: an answer in the wrong
        # language is a safety problem, so the language they are known to read wins.
        return LanguageChoice(preference, False)
    if preference:
        return LanguageChoice(tied[0] if len(tied) == 1 else preference, len(tied) == 1 and strong)
    order = {loc: i for i, loc in enumerate(languages)}
    if len(tied) > 1 and vocabulary is not None:
        # A tie ("fièvre" is in the French and the Haitian lists): the language the words are measured to
        # be common in goes first.
        measured = {loc: sum(vocabulary.frequency(t, loc) for t in toks) for loc in tied}
        top = max(measured.values())
        if top - sorted(measured.values())[-2] >= 1.0:  # clearly more common there ("cansado": no)
            for loc in tied:
                votes[loc] += 1e-3 * measured[loc]
            best = max(votes.values())
    ranked = sorted((loc for loc in votes if loc in order), key=lambda loc: (-votes[loc], loc != default, order[loc]))
    first = ranked[0]
    close = [loc for loc in ranked[1:] if best - votes[loc] < UNSURE_MARGIN
             and not _only_borrowed(loc, first, covered, toks, vocabulary)]
    return LanguageChoice(first, len(tied) == 1 and strong, close[0] if close else None)


def _only_borrowed(loc: str, first: str, covered: Mapping[str, set[int]], toks: Sequence[str],
                   vocabulary: Vocabulary | None) -> bool:
    """Whether every word ``loc`` matched is a word ``first`` lends it: "fever" is in the Spanish and
    Tagalog lists because their speakers write it, but a lone "FEVER" is English, not a text that fits
    both ("hemorragia", a word of Spanish and Portuguese alike, does). English words are borrowed by
    every language; another language's word is borrowed only when it is not a word of ``loc`` too."""
    positions = covered.get(loc)
    if vocabulary is None or not positions or any(p >= len(toks) for p in positions):
        return False
    return all(first in (langs := vocabulary.languages(toks[p])) and (first == "en" or loc not in langs)
               for p in positions)


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


def text_languages(toks: Sequence[str], vocabulary: Vocabulary, skip: Sequence[str] = ()) -> frozenset[str]:
    """The languages the text's known words (but ``skip``) are mostly in, each word's vote split between its
    languages; empty when no word is known."""
    votes: Counter[str] = Counter()
    for tok in toks:
        if tok == BREAK or tok[0].isdigit() or tok in skip or vocabulary.is_neutral(tok):
            continue
        langs = vocabulary.languages(tok)
        for loc in langs:
            votes[loc] += 1.0 / len(langs)
    if not votes:
        return frozenset()
    best = max(votes.values())
    return frozenset(loc for loc, v in votes.items() if v >= 0.75 * best)


def drop_unlikely_typos(hits: Sequence[Hit], toks: Sequence[str], index: PhraseIndex,
                        vocabulary: Vocabulary) -> list[Hit]:
    """Typo-corrected hits only in a language the text's exact words show (a Tagalog "syang" is not a typo of a
    Portuguese word), and never from a word that is an everyday word of the text's own language (a Somali
    form of address is not a misspelled symptom, "cooking" is not "choking", "humihina" is not "humihinga").
    When the text's language is unknown (a lone "fevr"), only very common words of any language are
    protected."""
    if all(h.similarity == 1.0 for h in hits):
        return list(hits)
    evidence: set[str] = set()
    for h in hits:
        if h.similarity == 1.0:
            evidence |= h.target.locales
    # The text's language, from its other words: a typo must not vote for the language it is a word of.
    own = text_languages(toks, vocabulary, skip=[t for t in toks if index.is_typo(t)]) or None
    out = []
    for h in hits:
        if h.similarity < 1.0:
            if evidence and evidence.isdisjoint(h.target.locales):
                continue
            typos = [toks[i] for i in range(h.start, h.end) if i not in h.skipped and index.is_typo(toks[i])]
            if any(vocabulary.is_common(w, own) for w in typos):
                continue
        out.append(h)
    return out


def drop_mistoned(hits: Sequence[Hit], toks: Sequence[str], written: Sequence[str],
                  toned: Mapping[tuple[str, str, str], frozenset[str]], locales: Iterable[str],
                  vocabulary: Vocabulary, languages: Iterable[str]) -> list[Hit]:
    """Hits of a tone language's own phrases whose words the text writes with other tones ("anh ơi mai" is
    not "ói mãi", vomiting all the time). Words written without tones still match (phones often drop them),
    but for a one-word phrase of up to three letters."""
    locales = frozenset(locales)
    others = [loc for loc in languages if loc not in locales]
    if len(written) != len(toks):
        return list(hits)
    out = []
    for h in hits:
        # Everyday phrases too: "sốt cả đêm" (fever all night) is not "sốt cà" (tomato sauce).
        if h.target.locales <= locales and h.similarity == 1.0 and h.target.kind in ("topic", "rule", "not_symptom"):
            positions = [i for i in range(h.start, h.end) if i not in h.skipped]
            spellings = [toned.get((h.target.kind, h.target.id, toks[i])) for i in positions]
            if any(written[i] != toks[i] and known and not any(_marks_fit(written[i], k) for k in known)
                   for i, known in zip(positions, spellings, strict=True)):
                continue
            # A short word alone ("nôn", "ói") written without its tones may be an everyday word of another
            # language ("non merci", "oi tia"): then it counts only with its tones or among Vietnamese words.
            # ("sot" alone is still fever: it is no everyday word elsewhere.)
            i = positions[0]
            if len(positions) == 1 and len(toks[i]) <= 3 and written[i] == toks[i] \
                    and vocabulary.is_everyday(toks[i], others) \
                    and not locales & text_languages(toks, vocabulary, skip=[toks[i]]):
                continue
        out.append(h)
    return out


def _marks(word: str) -> list[frozenset[str]]:
    """The accent and tone marks on each letter of ``word``."""
    out: list[set[str]] = []
    for ch in unicodedata.normalize("NFD", word):
        if unicodedata.combining(ch) and out:
            out[-1].add(ch)
        else:
            out.append(set())
    return [frozenset(m) for m in out]


def _marks_fit(written: str, spelling: str) -> bool:
    """Whether ``written`` could be ``spelling`` typed with some marks left out ("sôt" for "sốt"), but not
    with other marks ("ơi" is not "ói")."""
    w, k = _marks(written), _marks(spelling)
    if len(k) < len(w):  # a stem ("ói*") spells the start of the word
        w = w[: len(k)]
    return len(w) == len(k) and all(a <= b for a, b in zip(w, k, strict=True))


def language_label(locale: str) -> str:
    """"Spanish (Español)": a coordinator's name for the language, then the caregiver's own."""
    from .catalog import language_name

    own = language_name(locale)
    try:
        loc = Locale.parse(locale)
        english = loc.get_language_name("en") + (f" ({loc.get_script_name('en')})" if loc.script else "")
    except Exception:
        english = locale
    return english if english == own else f"{english} ({own})"
