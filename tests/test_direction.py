"""Numbers in right-to-left replies read as they should on a phone.

Phones lay text out with the Unicode bidirectional algorithm; python-bidi implements the same algorithm,
so its visual order is what a phone that follows Unicode shows.
"""

from __future__ import annotations

import pytest
from bidi import get_display

from assistant.conversation import State
from assistant.direction import LRI, PDI, isolate_numbers, text_direction
from assistant.segments import NUMBER

from .conftest import CARE_TEAM, LOCALES

RTL = [loc for loc in LOCALES if text_direction(loc) == "rtl"]


def shown(text: str) -> str:
    """What a phone shows, left to right, without the invisible isolates."""
    return get_display(text).replace(LRI, "").replace(PDI, "")


def test_arabic_is_the_right_to_left_language():
    assert RTL == ["ar"]


def test_without_isolates_the_number_breaks_apart():
    # The failure this guards against: what the newcomer saw in the simulator, and a phone shows.
    assert "555-0100" not in shown("اتصل بالفريق الطبي الآن: 555-0100. ليلاً")
    assert "555-0100" in shown(isolate_numbers("اتصل بالفريق الطبي الآن: 555-0100. ليلاً"))


@pytest.mark.parametrize("locale", RTL)
@pytest.mark.parametrize("text", ["عنده حمى", "لا يتنفس", "مساعدة", "ابني حرارته 37.2", "إلغاء الاشتراك"])
def test_numbers_in_right_to_left_replies_read_in_order(assistant, locale, text):
    reply = assistant.reply(text, State(locale=locale))
    assert reply.text, text
    display = shown(reply.text)
    numbers = NUMBER.findall(reply.text.replace(LRI, "").replace(PDI, ""))
    assert numbers, reply.text
    for number in numbers:  # the care-team number, 911, temperatures
        assert number in display, (number, display)


def test_the_sentence_keeps_its_direction_when_it_starts_with_a_number():
    text = isolate_numbers("555-0100 اتصل")
    assert shown(text).endswith("555-0100")  # the number is read first: at the right


def test_isolating_twice_changes_nothing_and_plain_digits_are_left_alone():
    once = isolate_numbers("رد برقم: 1) حمى. اتصل 911 أو +1 617-555-0142")
    assert isolate_numbers(once) == once
    assert f"{LRI}1{PDI}" not in once and f"{LRI}911{PDI}" not in once
    assert f"{LRI}+1 617-555-0142{PDI}" in once


def test_left_to_right_replies_are_unchanged(assistant):
    reply = assistant.reply("fiebre")
    assert LRI not in reply.text and CARE_TEAM in reply.text
