"""How long it takes to classify a caregiver's text, against two baselines, at two catalog sizes.

    python bench/classify.py [--messages N]

Prints p50 and p99 per message for: the assistant's classification (triage, topic and language), the
full reply, rapidfuzz.process.extractOne with WRatio over every keyword, and difflib.get_close_matches
over every keyword, with the shipped catalog and with one ten times larger (synthetic topics), and
the ratios the targets are about. All in one run, on the same messages.
"""

from __future__ import annotations

import argparse
import difflib
import random
import statistics
import string
import sys
import time
from dataclasses import replace
from pathlib import Path

from rapidfuzz import fuzz, process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.catalog import build_catalog, load_catalog  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.conversation import Assistant, State  # noqa: E402
from assistant.source import TopicSource, read_source  # noqa: E402

CHATTER = ["ok thanks", "lol", "see you tuesday", "thank you so much", "call me later", "k", "qwerty",
           "where do we park", "is the clinic open saturday", "😀"]
TEMPLATES = ["{}", "{}", "what is {}", "my son has {}", "she has {} since last night", "{}?", "question about {}",
             "does {} hurt", "tell me about {}"]


def typo(word: str, rnd: random.Random) -> str:
    if len(word) < 5:
        return word
    i = rnd.randrange(1, len(word) - 1)
    op = rnd.choice("dst")
    if op == "d":
        return word[:i] + word[i + 1:]
    if op == "s":
        return word[:i] + rnd.choice(string.ascii_lowercase) + word[i + 1:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def messages(catalog, n: int, seed: int = 7) -> list[str]:
    """Caregiver-like texts: keywords of every language in free-text frames, typos, chatter."""
    rnd = random.Random(seed)
    phrases = [item.replace("*", "").replace("...", "").strip() for by_ctx in catalog.lists.values()
               for ctx, items in by_ctx.items() if ctx.startswith(("topic:", "rule:")) for item in items]
    out = []
    while len(out) < n:
        r = rnd.random()
        if r < 0.15:
            out.append(rnd.choice(CHATTER))
        elif r < 0.35:
            out.append(" ".join(typo(w, rnd) for w in rnd.choice(phrases).split()))
        else:
            out.append(rnd.choice(TEMPLATES).format(rnd.choice(phrases)))
    return out


def bigger(source, catalog, factor: int, seed: int = 11):
    """The same catalog plus synthetic topics, so that it holds ``factor`` times as many phrases."""
    rnd = random.Random(seed)
    lengths = [len(w) for by_ctx in catalog.lists.values() for items in by_ctx.values() for p in items
               for w in p.split()]
    total = sum(len(items) for by_ctx in catalog.lists.values() for items in by_ctx.values())
    extra, need = [], total * (factor - 1)
    i = 0
    while need > 0:
        words = ["".join(rnd.choice(string.ascii_lowercase) for _ in range(max(3, rnd.choice(lengths))))
                 for _ in range(20)]
        kws = tuple(" ".join(rnd.sample(words, rnd.choice((1, 1, 1, 2, 3)))) for _ in range(40))
        extra.append(TopicSource(f"synthetic_{i}", "synthetic", "info", f"Synthetic {i}", kws, "Synthetic."))
        need -= len(kws)
        i += 1
    src = replace(source, topics=source.topics + tuple(extra))
    src = replace(src, entries=source.entries + tuple(
        e for t in extra for e in _entries(t)))
    pos = {loc: _po(catalog, loc) for loc in source.languages if loc != "en"}
    return build_catalog(src, pos)


def _entries(topic):
    from assistant.source import LIST_SEPARATOR, Entry

    return (Entry(f"topic:{topic.id}:title", topic.title, "", 0),
            Entry(f"topic:{topic.id}:keywords", LIST_SEPARATOR.join(topic.keywords), "", 0, is_list=True),
            Entry(f"topic:{topic.id}:summary", topic.summary, "", 0))


def _po(catalog, locale):
    """The shipped catalog's entries for ``locale``, as a Babel catalog."""
    from babel.messages.catalog import Catalog as Babel

    msgids = {e.context: e.msgid for e in catalog.source.entries}
    po = Babel(locale=locale)
    for ctx, items in catalog.lists.get(locale, {}).items():
        po.add(msgids[ctx], ", ".join(items), context=ctx)
    for ctx, text in catalog.texts.get(locale, {}).items():
        po.add(msgids[ctx], text.string, context=ctx)
    return po


def timed(fn, items, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        for item in items:
            t = time.perf_counter_ns()
            fn(item)
            out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def pct(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def run(label, catalog, msgs, baseline_msgs):
    assistant = Assistant(catalog, Settings())
    keywords = {}
    for by_ctx in catalog.lists.values():
        for ctx, items in by_ctx.items():
            if ctx.startswith(("topic:", "rule:")):
                for item in items:
                    keywords.setdefault(item.replace("*", "").replace("...", " "), ctx.split(":")[1])
    choices = list(keywords)
    catalog.index._alt_cache.clear()
    cold = timed(assistant.classify, msgs)  # first sight of every word: typo look-ups not cached yet
    rows = {
        "assistant classify": timed(assistant.classify, msgs, repeat=3),  # warm, as a running server is
        "assistant classify, cold": cold,
        "assistant full reply": timed(lambda m: assistant.reply(m, State()), msgs),
        "rapidfuzz extractOne WRatio": timed(
            lambda m: process.extractOne(m, choices, scorer=fuzz.WRatio, score_cutoff=80), baseline_msgs),
        "difflib get_close_matches": timed(
            lambda m: difflib.get_close_matches(m, choices, n=1, cutoff=0.8), baseline_msgs[:150]),
    }
    print(f"\n{label}: {len(catalog.topics)} topics, {len(choices)} distinct keywords/phrases, "
          f"{len(catalog.index.words)} words in the index")
    print(f"  {'method':30} {'p50 ms':>9} {'p99 ms':>9} {'n':>6}")
    for name, vals in rows.items():
        print(f"  {name:30} {pct(vals, 50):9.4f} {pct(vals, 99):9.4f} {len(vals):6}")
    return {k: (pct(v, 50), pct(v, 99)) for k, v in rows.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    args = ap.parse_args()
    source = read_source(ROOT / "messages")
    shipped = load_catalog(ROOT / "messages", ROOT / "locales")
    msgs = messages(shipped, args.messages)
    base = run("shipped catalog", shipped, msgs, msgs[:400])
    large = bigger(source, shipped, 10)
    big = run("10x catalog", large, msgs, msgs[:150])
    ours, ours10 = base["assistant classify"], big["assistant classify"]
    wr = base["rapidfuzz extractOne WRatio"]
    print("\nTargets (shipped catalog: p50 <= 0.1 ms, p99 <= 1 ms, >= 5x faster than WRatio; 10x catalog <= 2x time)")
    print(f"  p50 {ours[0]:.4f} ms, p99 {ours[1]:.4f} ms")
    print(f"  speed-up over WRatio baseline: p50 {wr[0] / ours[0]:.1f}x, p99 {wr[1] / ours[1]:.1f}x")
    print(f"  10x catalog / shipped: p50 {ours10[0] / ours[0]:.2f}x, p99 {ours10[1] / ours[1]:.2f}x")
    ok = (ours[0] <= 0.1 and ours[1] <= 1.0 and wr[0] / ours[0] >= 5 and ours10[0] / ours[0] <= 2
          and ours10[1] / ours[1] <= 2)
    print("  all targets met" if ok else "  TARGET MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
