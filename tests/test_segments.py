import pytest

from assistant.segments import fit, measure, smart_encode


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 2),
        ("é ñ ü ¿ ¡", "GSM-7", 1),  # in the GSM-7 table
        ("á" + "a" * 69, "UCS-2", 1),  # á is not: the whole text becomes UCS-2
        ("á" + "a" * 70, "UCS-2", 2),
        ("发烧" * 67, "UCS-2", 2),
        ("😀" * 35, "UCS-2", 1),  # an emoji takes two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
        ("38.0 °C", "UCS-2", 1),  # the degree sign is not GSM-7
    ],
)
def test_measure(text, encoding, segments):
    size = measure(text)
    assert (size.encoding, size.segments) == (encoding, segments)


def test_smart_encode_keeps_gsm7():
    assert measure(smart_encode("It’s “fine” — really…")).encoding == "GSM-7"


def test_fit_cuts_after_a_sentence_and_keeps_the_rest():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    head, rest = fit(text, 3, "Text MORE for the rest.")
    assert measure(head).segments <= 3
    assert head.endswith("Text MORE for the rest.")
    assert head.replace(" Text MORE for the rest.", "").endswith(".")
    assert (head.replace(" Text MORE for the rest.", "") + " " + rest) == text


def test_fit_cuts_unspaced_scripts():
    text = "发烧" * 300
    head, rest = fit(text, 3, "回复MORE")
    assert measure(head).segments <= 3 and rest


def test_fit_leaves_short_text_alone():
    assert fit("Short.", 3, "MORE") == ("Short.", "")


def test_a_cut_never_falls_inside_a_number():
    # "100.4" must not become "100." in the first message and "4 F" in the next (the review's Arabic case).
    # 167 letters of padding put the 3-segment limit just after "100." (where the old cut fell).
    text = "ا" * 167 + " عند 38.0 C / 100.4 F أو أكثر. " + "ب" * 40
    head, rest = fit(text, 3, "MORE")
    assert "100." not in head or "100.4" in head
    assert head.endswith("MORE") and rest
    phone = "Call +1 617-555-0142 now. " + "x " * 200
    for limit in (1, 2):
        head, rest = fit(phone, limit, "MORE")
        assert ("+1 617-555-0142" in head) or ("617" not in head), head
