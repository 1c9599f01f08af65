"""Symptom triage: decides, before any topic lookup, whether a text must escalate.

Rules come from the catalog (``messages/triage.toml``, topics with level ``call_now``, and every
language's phrases); this module only applies them: negation, temperatures, highest level wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .catalog import Catalog
from .matching import Hit
from .normalize import BREAK
from .vocabulary import EMPTY, Vocabulary

LEVEL_RANK = {"none": 0, "info": 1, "call_now": 2, "emergency": 3}
NEGATION_REACH = 2  # words allowed between "no" and the symptom: "no high fever", "sin nada de fiebre"
CONTEXT_REACH = 3  # words looked at on each side of a negation to tell its language
PERSISTING_REACH = 15  # words between a symptom and "won't stop" that still belong to it


@dataclass(frozen=True)
class Reading:
    """A temperature found in the text."""

    value: float  # as written
    unit: str  # "C" or "F"
    celsius: float


@dataclass(frozen=True)
class Finding:
    level: str  # emergency, call_now, info (a reading below the threshold) or none
    rules: tuple[str, ...] = ()  # triage rules and call_now topics that fired, highest level first
    topic: str | None = None  # the topic whose summary follows the escalation
    advice: tuple[str, ...] = ()  # extra text keys, e.g. advice.fever_medicine
    reading: Reading | None = None
    negated: tuple[str, ...] = ()  # symptoms mentioned but negated ("no fever")

    @property
    def escalates(self) -> bool:
        return self.level in ("emergency", "call_now")


def negated_hits(hits: Sequence[Hit], toks: Sequence[str], vocabulary: Vocabulary = EMPTY) -> set[Hit]:
    """Symptoms denied by a negation: the first one within reach after "no"/"not"/"sin" (and those joined to
    it by "or"/"and"), or one shortly before a negation or "is over" word that follows ("열은 없어요", "the
    fever went away"), in the same language and the same part of the sentence.

    A negation is void inside words saying the symptom goes on ("won't go down", "no baja", "ما زال") or
    that the parent is unsure ("not sure"), and counts only in the language of the words beside it: "di" is
    Tagalog "not" but Spanish "I gave" ("le di tylenol")."""
    void = [h for h in hits if h.target.kind in ("unsure", "persisting")]

    def live(cue: Hit) -> bool:
        return not any(v.start < cue.end and cue.start < v.end for v in void) \
            and fits_context(cue, toks, vocabulary)

    before = [h for h in hits if h.target.kind == "negation" and live(h)]
    after = [h for h in hits if h.target.kind == "negation_after" and live(h)]
    if not before and not after:
        return set()
    breaks = {i for i, t in enumerate(toks) if t == BREAK}
    breaks |= {h.start for h in hits if h.target.kind == "clause_breaks"}
    joins = {i for h in hits if h.target.kind == "conjunctions" for i in range(h.start, h.end)}
    # The same words may be hit once per spelling ("fever" and "fever*"): their languages together.
    languages: dict[tuple, set[str]] = {}
    for h in hits:
        languages.setdefault((h.start, h.end, h.target.kind, h.target.id), set()).update(h.target.locales)
    symptoms = sorted((h for h in hits if h.target.kind in ("topic", "rule")), key=lambda h: (h.start, -h.end))

    def same_language(cue: Hit, h: Hit) -> bool:
        # Spanish "no" is Vietnamese "nó" (he, she): a negation counts only in its own language.
        return not cue.target.locales.isdisjoint(languages[(h.start, h.end, h.target.kind, h.target.id)])

    def clear(a: int, b: int) -> bool:
        return not any(a <= x < b for x in breaks)

    out: set[Hit] = set()
    for cue in before:
        # A symptom phrase may also start inside the negation's own words: "pa fè" + "fè kriz" (Haitian).
        first = [h for h in symptoms if ((cue.end <= h.start <= cue.end + NEGATION_REACH and clear(cue.end, h.start))
                                         or cue.start < h.start < cue.end < h.end) and same_language(cue, h)]
        if not first:
            continue
        start = first[0].start
        end = max(h.end for h in first if h.start == start)
        while True:
            denied = [h for h in symptoms if start <= h.start < end and same_language(cue, h)]
            out.update(denied)
            # Continue over "or"/"and" to the next symptom: "no fever or chills".
            nxt = [h for h in symptoms if end < h.start <= end + 2 and all(i in joins for i in range(end, h.start))
                   and clear(end, h.start) and same_language(cue, h)]
            if not nxt:
                break
            start = nxt[0].start
            end = max(h.end for h in nxt if h.start == start)
    for cue in after:
        # One word may stand between ("the fever finally went away"); more would reach past the end of the
        # symptom's own clause in languages that put the verb last ("qandho ayuu qabaa, way ka tagtay").
        out.update(h for h in symptoms if cue.start - 1 <= h.end <= cue.start
                   and clear(h.end, cue.start) and same_language(cue, h))
    for cue in before:  # inside a phrase's "...": "chest does not hurt", "가슴이 안 아파요"
        out.update(h for h in symptoms if h.skipped and cue.start in h.skipped and same_language(cue, h))
    return out


def fits_context(cue: Hit, toks: Sequence[str], vocabulary: Vocabulary) -> bool:
    """Whether the words beside a cue are of the cue's language: the nearest word on the side of the symptom
    it would deny (after "no", before "went away") that belongs to some of our languages but not to most of
    them (a drug name says nothing), else the nearest on the other side, within the sentence. With no such
    word, the cue counts."""
    after = cue.target.kind == "negation_after"
    sides = ((-1, cue.start - 1), (1, cue.end)) if after else ((1, cue.end), (-1, cue.start - 1))
    for step, i in sides:
        for _ in range(CONTEXT_REACH):
            if not 0 <= i < len(toks) or toks[i] == BREAK:
                break
            word = toks[i]
            i += step
            if word[0].isdigit() or vocabulary.is_neutral(word):
                continue
            langs = vocabulary.languages(word)
            if langs:
                return not cue.target.locales.isdisjoint(langs)
    return True


def drop_not_symptoms(catalog: Catalog, hits: Sequence[Hit], toks: Sequence[str]) -> list[Hit]:
    """Symptom words inside an everyday phrase that is not a symptom ("hot weather", Korean "열 살" = ten
    years old, Vietnamese "mì sốt cà" = noodles in tomato sauce) are not symptoms there. The phrase counts
    only among words of its own language (a Somali phrase says nothing of a Spanish text)."""
    spans = [(h.start, h.end) for h in hits if h.target.kind == "not_symptom"
             and fits_context(h, toks, catalog.vocabulary)]
    if not spans:
        return list(hits)

    def symptom(h: Hit) -> bool:
        return h.target.kind == "rule" or (h.target.kind == "topic" and catalog.topics[h.target.id].level == "call_now")

    def covered(h: Hit) -> bool:
        # Inside the phrase, or, short of an emergency, sharing words with it ("so hot outside": "so hot").
        # An emergency is never hidden by a phrase that only overlaps it ("숨을 잘 못 쉬어요", can't breathe well).
        emergency = h.target.kind == "rule" and catalog.rules[h.target.id].level == "emergency"
        return any((a <= h.start and h.end <= b) or (not emergency and a < h.end and h.start < b) for a, b in spans)

    return [h for h in hits if not (symptom(h) and covered(h))]


def nearest_symptom(cue: Hit, symptoms: Sequence[Hit]) -> Hit:
    """The symptom a cue is said of: the nearest one ("nosebleed this morning, he is still tired": tired)."""
    def distance(h: Hit) -> int:
        return max(h.start - cue.end, cue.start - h.end, 0)
    return min(symptoms, key=distance)


def read_temperatures(catalog: Catalog, toks: Sequence[str], hits: Sequence[Hit]) -> list[Reading]:
    """Numbers that are temperatures: with a unit, near a temperature word, decimal, or alone. Numbers may
    be written in words ("treinta y ocho", "三十八") and typed out ("38 point 5", "38度5", "38 y medio")."""
    temp = catalog.source.temperature
    context = any(h.target.kind == "temperature_words" or (h.target.kind == "topic" and h.target.id == "fever")
                  or (h.target.kind == "rule" and h.target.id == "feels_hot") for h in hits)
    words = [t for t in toks if t != BREAK]
    alone = len(words) <= 2
    decimal = {h.start: h.end for h in hits if h.target.kind == "decimal_words"}
    half = {h.start: h.end for h in hits if h.target.kind == "half_words"}
    spelled: dict[int, tuple[int, int]] = {}  # start -> (value, end), the longest number in words there
    for h in hits:
        longest = spelled.get(h.start, (0, h.start))[1]
        if h.target.kind == "number" and h.similarity == 1.0 and h.end > longest:
            spelled[h.start] = (int(h.target.id), h.end)

    def number_at(i: int) -> tuple[str, int] | None:
        """The number starting at token ``i`` as written ("38", "38,5") and where it ends."""
        if i >= len(toks):
            return None
        if toks[i][0].isdigit():
            return toks[i], i + 1
        if i in spelled:
            value, end = spelled[i]
            return str(value), end
        return None

    out = []
    i = 0
    while i < len(toks):
        found = number_at(i)
        if found is None:
            i += 1
            continue
        tok, after = found
        i = after
        try:
            value = float(tok.replace(",", "."))
        except ValueError:
            continue
        if tok.isdigit() and after in half:  # "38 y medio"
            value, after = value + 0.5, half[after]
            tok = f"{value}"
        elif tok.isdigit() and after in decimal:  # "38 point 5", "38度5", "treinta y ocho punto cinco"
            rest = number_at(decimal[after])
            if rest and rest[0].isdigit() and len(rest[0]) <= 2:
                tok = f"{tok}.{rest[0]}"
                value, after = float(tok), rest[1]
        i = max(i, after)
        nxt = toks[after] if after < len(toks) else ""
        unit = "C" if nxt in temp.celsius_units else "F" if nxt in temp.fahrenheit_units else None
        if unit is None and not (context or alone or ("." in tok or "," in tok)):
            continue
        celsius = None
        if unit == "C" and 30 <= value <= 45:
            celsius = value
        elif unit == "F" and 86 <= value <= 113:
            celsius = (value - 32) * 5 / 9
        elif temp.celsius_range[0] <= value <= temp.celsius_range[1]:
            unit, celsius = "C", value
        elif temp.fahrenheit_range[0] <= value <= temp.fahrenheit_range[1]:
            unit, celsius = "F", (value - 32) * 5 / 9
        if celsius is not None:
            out.append(Reading(value, unit, round(celsius, 2)))
    return out


def _about_fever(catalog: Catalog, h: Hit) -> bool:
    if h.target.kind == "topic":
        return h.target.id == "fever"
    return h.target.kind == "rule" and catalog.rules[h.target.id].topic == "fever" \
        and catalog.rules[h.target.id].advice is None


def assess(catalog: Catalog, toks: Sequence[str], hits: Sequence[Hit], fever_threshold_c: float) -> Finding:
    """The triage level of a text, per the catalog's rules."""
    negated = negated_hits(hits, toks, catalog.vocabulary)
    readings = read_temperatures(catalog, toks, hits)
    low = catalog.source.temperature.low_c
    # With a normal reading, words that only name the temperature ("temperatura 37,3", "has a temp of 37.2")
    # are not a fever: the number decides.
    normal = bool(readings) and all(low <= r.celsius < fever_threshold_c for r in readings)
    naming = [(h.start, h.end) for h in hits if h.target.kind == "temperature_words"]
    fired: list[tuple[int, str, str | None, str | None]] = []  # (rank, rule id, topic, advice)
    persisting = [h for h in hits if h.target.kind == "persisting"]
    topics = [h for h in hits if h.target.kind == "topic"]
    for h in hits:
        if normal and _about_fever(catalog, h) and any(a < h.end and h.start < b for a, b in naming):
            continue
        if h in negated:
            rule = catalog.rules.get(h.target.id) if h.target.kind == "rule" else None
            # "not breathing": the negation is the symptom, unless it denies a longer phrase around this
            # word ("no trouble breathing").
            if rule and rule.when_negated and not any(
                    o is not h and o.target.kind in ("rule", "topic") and o.start <= h.start and h.end <= o.end
                    and o.length > h.length for o in negated):
                fired.append((LEVEL_RANK[rule.when_negated], rule.id, rule.topic, rule.advice))
            continue
        if h.target.kind == "rule":
            rule = catalog.rules[h.target.id]
            level = rule.level
            # "his nose is bleeding, we pressed for 20 minutes and it will not stop": however many words stand
            # between, a "goes on" word near the symptom raises it (triage.md: bleeding that won't stop).
            # The word belongs to the nearest topic ("nosebleed, still tired"); other rules' words are often
            # where it bleeds ("blood by the catheter won't stop").
            if rule.when_persisting and any(abs(p.start - h.start) <= PERSISTING_REACH
                                            and nearest_symptom(p, [h, *topics]) is h for p in persisting):
                level = rule.when_persisting
            if level != "none":
                fired.append((LEVEL_RANK[level], rule.id, rule.topic, rule.advice))
        elif h.target.kind == "topic" and catalog.topics[h.target.id].level == "call_now":
            fired.append((LEVEL_RANK["call_now"], h.target.id, h.target.id, None))
    reading = None
    for r in readings:  # first: a number says more about the topic than a word beside it ("35,7, tout froid")
        if r.celsius >= fever_threshold_c:
            fired.insert(0, (LEVEL_RANK["call_now"], "temperature_high", "fever", None))
        elif r.celsius < low:
            fired.insert(0, (LEVEL_RANK["call_now"], "temperature_low", "fever", "triage.low_temperature"))
        reading = reading or r
    negated_ids = tuple(dict.fromkeys(h.target.id for h in negated))
    if not fired:
        return Finding("info" if reading else "none", reading=reading, topic="fever" if reading else None,
                       negated=negated_ids)
    fired.sort(key=lambda f: -f[0])
    top = fired[0][0]
    level = "emergency" if top == LEVEL_RANK["emergency"] else "call_now"
    rules = tuple(dict.fromkeys(f[1] for f in fired))
    topic = next((f[2] for f in fired if f[2]), None)
    advice = tuple(dict.fromkeys(f[3] for f in fired if f[3]))
    return Finding(level, rules, topic, advice, reading, negated_ids)
