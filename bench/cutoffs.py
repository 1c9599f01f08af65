"""The measurements behind the typo cut-off (assistant.matching.FUZZY_CUTOFF).

    python bench/cutoffs.py

For each candidate cut-off: how many one-letter typos of real keywords still find their word (recall),
how many find a different word (wrong), and how many everyday words that are not keywords get matched
to one (false matches). The shipped cut-off is the lowest one that keeps false matches rare.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.catalog import command_words, known_words, load_catalog, phrase_rows  # noqa: E402
from assistant.matching import FUZZY_CUTOFF, FUZZY_KINDS, MIN_FUZZY_LEN, PhraseIndex  # noqa: E402
from assistant.normalize import tokens  # noqa: E402

NEIGHBOURS = {c: n for c, n in zip("qwertyuiopasdfghjklzxcvbnm", "wqrtyuiopoadfghjkklxcvbnmn", strict=True)}
CHAT = """ok okay thanks thank you lol see tuesday monday tomorrow today tonight later call please what when where
which would could should maybe really great good fine sure yeah nope hello there appointment parking clinic
doctor nurse school homework dinner breakfast lunch water juice television phone charger message morning
evening weekend friday saturday sunday wednesday thursday birthday brother sister mother father grandma
grandpa uncle cousin friend teacher bus car train airport hospital pharmacy insurance billing address
street number question answer happy sorry sad angry excited bored hungry thirsty sleep dream play game
movie music book story picture photo video smile laugh cry""".split()  # noqa: SIM905


def typos(word: str, rnd: random.Random) -> list[str]:
    out = []
    for i in range(1, len(word) - 1):
        out.append(word[:i] + word[i + 1:])  # deletion
        out.append(word[:i] + NEIGHBOURS.get(word[i], word[i]) + word[i + 1:])  # neighbouring key
        out.append(word[:i] + word[i + 1] + word[i] + word[i + 2:])  # transposition
        out.append(word[:i] + NEIGHBOURS.get(word[i], "e") + word[i:])  # extra letter
    rnd.shuffle(out)
    return [t for t in out[:6] if t != word]


def main() -> int:
    catalog = load_catalog(ROOT / "messages", ROOT / "locales")
    rows = phrase_rows(catalog.lists)
    protected, known = command_words(rows), known_words(catalog.texts)
    base = PhraseIndex(rows, protected=protected, known=known)
    latin = re.compile(r"^[a-z]+$")
    targets = PhraseIndex([r for r in rows if r[0] in FUZZY_KINDS])
    words = sorted(w for w in targets.words
                   if latin.match(w) and len(w) >= MIN_FUZZY_LEN and w not in protected | known)
    rnd = random.Random(3)
    cases = [(t, w) for w in words for t in typos(w, rnd) if t not in base.words]
    article = (ROOT.parent / "shared" / "seed" / "about-immunotherapy.txt")
    text = article.read_text(encoding="utf-8") if article.exists() else ""
    negatives = sorted({w for w in tokens(text) + CHAT if latin.match(w) and len(w) >= MIN_FUZZY_LEN
                        and w not in base.words and not any(w.startswith(s) for s in base.stems)})
    print(f"{len(words)} keyword words, {len(cases)} typos of them (not in the first letter), "
          f"{len(negatives)} everyday words that are not keywords")
    print(f"{'cut-off':>8} {'typo recall':>12} {'wrong word':>11} {'false matches':>14}")
    for cutoff in (0.67, 0.7, 0.75, 0.79, 0.84, 0.88, 0.92):
        index = PhraseIndex(rows, protected=protected, known=known, cutoff=cutoff)
        found = wrong = 0
        for typo, word in cases:
            keys = {k if isinstance(k, str) else k[1] for k, _ in index.alternatives(typo)}
            if word in keys or any(word.startswith(k) for k in keys):
                found += 1
            elif keys:
                wrong += 1
        false = sum(1 for w in negatives if index.alternatives(w))
        mark = "  <- shipped" if abs(cutoff - FUZZY_CUTOFF) < 1e-9 else ""
        print(f"{cutoff:8.2f} {found / len(cases):12.3f} {wrong / len(cases):11.3f} "
              f"{false / max(1, len(negatives)):14.3f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
