from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsSegments,
    count_segments,
    encoding_of,
    segment,
)

REFERENCE_BASIC = (
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà"
    " !\"#%&'()*+,-./:;<=>?"
    "0123456789"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "abcdefghijklmnopqrstuvwxyz"
    "\n\r"
)
REFERENCE_EXTENSION = "^{}\\[~]|€\f"
REFERENCE_NON_GSM = "`‘’“”…–—çáíóú\u00a0😀\t"

SINGLE = {"GSM-7": 160, "UCS-2": 70}
MULTI = {"GSM-7": 153, "UCS-2": 67}

GSM_CHARS = sorted(set(REFERENCE_BASIC) | set(REFERENCE_EXTENSION))
NON_GSM_CHARS = st.characters(exclude_characters=GSM_CHARS, exclude_categories=("Cs",))
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700)
ucs2_prone_text = st.lists(
    st.one_of(
        st.sampled_from(GSM_CHARS),
        st.sampled_from(["’", "😀", "👍🏽", "é\u0301", "ç", "€", "𝄞"]),
        st.characters(),
    ),
    max_size=400,
).map("".join)
any_text = st.one_of(gsm_text, ucs2_prone_text)


def units_of(text: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return sum(2 if c in REFERENCE_EXTENSION else 1 for c in text)
    # UTF-16 code units; a lone surrogate (st.characters() draws them) is one unit as it is
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def twilio_style_split(text: str) -> tuple[str, list[str]]:
    encoding = "GSM-7" if all(c in GSM_CHARS for c in text) else "UCS-2"
    parts: list[list[str]] = [[]]
    has_header = False
    for char in text:
        capacity = MULTI[encoding] if has_header else SINGLE[encoding]
        if units_of("".join(parts[-1]), encoding) + units_of(char, encoding) > capacity:
            moved: list[str] = []
            if not has_header:
                has_header = True
                while units_of("".join(parts[-1]), encoding) > MULTI[encoding]:
                    moved.insert(0, parts[-1].pop())
            parts.append(moved)
        parts[-1].append(char)
    return encoding, ["".join(p) for p in parts if p]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "part_units"),
    [
        (
            "Hi Ana, your payment of $120.00 is due 05/12. Reply STOP to opt out.",
            "GSM-7",
            68,
            [68],
        ),
        ("x" * 160, "GSM-7", 160, [160]),
        ("x" * 161, "GSM-7", 161, [153, 8]),
        ("x" * 306, "GSM-7", 306, [153, 153]),
        ("x" * 307, "GSM-7", 307, [153, 153, 1]),
        ("Balance €" + "x" * 151, "GSM-7", 161, [153, 8]),
        ("x" * 152 + "€" + "x" * 152, "GSM-7", 306, [152, 153, 1]),
        ("Don’t miss it! " + "x" * 55, "UCS-2", 70, [70]),
        ("Don’t miss it! " + "x" * 56, "UCS-2", 71, [67, 4]),
        ("’" + "x" * 133, "UCS-2", 134, [67, 67]),
        ("’" + "x" * 134, "UCS-2", 135, [67, 67, 1]),
        ("Paid 😀", "UCS-2", 7, [7]),
        ("’" + "x" * 65 + "😀" + "x" * 66, "UCS-2", 134, [66, 67, 1]),
    ],
    ids=[
        "gsm-68-chars-reminder",
        "gsm-160x-single",
        "gsm-161x-two-parts",
        "gsm-306x-two-full-parts",
        "gsm-307x-three-parts",
        "gsm-balance-euro-161-septets",
        "gsm-euro-pair-moves-to-part-2",
        "ucs2-curly-quote-70",
        "ucs2-curly-quote-71",
        "ucs2-134-two-parts",
        "ucs2-135-three-parts",
        "ucs2-emoji-surrogate-pair",
        "ucs2-surrogate-pair-moves-to-part-2",
    ],
)
def test_reference_worked_examples(
    text: str, encoding: str, units: int, part_units: list[int]
) -> None:
    result = segment(text)
    assert result.encoding == encoding
    assert encoding_of(text) == encoding
    assert result.units == units
    assert [units_of(part, encoding) for part in result.segments] == part_units
    assert result.count == len(part_units)
    assert count_segments(text) == len(part_units)
    assert "".join(result.segments) == text


def test_gsm7_tables_match_reference() -> None:
    assert len(GSM7_BASIC) == 127
    assert set(REFERENCE_BASIC) == GSM7_BASIC
    assert set(REFERENCE_EXTENSION) == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("char", list(REFERENCE_NON_GSM), ids=lambda c: f"U+{ord(c[0]):04X}")
def test_reference_non_gsm_characters_force_ucs2(char: str) -> None:
    text = "Your balance is due. " + char
    assert encoding_of(text) == "UCS-2"
    assert segment(text).units == len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("char", list(REFERENCE_EXTENSION), ids=lambda c: f"U+{ord(c[0]):04X}")
def test_extension_characters_cost_two_septets(char: str) -> None:
    result = segment("Pay " + char)
    assert result.encoding == "GSM-7"
    assert result.units == 6


@pytest.mark.parametrize(
    ("text", "units"),
    [("👍🏽", 4), ("€’", 2), ("Ç’", 2), ("𝄞x", 3)],
    ids=["thumbs-up-skin-tone", "euro-one-unit", "gsm-char-one-unit", "astral-pair"],
)
def test_ucs2_counts_utf16_code_units(text: str, units: int) -> None:
    result = segment(text)
    assert result.encoding == "UCS-2"
    assert result.units == units


def test_empty_text_has_no_segments() -> None:
    result = segment("")
    assert result == SmsSegments("GSM-7", 0, ())
    assert result.count == 0
    assert count_segments("") == 0


def test_result_is_frozen() -> None:
    result = segment("hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.units = 1


@given(any_text)
def test_joining_segments_restores_text(text: str) -> None:
    assert "".join(segment(text).segments) == text


@given(any_text)
def test_units_match_per_character_oracle(text: str) -> None:
    result = segment(text)
    expected = "GSM-7" if all(c in GSM_CHARS for c in text) else "UCS-2"
    assert result.encoding == expected == encoding_of(text)
    assert result.units == units_of(text, expected)


@given(any_text)
def test_parts_respect_limits_and_are_filled_greedily(text: str) -> None:
    result = segment(text)
    enc = result.encoding
    assert (result.count == 0) == (text == "")
    if result.count == 1:
        assert result.units <= SINGLE[enc]
    if result.count > 1:
        assert result.units > SINGLE[enc]
        for part in result.segments:
            assert 0 < units_of(part, enc) <= MULTI[enc]
        for part, following in zip(result.segments, result.segments[1:], strict=False):
            assert units_of(part, enc) + units_of(following[0], enc) > MULTI[enc]


@given(any_text)
def test_count_bounds(text: str) -> None:
    result = segment(text)
    enc = result.encoding
    if result.count > 1:
        assert result.count >= math.ceil(result.units / MULTI[enc])
        assert result.units >= (result.count - 1) * (MULTI[enc] - 1) + 1
    assert count_segments(text) == result.count


@given(any_text)
def test_matches_twilio_style_oracle(text: str) -> None:
    encoding, parts = twilio_style_split(text)
    result = segment(text)
    assert result.encoding == encoding
    assert list(result.segments) == parts


@given(st.text(alphabet=st.sampled_from(sorted(set(REFERENCE_BASIC))), min_size=1, max_size=160))
def test_basic_gsm_text_up_to_160_chars_is_one_segment(text: str) -> None:
    result = segment(text)
    assert result.encoding == "GSM-7"
    assert result.units == len(text)
    assert result.segments == (text,)


@given(
    st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=300),
    NON_GSM_CHARS,
    st.integers(min_value=0),
)
def test_any_non_gsm_character_flips_whole_message_to_ucs2(
    text: str, char: str, position: int
) -> None:
    assert encoding_of(text) == "GSM-7"
    at = position % (len(text) + 1)
    mixed = text[:at] + char + text[at:]
    result = segment(mixed)
    assert result.encoding == "UCS-2"
    assert result.units == len(mixed.encode("utf-16-le")) // 2
