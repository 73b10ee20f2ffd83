from __future__ import annotations

import json
import unicodedata

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_quality.rules import Rule, raw_json, split_rows
from tasks.normalize import normalize
from tests import factories as f

VISA = "4111111111111111"


def digits_of(text: str) -> str:
    return "".join(
        str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None
    )


@pytest.mark.parametrize(
    "value",
    [
        VISA,
        "4111 1111 1111 1111",
        "4111\n1111\n1111\n1111",  # JSON-encoded, the newlines become "\\n": masked before
        "\u0664\u0661\u0661\u0661\u200b\u0661\u0661\u0661\u0661 1111-1111",
        f"card {VISA} exp 12/28",
    ],
    ids=["plain", "spaces", "line-breaks", "arabic-indic-zero-width", "with-expiry"],
)
def test_quarantined_raw_values_never_hold_a_pan(value: str) -> None:
    frame = pl.DataFrame(
        {
            "source_row": [0, 1],
            "id": ["a", "b"],
            "note": [value, "fine"],
            "phone": ["+1 800 555 0100", None],
        }
    )
    rules = [Rule("always", "every row fails", pl.lit(True))]
    accepted, quarantine = split_rows(
        frame, rules, source="t", key="id", raw_columns=["id", "note", "phone"]
    )
    assert accepted.height == 0
    assert quarantine.height == 2
    first, second = (json.loads(v) for v in quarantine["raw_values"])
    assert digits_of(first["note"]) == digits_of(value)[12:]  # the first 12 PAN digits go
    assert VISA not in quarantine["raw_values"][0]
    assert first["id"] == "a"
    assert first["phone"] == "+1 800 555 0100"  # not a PAN: kept as it arrived
    assert second == {"id": "b", "note": "fine", "phone": None}


def test_raw_json_keeps_non_text_columns_and_empty_frames() -> None:
    frame = pl.DataFrame({"n": [1, None], "s": [VISA, None]})
    out = frame.select(raw_json(["n", "s"]).alias("j"))["j"].to_list()
    assert [json.loads(v) for v in out] == [
        {"n": 1, "s": "••••••••••••1111"},
        {"n": None, "s": None},
    ]
    assert frame.head(0).select(raw_json(["n", "s"]))["n"].to_list() == []


def test_field_quarantine_of_a_customer_masks_a_pan_typed_into_the_phone() -> None:
    pan_phone = "4111-1111-1111-1111"
    ex = f.extracted([f.customer(phone=pan_phone)], [])
    n = normalize(ex)
    field = n.quarantine.filter(pl.col("scope") == "field")
    assert field.height == 1
    assert field["rule"][0].startswith("phone_")
    raw = json.loads(field["raw_values"][0])
    assert raw["phone"] == "••••-••••-••••-1111"
    assert VISA not in digits_of(field["raw_values"][0])


def test_raw_values_are_masked_and_cut_as_one_python_call_per_value_would() -> None:
    """The vectorised pass keeps only values that cannot change (ASCII, < 13 digits, short);
    every value gives what ``_cut(mask_pans(v))`` gives."""
    from data_quality.rules import _cut
    from tasks.pci import mask_pans

    values = [
        None,
        "",
        "plain ascii 123",
        "123456789012",  # 12 digits: kept
        "4111111111111112",  # 16 digits, not Luhn-valid: unchanged by mask_pans
        VISA,
        f"x{VISA}y",
        "\uff14\uff11\uff11\uff11" + "1111" * 3,  # full-width digits fold to a PAN
        "Müller \u0661\u0662",
        "\u2152" * 5,  # each folds to 1/10: 15 digits from 5 characters
        "a" * 1300,
        VISA + "b" * 1300,
        "\x07ctl\x1f 4111-1111-1111-1111",
    ]
    frame = pl.DataFrame({"s": values * 3}, schema={"s": pl.String})
    got = [None if j is None else json.loads(j)["s"] for j in frame.select(raw_json(["s"]))["s"]]
    want = [None if v is None else _cut(mask_pans(v), 1000) for v in values * 3]
    assert got == want
    assert got[5] != VISA
    assert got[7] != values[7]
    assert got[10].endswith("[cut, 1300 characters]")


def test_no_character_folds_to_more_digits_than_the_fast_path_assumes() -> None:
    from data_quality.rules import _FOLDED_DIGITS_MAX
    from tasks.pci import _fold_char

    most = max(
        sum("0" <= c <= "9" for c in _fold_char(chr(cp)))
        for cp in range(0x80, 0x110000)
        if not 0xD800 <= cp < 0xE000
    )
    assert most <= _FOLDED_DIGITS_MAX


ASCII_PIECES = st.sampled_from(
    ["0", "1", "4", "9", "1111", "4111", " ", "-", "--", "---", "/", ":", "T", "Z", "x", "_", "\n"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(ASCII_PIECES, max_size=40).map("".join), min_size=1, max_size=8))
def test_ascii_values_kept_without_python_are_those_mask_pans_leaves_alone(
    values: list[str],
) -> None:
    """The ASCII fast path (no 13-digit run: kept as is) gives what a Python call gives."""
    from data_quality.rules import _cut
    from tasks.pci import mask_pans

    values = [
        *values,
        "2026-11-20T12:34:56Z",  # 14 digits, split by the T: kept without Python
        "+1 415 555 0123 x1234",
        "4111--1111--1111--1111",  # two separators between digits: still one run, masked
        "4111---1111---1111---1111",  # three: no run of 13
        "4111_1111_1111_1111",
    ]
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    got = [json.loads(j)["s"] for j in frame.select(raw_json(["s"]))["s"]]
    assert got == [_cut(mask_pans(v), 1000) for v in values]
    assert got[-3] != values[-3]
    assert got[-1] != values[-1]
