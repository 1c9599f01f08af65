"""Fixtures in the Flask tutorial's style: ``app``, ``client``, ``runner``, plus the core's ``assistant``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog as BabelCatalog
from babel.messages.pofile import read_po, write_po

from assistant import create_app
from assistant.catalog import CatalogStore, build_catalog, load_catalog
from assistant.config import Settings
from assistant.conversation import Assistant
from assistant.source import read_source

ROOT = Path(__file__).resolve().parent.parent
CARE_TEAM = "+1 617-555-0142"
LOCALES = ("en", "es", "zh_Hans", "vi", "ko", "tl", "ru", "ar", "ht", "pt", "fr", "so")


@pytest.fixture(scope="session")
def shipped_catalog():
    """The catalog as shipped in messages/ and locales/."""
    return load_catalog(ROOT / "messages", ROOT / "locales")


@pytest.fixture
def settings():
    return Settings(care_team_phone=CARE_TEAM, emergency_number="911")


@pytest.fixture
def assistant(shipped_catalog, settings):
    return Assistant(CatalogStore(shipped_catalog), settings)


@pytest.fixture
def app():
    return create_app({"TESTING": True, "CARE_TEAM_PHONE": CARE_TEAM})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def source():
    return read_source(ROOT / "messages")


def po_catalog(locale: str, entries: dict[str, str], *, fuzzy: bool = False, source=None) -> BabelCatalog:
    """A Babel catalog built in memory: msgctxt -> translation (msgids taken from the source)."""
    source = source or read_source(ROOT / "messages")
    msgids = {e.context: e.msgid for e in source.entries}
    cat = BabelCatalog(locale=locale)
    for ctx, string in entries.items():
        cat.add(msgids[ctx], string, context=ctx, flags=("fuzzy",) if fuzzy else ())
    # Round-trip through the .po format so the catalog is exactly what a file would give.
    buf = io.BytesIO()
    write_po(buf, cat)
    buf.seek(0)
    return read_po(buf, locale=locale)


def make_assistant(pos: dict, *, serve_unreviewed: bool = True, languages=None) -> Assistant:
    source = read_source(ROOT / "messages")
    if languages:
        from dataclasses import replace

        source = replace(source, languages=tuple(languages))
    catalog = build_catalog(source, pos, serve_unreviewed=serve_unreviewed)
    return Assistant(catalog, Settings(care_team_phone=CARE_TEAM))
