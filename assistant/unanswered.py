"""Texts the catalog could not answer, grouped so a coordinator sees what is missing: by language, then by
similar wording ("wat is a port", "what's a port?" and "what is port" are one group)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import UnansweredText, utcnow
from .normalize import BREAK, tokens

SIMILAR = 75  # rapidfuzz token_set_ratio from which two texts are one group


@dataclass
class Group:
    locale: str
    texts: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    last: datetime | None = None
    key: str = ""

    @property
    def count(self) -> int:
        return len(self.texts)

    @property
    def example(self) -> str:
        """The wording most often sent, else the latest."""
        return Counter(self.texts).most_common(1)[0][0]

    @property
    def variants(self) -> list[str]:
        return [t for t, _ in Counter(self.texts).most_common() if t != self.example][:5]

    @property
    def words(self) -> list[str]:
        """The words of the shown wordings, offered as keywords: a keyword is a word or two a coordinator picks,
        never a caregiver's whole text."""
        seen: dict[str, str] = {}
        for text in [self.example, *self.variants]:
            for word in WORD.findall(text):
                if sum(ch.isdigit() for ch in word) <= 2:  # never a number: a phone, a date, a record
                    seen.setdefault(word.casefold(), word)
        return list(seen.values())[:30]


WORD = re.compile(r"\w[\w'’-]*\w|\w")


def key_of(text: str) -> str:
    """``text`` as the grouping compares it: folded words, no punctuation."""
    return " ".join(t for t in tokens(text) if t != BREAK)




def groups(db: Session, days: int, limit: int = 2000) -> dict[str, list[Group]]:
    """Per language, the groups of similar unanswered texts of the last ``days`` days, biggest first."""
    since = utcnow() - timedelta(days=days)
    rows = db.execute(select(UnansweredText.locale, UnansweredText.text, UnansweredText.kind,
                             UnansweredText.received_at)
                      .where(UnansweredText.received_at >= since)
                      .order_by(UnansweredText.received_at.desc()).limit(limit)).all()
    out: dict[str, list[Group]] = {}
    for locale, text, kind, at in rows:
        key = key_of(text)
        if not key:
            continue
        bucket = out.setdefault(locale, [])
        group = next((g for g in bucket if fuzz.token_set_ratio(key, g.key) >= SIMILAR), None)
        if group is None:
            group = Group(locale, key=key, last=at)
            bucket.append(group)
        group.texts.append(text.strip())
        group.kinds[kind] += 1
    for bucket in out.values():
        bucket.sort(key=lambda g: (-g.count, g.key))
    return dict(sorted(out.items(), key=lambda kv: -sum(g.count for g in kv[1])))
