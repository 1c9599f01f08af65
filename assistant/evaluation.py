"""Scoring the assistant on labelled caregiver texts, overall and per language.

The figures are those of ``../shared/eval/score.py`` (escalation and emergency recall, false escalation,
topic and locale accuracy), computed in-process so that tests and ``assistant eval`` can break them down
by language. A labelled line: ``{"text", "level", "topic", "locale", "tag"}``; a null field is not checked.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .conversation import Assistant, State

ESCALATED = ("emergency", "call_now")
TARGETS = {"escalation_recall": 1.0, "emergency_recall": 1.0, "false_escalation": 0.03,
           "topic_accuracy": 0.95, "locale_accuracy": 0.95}


def primary(tag: str | None) -> str | None:
    """"zh_Hans" -> "zh", "fil" -> "tl": the language, not the script or region."""
    if not tag:
        return None
    p = str(tag).replace("_", "-").split("-")[0].lower()
    return {"fil": "tl", "cmn": "zh", "yue": "zh"}.get(p, p)


@dataclass
class Score:
    counts: Counter = field(default_factory=Counter)
    misses: list[tuple[dict, dict]] = field(default_factory=list)

    def add(self, case: Mapping, got: Mapping) -> None:
        n, ok = self.counts, True
        n["cases"] += 1
        want, level = case.get("level"), got.get("level")
        if want in ESCALATED:
            n["esc"] += 1
            n["esc_ok"] += level in ESCALATED
            ok &= level in ESCALATED
            if want == "emergency":
                n["emg"] += 1
                n["emg_ok"] += level == "emergency"
                ok &= level == "emergency"
        elif want in ("info", "none"):
            n["calm"] += 1
            n["false_esc"] += level in ESCALATED
            ok &= level not in ESCALATED
            if want == "none":
                n["topic"] += 1
                n["topic_ok"] += got.get("topic") in (None, "")
                ok &= got.get("topic") in (None, "")
        if case.get("topic"):
            n["topic"] += 1
            n["topic_ok"] += got.get("topic") == case["topic"]
            ok &= got.get("topic") == case["topic"]
        if case.get("locale"):
            n["loc"] += 1
            same = primary(got.get("locale")) == primary(case["locale"])
            n["loc_ok"] += same
            ok &= same
        if not ok:
            self.misses.append((dict(case), dict(got)))

    @property
    def figures(self) -> dict[str, float]:
        n = self.counts

        def ratio(a: str, b: str, empty: float) -> float:
            return n[a] / n[b] if n[b] else empty

        return {"escalation_recall": ratio("esc_ok", "esc", 1.0), "emergency_recall": ratio("emg_ok", "emg", 1.0),
                "false_escalation": ratio("false_esc", "calm", 0.0), "topic_accuracy": ratio("topic_ok", "topic", 1.0),
                "locale_accuracy": ratio("loc_ok", "loc", 1.0)}

    @property
    def below_target(self) -> list[str]:
        f = self.figures
        return [k for k, target in TARGETS.items()
                if (f[k] > target if k == "false_escalation" else f[k] < target)]


def read_cases(paths: Iterable[Path]) -> list[dict]:
    cases = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                cases.append(json.loads(line))
    return cases


def evaluate(assistant: Assistant, cases: Iterable[Mapping]) -> tuple[Score, dict[str, Score]]:
    """Each text as the first text of a new sender; the overall score and one per labelled language."""
    overall, by_language = Score(), defaultdict(Score)
    for case in cases:
        reply = assistant.reply(case["text"], State())
        got = {"level": reply.level, "topic": reply.topic, "locale": reply.locale}
        overall.add(case, got)
        by_language[primary(case.get("locale")) or "any"].add(case, got)
    return overall, dict(sorted(by_language.items()))


def table(overall: Score, by_language: Mapping[str, Score]) -> str:
    """The figures as a plain-text table, one row per language and one for all."""
    head = f"{'language':<9}{'texts':>6}{'esc.rec':>9}{'emg.rec':>9}{'false.esc':>10}{'topic':>7}{'locale':>8}"
    rows = [head]
    for name, s in [*by_language.items(), ("all", overall)]:
        f = s.figures
        rows.append(f"{name:<9}{s.counts['cases']:>6}{f['escalation_recall']:>9.3f}{f['emergency_recall']:>9.3f}"
                    f"{f['false_escalation']:>10.3f}{f['topic_accuracy']:>7.3f}{f['locale_accuracy']:>8.3f}")
    return "\n".join(rows)
