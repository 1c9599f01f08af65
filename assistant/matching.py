"""Phrase matching: every keyword, symptom phrase, command word and cue of every language in one trie.

A text is matched in one pass over its tokens. Each token stands for itself, for the ``word*`` stems
it starts with, and, when it is not a known word, for the known words within one typo of it. Typo
candidates come from a deletion index (a word and its one-letter deletions point back to the word),
so their cost does not grow with the catalog; rapidfuzz then scores each candidate and a cut-off,
chosen from measurements (``bench/cutoffs.py``), keeps the close ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Indel

from .normalize import BREAK, phrase_tokens

GAP = object()  # "..." in a phrase: up to MAX_GAP other words
_END = object()
# Words people leave between the words of one symptom: "bleeding from his line won't stop" (three),
# "his lips look kind of blue" (three). A Chinese or Japanese character is half a word.
MAX_GAP = 4.0
MIN_FUZZY_LEN = 4  # shorter words must match exactly: "lol" is not "low"
LONG_WORD = 8  # from this length a typo may be in the first letter too
FUZZY_KINDS = ("topic", "rule", "temperature_words")
_ARABIC_AND = "\u0648"  # و
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Normalised Indel similarity a typo must reach. bench/cutoffs.py measures it: 0.79 keeps ~88 % of
# one-letter typos of keywords (one substitution in a five-letter word is 0.80) while raising it to 0.84 loses
# a sixth of them; the everyday words it lets through mostly hit one word of a longer phrase, which alone
# matches nothing. A missed symptom costs more than a stray match.
FUZZY_CUTOFF = 0.79


@dataclass(frozen=True, slots=True)
class Target:
    """What a phrase stands for: kind ("topic", "rule", "command", cue names), id, and languages."""

    kind: str
    id: str
    locales: frozenset[str]


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    target: Target
    similarity: float  # 1.0 when every token matched exactly
    skipped: tuple[int, ...] = ()  # positions a "..." let stand between the phrase's words

    @property
    def length(self) -> int:
        return self.end - self.start


def parse_phrase(phrase: str) -> tuple:
    """Turn a coordinator's phrase into trie keys: token strings, ("prefix", stem) for ``stem*``,
    ("suffix", end) for ``*end`` (drug names: ``*mab``) and GAP for ``...``."""
    keys: list = []
    for part in phrase.split():
        if part in ("...", "…"):
            if keys and keys[-1] is not GAP:
                keys.append(GAP)
            continue
        prefix, suffix = part.endswith("*"), part.startswith("*") and len(part) > 1
        toks = [t for t in phrase_tokens(part.strip("*")) if t != BREAK]
        if not toks:
            continue
        if suffix:
            keys.append(("suffix", toks[0]))
            toks = toks[1:]
            if not toks:
                continue
        keys.extend(toks[:-1])
        keys.append(("prefix", toks[-1]) if prefix else toks[-1])
    while keys and keys[-1] is GAP:
        keys.pop()
    while keys and keys[0] is GAP:
        keys.pop(0)
    return tuple(keys)


class PhraseIndex:
    """All phrases of a catalog, matched together. Immutable once built."""

    def __init__(self, phrases: Iterable[tuple[str, str, str, str]], protected: Iterable[str] = (),
                 known: Iterable[str] = (), cutoff: float = FUZZY_CUTOFF,
                 fuzzy_kinds: Iterable[str] = FUZZY_KINDS) -> None:
        """``phrases``: (kind, id, locale, phrase) rows. ``protected`` words (carrier commands) are
        neither typo-corrected nor corrected onto; ``known`` words are real words, never corrected;
        only words of ``fuzzy_kinds`` phrases are typo targets."""
        self.cutoff = cutoff
        grouped: dict[tuple, dict[tuple[str, str], set[str]]] = {}
        targets_words: set[str] = set()
        fuzzy_kinds = frozenset(fuzzy_kinds)
        for kind, ident, locale, phrase in phrases:
            keys = parse_phrase(phrase)
            if keys:
                grouped.setdefault(keys, {}).setdefault((kind, ident), set()).add(locale)
                if kind in fuzzy_kinds:
                    targets_words.update(k if isinstance(k, str) else k[1] for k in keys
                                         if k is not GAP and (isinstance(k, str) or k[0] == "prefix"))
        self.root: dict = {}
        self.words: set[str] = set()
        self.stems: set[str] = set()
        self.suffixes: set[str] = set()
        targets: dict[Target, Target] = {}
        for keys, by_target in grouped.items():
            node = self.root
            for key in keys:
                node = node.setdefault(key, {})
                if isinstance(key, str):
                    self.words.add(key)
                elif isinstance(key, tuple):
                    (self.stems if key[0] == "prefix" else self.suffixes).add(key[1])
            found = []
            for (kind, ident), locales in by_target.items():
                t = Target(kind, ident, frozenset(locales))
                found.append(targets.setdefault(t, t))
            node[_END] = tuple(found)
        self.stem_lengths = tuple(sorted({len(s) for s in self.stems}))
        self.suffix_lengths = tuple(sorted({len(s) for s in self.suffixes}))
        self.protected = frozenset(protected)
        self.known = frozenset(known) | self.protected
        # Deletion index for typo candidates: every keyword or symptom word (and stem) and its one-letter
        # deletions. Protected words are neither corrected nor corrected onto.
        self._deletions: dict[str, set[str]] = {}
        for w in targets_words - self.protected:
            if len(w) >= MIN_FUZZY_LEN - 1 and not self._is_unspaced(w):
                for variant in _deletions(w):
                    self._deletions.setdefault(variant, set()).add(w)
        self._alt_cache: dict[str, tuple] = {}

    @staticmethod
    def _is_unspaced(word: str) -> bool:
        # Hangul and CJK words are too short and dense for letter-level typo forgiveness.
        return any("\u1100" <= ch <= "\u11ff" or "\u3040" <= ch <= "\ud7af" for ch in word)

    def alternatives(self, tok: str) -> tuple[tuple[object, float], ...]:
        """The trie keys a text token can stand for, with their similarity."""
        cached = self._alt_cache.get(tok)
        if cached is not None:
            return cached
        alts: list[tuple[object, float]] = []
        if tok == BREAK:
            pass
        else:
            exact = tok in self.words
            if exact:
                alts.append((tok, 1.0))
            if tok[0] == _ARABIC_AND and len(tok) >= 3:
                # Arabic writes "and" joined to the next word: "ومش" is "و" + "مش", "وعينيها" "و" + "عين*".
                alts.extend((key, sim) for key, sim in self.alternatives(tok[1:]) if sim == 1.0)
            for n in self.stem_lengths:
                if n > len(tok):
                    break
                if tok[:n] in self.stems:
                    alts.append((("prefix", tok[:n]), 1.0))
            for n in self.suffix_lengths:
                # "*mab" needs a real word before the ending: "rituximab", not "mab" itself.
                if n + 3 <= len(tok) and tok[-n:] in self.suffixes:
                    alts.append((("suffix", tok[-n:]), 1.0))
            # A word matched only as the start of a longer one ("imuno*") may still be a typo of a whole word.
            if not exact and len(tok) >= MIN_FUZZY_LEN and tok not in self.known \
                    and not tok[0].isdigit() and not self._is_unspaced(tok):
                alts.extend(self._typo_candidates(tok))
        result = tuple(alts)
        if len(self._alt_cache) < 50_000:  # bounded: texts repeat the same few thousand words
            self._alt_cache[tok] = result
        return result

    def is_typo(self, tok: str) -> bool:
        """Whether ``tok`` may match as a typo (it is no word of the catalog itself)."""
        return tok not in self.words and any(sim < 1.0 for _key, sim in self.alternatives(tok))

    def _typo_candidates(self, tok: str) -> list[tuple[object, float]]:
        best: dict[object, float] = {}
        for variant in _deletions(tok):
            for cand in self._deletions.get(variant, ()):
                if cand in best:
                    continue
                # People rarely mistype the first letter of a short word; "lives" is not "hives".
                if cand[0] != tok[0] and len(tok) < LONG_WORD:
                    continue
                sim = Indel.normalized_similarity(tok, cand, score_cutoff=self.cutoff)
                if cand in self.words and sim:
                    best[cand] = sim
                if cand in self.stems:
                    # A stem matches the start of a longer word: compare with the same length.
                    head = Indel.normalized_similarity(tok[: len(cand) + 1], cand, score_cutoff=self.cutoff)
                    head = max(head, Indel.normalized_similarity(tok[: len(cand)], cand,
                                                                 score_cutoff=self.cutoff))
                    if head:
                        best[("prefix", cand)] = head
        # Keep the closest candidates; the phrases around the word decide between them ("clinical trail"
        # is "clinical trial", though "trail" is nearer to another language's "trai").
        if not best:
            return []
        top = max(best.values())
        return [(k, v) for k, v in best.items() if v >= top - 0.12]

    def find(self, toks: Sequence[str]) -> list[Hit]:
        """Every phrase occurrence in ``toks`` (overlapping hits included)."""
        alts = [self.alternatives(t) for t in toks]
        hits: list[Hit] = []
        n = len(toks)
        for start in range(n):
            if alts[start]:
                self._walk(self.root, toks, alts, start, start, 1.0, (), hits)
        return hits

    def _walk(self, node: dict, toks, alts, start: int, pos: int, sim: float, skipped: tuple[int, ...],
              hits: list[Hit]) -> None:
        if pos >= len(toks):
            return
        for key, s in alts[pos]:
            child = node.get(key)
            if child is None:
                continue
            sim2 = min(sim, s)
            ends = child.get(_END)
            if ends:
                for target in ends:
                    hits.append(Hit(start, pos + 1, target, sim2, skipped))
            if len(child) > (1 if ends else 0):
                self._walk(child, toks, alts, start, pos + 1, sim2, skipped, hits)
        gap = node.get(GAP)
        if gap is not None:
            # "..." lets up to MAX_GAP words stand between, never across a sentence end; the skipped
            # positions are kept (a "not" there denies the phrase: "chest does not hurt").
            self._walk(gap, toks, alts, start, pos, sim, skipped, hits)
            budget, at = MAX_GAP, pos
            while at < len(toks) and toks[at] != BREAK:
                budget -= 0.5 if _CJK_CHAR.match(toks[at]) else 1.0
                if budget < 0:
                    break
                at += 1
                self._walk(gap, toks, alts, start, at, sim, (*skipped, *range(pos, at)), hits)


def _deletions(word: str) -> list[str]:
    return [word] + [word[:i] + word[i + 1:] for i in range(len(word))]
