"""Review records: who marked a translation reviewed, when, tied to its exact wording.

Poedit's "Needs work" (the gettext ``fuzzy`` flag) stays the mark in the file, and what the service reads
(``SERVE_UNREVIEWED=false`` sends English instead of an unreviewed text). The database keeps who cleared it
and for which wording (hashes of the English and of the translation). When a revision is stored, an entry
without "Needs work" is accepted as reviewed only if that exact wording was reviewed (a record) or was
already reviewed in the previous revision; otherwise "Needs work" is put back: a translation or English text
that changed is unreviewed again, whoever forgot to mark it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .catalog import SOURCE_LOCALE
from .catalogcheck import Content, po_path
from .models import CatalogReview, utcnow
from .pofile import parse_po


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record(session: Session, locale: str, key: str, english: str, translation: str, by: str) -> CatalogReview:
    review = CatalogReview(locale=locale, key=key, english_sha=sha(english), translation_sha=sha(translation),
                           reviewed_by=by.strip()[:120], reviewed_at=utcnow())
    session.add(review)
    session.flush()
    return review


def latest(session: Session, locale: str, key: str, english: str, translation: str) -> CatalogReview | None:
    """The newest review of exactly this wording."""
    return session.scalar(select(CatalogReview).where(
        CatalogReview.locale == locale, CatalogReview.key == key, CatalogReview.english_sha == sha(english),
        CatalogReview.translation_sha == sha(translation)).order_by(CatalogReview.id.desc()).limit(1))


def enforce(session: Session, parent: Mapping[str, bytes] | None, content: Content) -> tuple[Content, list[str]]:
    """``content`` with "Needs work" put back on every entry whose wording nobody reviewed; returns the new
    content and the "locale key" of each entry marked."""
    from .spreadsheets import edit_po

    out = dict(content)
    marked: list[str] = []
    for path, data in content.items():
        if not (path.startswith("locales/") and path.endswith("/messages.po")):
            continue
        locale = path.split("/")[1]
        if locale == SOURCE_LOCALE:
            continue
        parsed = parse_po(data)
        if parsed.errors:
            continue  # refused by the checks anyway
        before = {}
        if parent is not None and po_path(locale) in parent:
            before = parse_po(parent[po_path(locale)]).by_context()
        edits = []
        for key, e in parsed.by_context().items():
            if e.fuzzy or not e.msgstr.strip():
                continue
            old = before.get(key)
            if old is not None and not old.fuzzy and (old.msgid, old.msgstr) == (e.msgid, e.msgstr):
                continue  # reviewed before, unchanged
            if latest(session, locale, key, e.msgid, e.msgstr) is not None:
                continue
            edits.append((e, key, e.msgstr, False))
            marked.append(f"{locale} {key}")
        if edits:
            out[path] = edit_po(data.decode("utf-8"), edits, {}).encode("utf-8")
    return out, marked
