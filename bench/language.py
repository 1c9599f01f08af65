"""Reply-language choice against a well-kept short-text language identifier, on the same labelled texts.

    python bench/language.py [FILES...]   (default: tests/data/parents/*.jsonl and ../shared/eval/dev.jsonl)

Prints, per language and overall, how often each method picks the labelled language of a text:
- assistant: the assistant's own choice (catalog phrases, everyday words from wordfreq, scripts, accents);
- lingua: lingua-language-detector restricted to our languages (it has no Haitian Creole);
- lingua-when-unsure: the assistant's choice, but lingua's when the assistant found no sign of any one
  language and lingua is confident.
and the time per text of each. Needs `pip install lingua-language-detector` (not a dependency of the
service: the numbers below are why).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.catalog import load_catalog  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.conversation import Assistant, State  # noqa: E402
from assistant.evaluation import primary  # noqa: E402
from assistant.language import choose  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        from lingua import Language, LanguageDetectorBuilder
    except ImportError:
        print("pip install lingua-language-detector to run this comparison")
        return 2
    files = [Path(a) for a in argv] or sorted((ROOT / "tests/data/parents").glob("*.jsonl")) + \
        [p for p in [ROOT.parent / "shared/eval/dev.jsonl"] if p.exists()]
    cases = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    cases = [c for c in cases if c.get("locale")]
    names = {"en": "ENGLISH", "es": "SPANISH", "zh_Hans": "CHINESE", "vi": "VIETNAMESE", "ko": "KOREAN",
             "tl": "TAGALOG", "ru": "RUSSIAN", "ar": "ARABIC", "pt": "PORTUGUESE", "fr": "FRENCH", "so": "SOMALI"}
    to_locale = {getattr(Language, v): k for k, v in names.items()}
    detector = LanguageDetectorBuilder.from_languages(*to_locale).with_preloaded_language_models().build()
    catalog = load_catalog(ROOT / "messages", ROOT / "locales")
    assistant = Assistant(catalog, Settings())

    def ours(text: str) -> tuple[str, bool]:
        body, toks, hits = assistant._read(catalog, text)
        c = choose(body, hits, catalog.languages, None, "en", accented=catalog.accented, toks=toks,
                   vocabulary=catalog.vocabulary)
        return c.locale, c.detected

    def lingua(text: str) -> str | None:
        found = detector.detect_language_of(text)
        return to_locale.get(found) if found else None

    def combined(text: str) -> str:
        locale, detected = ours(text)
        if detected:
            return locale
        values = detector.compute_language_confidence_values(text)
        if values and values[0].value >= 0.6:
            return to_locale[values[0].language]
        return locale

    for c in cases:  # warm caches before timing
        assistant.reply(c["text"], State())
    methods = {"assistant": lambda t: ours(t)[0], "lingua": lingua, "lingua-when-unsure": combined}
    right: dict[str, dict[str, list[int]]] = {m: defaultdict(lambda: [0, 0]) for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    for c in cases:
        want = primary(c["locale"])
        for m, fn in methods.items():
            t0 = time.perf_counter()
            got = fn(c["text"])
            times[m].append(time.perf_counter() - t0)
            cell = right[m][want]
            cell[0] += 1
            cell[1] += primary(got) == want
    langs = sorted({primary(c["locale"]) for c in cases})
    print(f"{len(cases)} labelled texts from {len(files)} file(s)")
    print(f"{'method':<20}" + "".join(f"{x:>7}" for x in langs) + f"{'all':>8}{'p50 ms':>9}")
    for m in methods:
        total = sum(v[0] for v in right[m].values())
        ok = sum(v[1] for v in right[m].values())
        cells = "".join(f"{right[m][x][1] / right[m][x][0]:>7.3f}" for x in langs)
        print(f"{m:<20}{cells}{ok / total:>8.3f}{statistics.median(times[m]) * 1000:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
