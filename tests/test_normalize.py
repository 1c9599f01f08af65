import pytest

from assistant.normalize import BREAK, tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FIÈVRE!!", ["fievre"]),
        ("bị sốt cao", ["bi", "sot", "cao"]),  # Vietnamese tones
        ("đau đầu", ["dau", "dau"]),
        ("feverrrrr", ["fever"]),  # emphasis
        ("chills child", ["chills", "child"]),  # real double letters stay
        ("I can't breathe 😀", ["i", "cant", "breathe"]),
        ("发高烧了", ["发", "高", "烧", "了"]),  # Chinese: a token per character
        ("أحمد ٣٨٫٥", ["احمد", "38.5"]),  # Arabic letter forms and Arabic-Indic digits
        ("ｆｅｖｅｒ", ["fever"]),  # full-width letters
        ("temp of 38,5", ["temp", "of", "38,5"]),  # decimal comma stays in the number
        ("no fever, but", ["no", "fever", BREAK, "but"]),
        ("ёлка й", ["елка", "и"]),
        ("a\x00b\x07c", ["a", "b", "c"]),
        ("", []),
        ("   \n\t ", []),
    ],
)
def test_tokens(text, expected):
    assert tokens(text) == expected


def test_long_text_is_tokenised_quickly():
    assert len(tokens("fever " * 2000)) == 2000
