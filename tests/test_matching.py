"""Topic matching as a caregiver sees it: the topic of the reply to a text."""

import pytest

from assistant.conversation import State
from assistant.matching import GAP, PhraseIndex, parse_phrase
from assistant.normalize import tokens


def topic_of(assistant, text):
    return assistant.reply(text, State()).topic


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("MAB", "mab"),
        ("mAbs", "mab"),
        ("vaccines", "vaccine"),
        ("interleukin", "nonspecific"),
        ("late effects", "late_effects"),
        ("clinical trials", "clinical_trial"),
        ("neutrophils", "neutropenia"),
        ("what is a monoclonal antibody", "mab"),
        ("what side effects can immunotherapy cause", "side_effects"),
        ("does leukemia weaken the immune system", "cancer_and_immunity"),
        ("what do white blood cells do", "immune_system"),
        ("where can I learn more", "resources"),
        ("who wrote this", "about"),
    ],
)
def test_keywords_and_free_text(assistant, text, topic):
    assert topic_of(assistant, text) == topic


@pytest.mark.parametrize(
    ("text", "topic"),
    [("FEVR", "fever"), ("fevre", "fever"), ("nutropenia", "neutropenia"), ("neutropinia", "neutropenia"),
     ("imunotherapy", "immunotherapy"), ("vacsine", "vaccine"), ("hedache", "headache"), ("mabb", "mab"),
     ("chillz", "chills"), ("intreferon", "nonspecific")],
)
def test_typos(assistant, text, topic):
    assert topic_of(assistant, text) == topic


@pytest.mark.parametrize("drug", ["rituximab", "obinutuzumab", "what is DINUTUXIMAB", "pembrolizumab?"])
def test_drug_names_ending_in_mab(assistant, drug):
    assert topic_of(assistant, drug) == "mab"


@pytest.mark.parametrize("text", ["ok thanks", "lol", "see you tuesday", "thank you", "qwerty", "k",
                                  "call me later", "where is the parking", "😀👍"])
def test_chatter_matches_nothing(assistant, text):
    reply = assistant.reply(text, State())
    assert reply.topic is None and reply.level == "none"
    assert "+1 617-555-0142" in reply.text  # the fallback always gives the care-team number


@pytest.mark.parametrize("word", ["CANCEL", "cancel", "Stop", "END", "QUIT", "UNSUBSCRIBE", "STOPALL", "REVOKE",
                                  "OPTOUT"])
def test_carrier_words_are_commands_never_topics(assistant, word):
    assert topic_of(assistant, word) == "stop"


def test_carrier_words_are_never_typo_corrected(assistant):
    # CANCEL is one letter from CANCER; inside a sentence it must not become a topic or a command.
    reply = assistant.reply("cancel my appointment", State())
    assert reply.topic is None
    assert reply.text is not None


def test_no_fuzzy_match_onto_command_words(shipped_catalog):
    for tok in ("cancle", "stopp", "unsubscrib"):
        keys = [k for k, _ in shipped_catalog.index.alternatives(tok)]
        assert not any(k in ("cancel", "stop", "unsubscribe") for k in keys)


def test_near_tie_asks_which_one(assistant):
    reply = assistant.reply("fatigue headache", State())
    assert reply.text.startswith("Did you mean")
    assert "1)" in reply.text and "2)" in reply.text
    picked = assistant.reply("2", reply.state)
    assert picked.topic in ("fatigue", "headache")
    assert picked.topic != assistant.reply("1", reply.state).topic


def test_phrase_syntax():
    assert parse_phrase("head ... hurts") == ("head", GAP, "hurts")
    assert parse_phrase("vaccin*") == (("prefix", "vaccin"),)
    assert parse_phrase("*mab") == (("suffix", "mab"),)
    assert parse_phrase("发烧") == ("发", "烧")


def test_gap_allows_four_words_not_five():
    index = PhraseIndex([("topic", "headache", "en", "head ... hurts")])
    assert index.find(tokens("head really hurts"))
    assert index.find(tokens("head really really really really hurts"))
    assert not index.find(tokens("head really really really really really hurts"))
    assert not index.find(tokens("head really. really hurts"))  # never across a sentence end


def test_gap_counts_chinese_characters_as_half_words():
    index = PhraseIndex([("rule", "severe_bleeding", "zh_Hans", "血 ... 止不住")])
    assert index.find(tokens("血流了好久都止不住"))  # five characters between
    assert not index.find(tokens("血流了好久好久好久好久都止不住"))
    assert not index.find(tokens("head. hurts"))  # never across a sentence end


def test_typo_index_scales_with_word_length_not_catalog_size():
    small = PhraseIndex([("topic", "t", "en", "neutropenia")])
    big = PhraseIndex([("topic", "t", "en", "neutropenia")]
                      + [("topic", f"x{i}", "en", f"word{i}xyz") for i in range(20000)])
    assert [k for k, _ in small.alternatives("nutropenia")] == [k for k, _ in big.alternatives("nutropenia")]


def test_an_umbrella_topic_yields_to_a_specific_one(assistant):
    assert topic_of(assistant, "what side effects can immunotherapy cause") == "side_effects"
    assert topic_of(assistant, "免疫治疗有什么副作用") == "side_effects"
    assert topic_of(assistant, "how does immunotherapy work") == "immunotherapy"


def test_about_alone_is_the_about_topic_but_not_inside_a_sentence(assistant):
    assert topic_of(assistant, "ABOUT") == "about"
    assert topic_of(assistant, "can someone call me back about a bill") is None
