"""The Babel workflow: the committed .pot matches the source, and every language's catalog is up to date."""

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from .conftest import LOCALES, ROOT


def extract_in_memory() -> Catalog:
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(str(ROOT), method_map, options_map):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def read(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def entries(catalog: Catalog) -> dict:
    # Comments compared as text: the .pot wraps long ones over several lines.
    return {(m.context, m.id): (" ".join(" ".join(m.auto_comments).split()), tuple(m.locations))
            for m in catalog if m.id}


def test_pot_is_up_to_date():
    fresh, committed = entries(extract_in_memory()), entries(read(ROOT / "locales" / "messages.pot"))
    stale = sorted(set(fresh) ^ set(committed))
    assert not stale, f"locales/messages.pot is stale (run `make catalogs`): {stale[:5]}"
    assert fresh == committed, "comments or line numbers changed: run `make catalogs`"


def test_extraction_covers_every_topic_rule_and_text(source):
    contexts = {m.context for m in extract_in_memory() if m.id}
    for topic in source.topics:
        assert {f"topic:{topic.id}:{f}" for f in ("title", "keywords", "summary")} <= contexts
    assert {f"rule:{r.id}:phrases" for r in source.rules} <= contexts
    assert {"text:escalation.emergency", "text:escalation.call_now", "text:fallback", "text:help"} <= contexts


@pytest.mark.parametrize("locale", LOCALES)
def test_language_catalog_is_up_to_date(locale):
    pot = {(m.context, m.id) for m in read(ROOT / "locales" / "messages.pot") if m.id}
    po = read(ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po")
    have = {(m.context, m.id) for m in po if m.id}
    assert pot - have == set(), f"{locale}: run `make catalogs` to add new messages"
    untranslated = [m.context for m in po if m.id and not m.string]
    assert not untranslated, f"{locale}: untranslated {untranslated[:5]}"
