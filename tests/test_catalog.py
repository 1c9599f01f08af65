"""The catalog a coordinator edits: every language complete, problems reported, never a broken service."""

import shutil

import pytest

from assistant.catalog import CatalogStore, load_catalog
from assistant.config import Settings
from assistant.conversation import Assistant, State
from assistant.segments import measure

from .conftest import CARE_TEAM, LOCALES, ROOT, make_assistant, po_catalog


def test_shipped_catalog_has_no_errors(shipped_catalog):
    assert shipped_catalog.errors == ()
    assert shipped_catalog.languages == LOCALES


def test_topic_ids_are_fixed(shipped_catalog):
    assert set(shipped_catalog.topics) == {
        "immunotherapy", "immune_system", "cancer_and_immunity", "neutropenia", "mab", "vaccine", "nonspecific",
        "side_effects", "fever", "chills", "headache", "fatigue", "late_effects", "clinical_trial", "resources",
        "about"}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("key", "first"), [("escalation.emergency", "911"), ("escalation.call_now", CARE_TEAM)])
def test_escalation_templates_in_every_language(shipped_catalog, locale, key, first):
    template = shipped_catalog.texts[locale][f"text:{key}"].string
    if locale != "en":
        assert template != shipped_catalog.texts["en"][f"text:{key}"].string, "not translated"
    text = template.format(care_team=CARE_TEAM, emergency="911")
    assert CARE_TEAM in text
    if key.endswith("emergency"):
        assert "911" in text
    assert text.find(first) < 45, f"{locale}: the action and number must come first: {text}"
    assert measure(text).segments <= 2


def test_about_shows_source_and_review_date(assistant):
    reply = assistant.reply("about", State())
    assert "KidsHealth" in reply.text and "2012" in reply.text and "911" in reply.text


def test_broken_language_file_falls_back_to_english(tmp_path):
    shutil.copytree(ROOT / "messages", tmp_path / "messages")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    (tmp_path / "locales" / "es" / "LC_MESSAGES" / "messages.po").write_text('msgid "unterminated\n', "utf-8")
    catalog = load_catalog(tmp_path / "messages", tmp_path / "locales")
    assert [p.locale for p in catalog.errors] == ["es"]
    assert "cannot read" in catalog.errors[0].message
    assistant = Assistant(CatalogStore(catalog), Settings(care_team_phone=CARE_TEAM))
    reply = assistant.reply("fever", State(locale="es"))
    assert reply.level == "call_now" and CARE_TEAM in reply.text
    assert assistant.reply("fièvre", State()).level == "call_now"  # the other languages still work
    assert assistant.reply("发烧", State()).level == "call_now"
    assert CARE_TEAM in assistant.reply("fiebre", State()).text  # Spanish words unknown: still the number


def test_missing_language_file_is_reported(tmp_path):
    shutil.copytree(ROOT / "messages", tmp_path / "messages")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    shutil.rmtree(tmp_path / "locales" / "so")
    catalog = load_catalog(tmp_path / "messages", tmp_path / "locales")
    assert any(p.locale == "so" and "missing" in p.message for p in catalog.errors)


def test_wrong_placeholder_is_refused_and_english_sent():
    es = po_catalog("es", {"text:escalation.call_now": "LLAME YA a su equipo: {equipo}.",
                           "topic:fever:keywords": "fiebre"})
    assistant = make_assistant({"es": es})
    catalog = assistant.store.current
    assert any("placeholders" in p.message and p.locale == "es" for p in catalog.errors)
    reply = assistant.reply("fiebre", State())
    assert reply.locale == "es" and reply.text.startswith(f"CALL YOUR CARE TEAM NOW: {CARE_TEAM}")


def test_unreviewed_entries_are_listed_and_served_by_default():
    es = po_catalog("es", {"text:escalation.call_now": "LLAME YA a su equipo médico: {care_team}.",
                           "topic:fever:keywords": "fiebre"}, fuzzy=True)
    assistant = make_assistant({"es": es})
    assert ("es", "text:escalation.call_now") in set(assistant.store.current.unreviewed("es"))
    assert ("es", "topic:fever:keywords") in set(assistant.store.current.unreviewed("es"))
    assert assistant.reply("fiebre", State()).text.startswith("LLAME YA")


def test_unreviewed_texts_not_served_when_switched_off():
    es = po_catalog("es", {"text:escalation.call_now": "LLAME YA a su equipo médico: {care_team}.",
                           "topic:fever:keywords": "fiebre"}, fuzzy=True)
    assistant = make_assistant({"es": es}, serve_unreviewed=False)
    reply = assistant.reply("fiebre", State())
    # Keywords are used even unreviewed (a missed symptom is worse); the wording falls back to English.
    assert reply.level == "call_now" and reply.text.startswith("CALL YOUR CARE TEAM NOW")


def test_reviewed_entries_are_served_when_unreviewed_are_not():
    es = po_catalog("es", {"text:escalation.call_now": "LLAME YA a su equipo médico: {care_team}.",
                           "topic:fever:keywords": "fiebre"})
    assistant = make_assistant({"es": es}, serve_unreviewed=False)
    assert assistant.reply("fiebre", State()).text.startswith("LLAME YA")


def test_catalog_is_immutable_and_swapped_whole(shipped_catalog):
    with pytest.raises(TypeError):
        shipped_catalog.texts["en"]["text:help"] = "changed"  # type: ignore[index]
    with pytest.raises(AttributeError):
        shipped_catalog.languages = ("en",)  # type: ignore[misc]
    store = CatalogStore(shipped_catalog)
    es_only = make_assistant({"es": po_catalog("es", {"topic:fever:keywords": "calentura"})}).store.current
    assistant = Assistant(store, Settings(care_team_phone=CARE_TEAM))
    assert assistant.reply("frissons", State()).level == "call_now"
    old = store.swap(es_only)
    assert old is shipped_catalog
    assert assistant.reply("frissons", State()).level == "none"  # the new catalog has no French
    assert assistant.reply("calentura", State()).level == "call_now"
