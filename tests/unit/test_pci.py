from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.pci import contains_pan, find_pans, luhn_valid, mask_pan


def reference_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(digits[::-1]):
        doubled = int(char) * (2 if index % 2 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if reference_luhn(body + d))


def group(digits: str, seps: list[str]) -> str:
    return digits[0] + "".join(sep + d for sep, d in zip(seps, digits[1:], strict=False))


luhn_pans = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n).map(with_check_digit)
)
separators = st.lists(st.sampled_from(["", "", "", " ", "-"]), min_size=18, max_size=18)
no_digit_text = st.text(
    alphabet=st.characters(exclude_categories=("Nd", "Cs")),
    max_size=40,
)
run_breakers = st.one_of(
    st.sampled_from(["  ", "--", " - ", "/", ".", ", ", ")", " (", "+"]),
    st.tuples(
        st.sampled_from(["", " ", "-"]),
        st.text(alphabet="abcxyzABC.:;/()+", min_size=1, max_size=5),
        st.sampled_from(["", " ", "-"]),
    ).map("".join),
)
short_runs = st.tuples(
    st.text(alphabet="0123456789", min_size=1, max_size=12),
    st.lists(st.sampled_from(["", " ", "-"]), min_size=11, max_size=11),
).map(lambda t: group(*t))


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("1234567812345670", True),
        ("378282246310005", True),
        ("4222222222222", True),
        ("4111111111111111110", True),
        ("79927398713", True),
        ("79927398710", False),
        ("", False),
        ("4111 1111 1111 1111", False),
        ("4111-1111-1111-1111", False),
        ("\u0664\u0661\u0661\u0661", False),
        ("+4111111111111111", False),
    ],
    ids=[
        "reference-visa-sum-30",
        "reference-visa-sum-31",
        "reference-invoice-like",
        "amex-15",
        "visa-13",
        "19-digits",
        "wikipedia-example",
        "wikipedia-example-bad-check-digit",
        "empty",
        "spaces-not-stripped",
        "hyphens-not-stripped",
        "arabic-indic-digits",
        "leading-plus",
    ],
)
def test_luhn_valid(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_matches_reference_implementation(digits: str) -> None:
    assert luhn_valid(digits) is reference_luhn(digits)


@given(st.text(alphabet="0123456789", min_size=1, max_size=25), st.integers(0, 9))
def test_exactly_one_check_digit_is_valid(body: str, check: int) -> None:
    valid = with_check_digit(body)
    assert luhn_valid(valid)
    assert luhn_valid(body + str(check)) is (body + str(check) == valid)


@pytest.mark.parametrize(
    ("text", "pans"),
    [
        ("Card 4111111111111111 on file", ["4111111111111111"]),
        ("Card 4111 1111 1111 1111 on file", ["4111111111111111"]),
        ("Card 4111-1111-1111-1111 on file", ["4111111111111111"]),
        ("card:4111 1111-1111 1111.", ["4111111111111111"]),
        ("x4111111111111111y", ["4111111111111111"]),
        ("Amex 3782 822463 10005", ["378282246310005"]),
        ("old visa 4222222222222", ["4222222222222"]),
        ("19: 4111111111111111110", ["4111111111111111110"]),
        ("ref 1234567812345670", ["1234567812345670"]),
        ("a 5555555555554444 b 4111111111111111", ["5555555555554444", "4111111111111111"]),
        ("tel +86 1380013 8002", ["8613800138002"]),
    ],
    ids=[
        "plain-16",
        "space-groups",
        "hyphen-groups",
        "mixed-separators-and-punctuation",
        "letters-around",
        "amex-4-6-5",
        "visa-13",
        "19-digits",
        "no-brand-prefix-required",
        "two-pans-in-order",
        "luhn-valid-international-phone-is-flagged",
    ],
)
def test_find_pans_flags(text: str, pans: list[str]) -> None:
    assert find_pans(text) == pans
    assert contains_pan(text)


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111111111111112 on file",
        "Card 4111 1111 1111 1112 on file",
        "12 digits 411111111117",
        "20 digits 41111111111111110000",
        "PAN then CVV 4111 1111 1111 1111 1234",
        "14111111111111111",
        "41111111111111110",
        "split by double space 4111 1111  1111 1111",
        "split by double hyphen 4111-1111--1111-1111",
        "split by slash 4111/1111/1111/1111",
        "split by dot 4111.1111.1111.1111",
        "nbsp is not a separator 4111\u00a01111\u00a01111\u00a01111",
        "Call +1 (416) 555-0123 before 2024-05-12",
        "Call +1 416 555 0123",
        "Call +1-416-555-0123",
        "Call 14165550123 ext. 4567",
        "Amount $1,234,567,890,123.45",
        "",
    ],
    ids=[
        "luhn-invalid",
        "luhn-invalid-grouped",
        "too-short-12",
        "too-long-20",
        "maximal-run-over-19-digits-not-windowed",
        "extra-leading-digit-breaks-luhn",
        "extra-trailing-digit-breaks-luhn",
        "double-space",
        "double-hyphen",
        "slash",
        "dot",
        "nbsp",
        "nanp-phone-with-parens-and-date",
        "nanp-phone-spaces",
        "nanp-phone-hyphens",
        "nanp-phone-digits-and-extension",
        "amount-with-commas",
        "empty",
    ],
)
def test_find_pans_ignores(text: str) -> None:
    assert find_pans(text) == []
    assert not contains_pan(text)


@given(luhn_pans, separators, no_digit_text, no_digit_text)
def test_embedded_luhn_valid_number_is_found(
    pan: str, seps: list[str], before: str, after: str
) -> None:
    grouped = group(pan, seps)
    text = f"{before} {grouped} {after}"
    assert find_pans(text) == [pan]
    assert contains_pan(text)


@given(st.lists(st.tuples(short_runs, run_breakers), max_size=10), no_digit_text)
def test_text_without_13_digit_run_is_never_flagged(
    chunks: list[tuple[str, str]], tail: str
) -> None:
    text = "".join(run + breaker for run, breaker in chunks) + tail
    assert find_pans(text) == []
    assert not contains_pan(text)


@given(luhn_pans, st.lists(st.tuples(short_runs, run_breakers), max_size=5))
def test_pan_is_found_among_short_runs(pan: str, chunks: list[tuple[str, str]]) -> None:
    noise = "".join(run + breaker for run, breaker in chunks)
    text = f"{noise} / {pan} / {noise}"
    assert find_pans(text) == [pan]


@pytest.mark.parametrize(
    ("pan", "masked"),
    [
        ("4111111111111111", "•••• 1111"),
        ("4111 1111 1111 1234", "•••• 1234"),
        ("3782-822463-10005", "•••• 0005"),
        ("411111111117", "•••• 1117"),
        ("4111111111111111110", "•••• 1110"),
    ],
    ids=["plain", "spaces", "hyphens", "12-digits", "19-digits"],
)
def test_mask_pan_keeps_last_four_only(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


@pytest.mark.parametrize(
    "pan",
    [
        "",
        "1111",
        "41111111111",
        "41111111111111111111",
        "4111x1111111111111",
        "4111.1111.1111.1111",
    ],
    ids=["empty", "four-digits", "11-digits", "20-digits", "letter", "dots"],
)
def test_mask_pan_rejects_non_pans(pan: str) -> None:
    with pytest.raises(ValueError, match="12-19 digits"):
        mask_pan(pan)


@given(luhn_pans, separators)
def test_masked_pan_reveals_only_last_four(pan: str, seps: list[str]) -> None:
    masked = mask_pan(group(pan, seps))
    assert masked == "•••• " + pan[-4:]
    assert not contains_pan(masked)
