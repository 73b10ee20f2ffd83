from __future__ import annotations

import base64
import random
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.pci import contains_pan, find_pans, luhn_valid, mask_pan, mask_pans
from tasks.render import load_templates, render_messages
from tasks.settings import RenderSettings


def reference_luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(digits[::-1]):
        doubled = int(char) * (2 if index % 2 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def reference_hits(digits: str) -> list[str]:
    """Brute force: every Luhn-valid 13-19 window not inside a longer valid one, by start."""
    valid = [
        (i, j)
        for i in range(len(digits))
        for j in range(i + 13, min(i + 19, len(digits)) + 1)
        if reference_luhn(digits[i:j])
    ]
    maximal = [
        (i, j)
        for i, j in valid
        if not any(a <= i and j <= b and (a, b) != (i, j) for a, b in valid)
    ]
    return [digits[i:j] for i, j in sorted(maximal)]


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if reference_luhn(body + d))


def group(digits: str, seps: list[str]) -> str:
    return digits[0] + "".join(sep + d for sep, d in zip(seps, digits[1:], strict=False))


def in_script(digits: str, zero: int) -> str:
    return "".join(chr(zero + int(d)) for d in digits)


def ascii_digits(text: str) -> str:
    """Digits of ``text`` in any script, as ASCII (independent of the module under test)."""
    import unicodedata

    return "".join(
        str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None
    )


VISA = "4111111111111111"
VISA_13 = "4222222222222"
AMEX = "378282246310005"
MASTERCARD = "5555555555554444"
MAESTRO_16 = "6759649826438453"
MAESTRO_19 = with_check_digit("501800000000000000")
assert all(map(reference_luhn, (VISA, VISA_13, AMEX, MASTERCARD, MAESTRO_16, MAESTRO_19)))

SCRIPT_ZEROS = {
    "ascii": 0x30,
    "full-width": 0xFF10,
    "arabic-indic": 0x0660,
    "extended-arabic-indic": 0x06F0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
    "math-bold": 0x1D7CE,
    "math-monospace": 0x1D7F6,
}
SEPARATORS = [
    " ",
    "\u00a0",
    "\u2009",
    "\u202f",
    "\u2007",
    ".",
    ",",
    "-",
    "\u2013",
    "\u2014",
    "\u2212",
    "/",
    "_",
    "(",
    ")",
    "\n",
    "*",
    "#",
    "'",
]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e"]


def grouped(pan: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(pan[at : at + size])
        at += size
    return sep.join(parts)


# ---------------------------------------------------------------------------- luhn_valid


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


# ---------------------------------------------------------------------------- disguise matrix

DISGUISES: dict[str, tuple[str, str]] = {
    "plain": (f"Card {VISA} on file", VISA),
    "spaces": (f"Card {grouped(VISA, (4, 4, 4, 4), ' ')} on file", VISA),
    "dashes": (f"Card {grouped(VISA, (4, 4, 4, 4), '-')} on file", VISA),
    "dots": (f"Card {grouped(VISA, (4, 4, 4, 4), '.')}.", VISA),
    "slashes": (f"Card {grouped(VISA, (4, 4, 4, 4), '/')}", VISA),
    "underscores": (f"Card {grouped(VISA, (4, 4, 4, 4), '_')}", VISA),
    "nbsp": (f"Card {grouped(VISA, (4, 4, 4, 4), chr(0xA0))}", VISA),
    "thin-space": (f"Card {grouped(VISA, (4, 4, 4, 4), chr(0x2009))}", VISA),
    "narrow-nbsp": (f"Card {grouped(VISA, (4, 4, 4, 4), chr(0x202F))}", VISA),
    "en-dash": (f"Card {grouped(VISA, (4, 4, 4, 4), chr(0x2013))}", VISA),
    "minus-sign": (f"Card {grouped(VISA, (4, 4, 4, 4), chr(0x2212))}", VISA),
    "two-separators": ("Card 4111 -1111  1111. 1111", VISA),
    "parentheses": ("Card (4111)(1111)(1111)(1111)", VISA),
    "line-breaks": ("Card 4111\n1111\r\n1111\n1111", VISA),
    "ellipsis": ("Card 4111\u20261111\u20261111\u20261111", VISA),
    "full-width": (f"Card {in_script(VISA, 0xFF10)}", VISA),
    "arabic-indic": (f"Card {in_script(VISA, 0x0660)}", VISA),
    "extended-arabic-indic": (f"Card {in_script(VISA, 0x06F0)}", VISA),
    "devanagari": (f"Card {in_script(VISA, 0x0966)}", VISA),
    "bengali": (f"Card {in_script(VISA, 0x09E6)}", VISA),
    "math-bold": (f"Card {in_script(VISA, 0x1D7CE)}", VISA),
    "math-monospace": (f"Card {in_script(VISA, 0x1D7F6)}", VISA),
    "mixed-scripts": (
        f"Card {in_script('4111', 0x0966)} {in_script('1111', 0xFF10)} "
        f"1111 {in_script('1111', 0x0660)}",
        VISA,
    ),
    "superscript-and-circled": (
        "Card \u2074\u00b9\u00b9\u00b9 \u2460\u2460\u2460\u2460 1111 \u2776\u2776\u2776\u2776",
        VISA,
    ),
    "zero-width-inside": ("Card 4\u200b1\u200c1\u200d1\u20601\ufeff111\u00ad1111\u200e1111", VISA),
    "zero-width-and-two-separators": ("Card 4111\u200b \u200b-\u200b1111  1111\u00ad--1111", VISA),
    "keycap-emoji": ("Card " + "".join(d + "\ufe0f\u20e3" for d in VISA), VISA),
    "letters-around": (f"x{VISA}y", VISA),
    "pan-plus-expiry": (f"Card {grouped(VISA, (4, 4, 4, 4), ' ')} 12/28", VISA),
    "pan-plus-cvv": (f"Card {grouped(VISA, (4, 4, 4, 4), ' ')} 123", VISA),
    "pan-plus-expiry-and-cvv": (f"{grouped(VISA, (4, 4, 4, 4), ' ')} 12/28 123", VISA),
    "digits-before-pan": (f"ref 98 {grouped(VISA, (4, 4, 4, 4), ' ')}", VISA),
    "digits-glued-before-and-after": (f"ref 7{VISA}0", VISA),
    "visa-13": (f"old visa {VISA_13}", VISA_13),
    "amex-15": (f"Amex {grouped(AMEX, (4, 6, 5), ' ')}", AMEX),
    "mastercard-16": (f"MC {grouped(MASTERCARD, (4, 4, 4, 4), '-')}", MASTERCARD),
    "maestro-16": (f"Maestro {MAESTRO_16}", MAESTRO_16),
    "maestro-19": (f"Maestro {grouped(MAESTRO_19, (4, 4, 4, 4, 3), ' ')}", MAESTRO_19),
    "no-brand-prefix-required": ("ref 1234567812345670", "1234567812345670"),
    # Luhn-invalid as 16 digits, but its last 13 digits form a Luhn-valid window.
    "luhn-valid-13-window-of-invalid-16": ("Card 4111 1111 1111 1112", "1111111111112"),
    "luhn-valid-international-phone": ("tel +86 1380013 8002", "8613800138002"),
}


@pytest.mark.parametrize(("text", "pan"), DISGUISES.values(), ids=DISGUISES.keys())
def test_disguised_pan_is_blocked(text: str, pan: str) -> None:
    assert contains_pan(text)
    hits = find_pans(text)
    assert any(pan in hit for hit in hits), hits
    # The reported windows are exactly what a brute force over the text's digit runs gives.
    expected = [hit for run in _runs_by_hand(text) for hit in reference_hits(run)]
    assert hits == expected


def _runs_by_hand(text: str) -> list[str]:
    """Digit runs per the contract, by a plain character walk (independent of the regex)."""
    import unicodedata

    runs, current, gap = [], "", 0
    for char in text:
        if unicodedata.category(char) in ("Cf", "Mn", "Me"):
            continue
        value = unicodedata.digit(char, None)
        if value is not None:
            current, gap = current + str(value), 0
            continue
        gap += 1
        if char.isalnum() or gap > 2:
            runs.append(current)
            current = ""
    runs.append(current)
    return [r for r in runs if r]


@pytest.mark.parametrize(("text", "pan"), DISGUISES.values(), ids=DISGUISES.keys())
def test_masked_disguised_pan_is_no_longer_a_pan(text: str, pan: str) -> None:
    masked = mask_pans(text)
    assert len(masked) == len(text)
    assert find_pans(masked) == []
    assert pan not in ascii_digits(masked)
    assert len(ascii_digits(masked)) <= len(ascii_digits(text)) - (len(pan) - 4)


# ---------------------------------------------------------------------------- negatives

NEGATIVES = {
    "luhn-invalid-every-window": "Card 4111111111111113 on file",
    "luhn-invalid-every-window-grouped": "Card 4111 1111 1111 1117 on file",
    "too-short-12": "12 digits 411111111117",
    "three-separators-end-a-run": "4111 1111   1111 1111",
    "letter-ends-a-run": "4111 1111 x 1111 1111",
    "nanp-phone-e164": "Call +18005550100 today",
    "nanp-phone-spaces": "Questions? Call us at +1 800 555 0100.",
    "nanp-phone-parens-and-date": "Call +1 (416) 555-0123 before 2024-05-12",
    "nanp-phone-hyphens": "Call +1-416-555-0123",
    "nanp-phone-extension": "Call 14165550123 ext. 4567",
    "amount-usd": "$1,234.56 is due",
    "amount-eur-de": "1.234,56\u00a0€ is due",
    "amount-inr": "₹1,23,456.78 is due",
    "amount-jpy": "￥123,456 is due",
    "amount-idr": "Rp\u00a012.345.678,00 is due",
    "amounts-two-currencies": "$1,234.56 + CA$99.00 is due",
    "date-us": "was due on 11/23/2026.",
    "date-iso": "due 2026-11-23",
    "invoice-numbers": "invoices INV-000123, INV-000124 and INV-000125",
    "empty": "",
}


@pytest.mark.parametrize("text", NEGATIVES.values(), ids=NEGATIVES.keys())
def test_ordinary_reminder_text_is_not_blocked(text: str) -> None:
    assert all(reference_hits(run) == [] for run in _runs_by_hand(text))
    assert find_pans(text) == []
    assert not contains_pan(text)
    assert mask_pans(text) == text


TEMPLATES = load_templates()
REALISTIC = [
    ("Ana", "en_US", ["USD"], [123456]),
    ("José", "es_MX", ["MXN"], [9876543]),
    ("Zoë", "fr_FR", ["EUR"], [123456789]),
    ("राम", "hi_IN", ["INR"], [12345678]),
    ("محمد", "ar_EG", ["EGP"], [45678901]),
    ("王芳", "zh_CN", ["CNY"], [99999999]),
    ("Jürgen", "de_DE", ["EUR", "USD"], [99999, 1234567]),
    ("Ngozi", "en_NG", ["NGN"], [987654321]),
    ("Siti", "id_ID", ["IDR"], [1234567890]),
    ("Yuki", "ja_JP", ["JPY"], [1234567]),
]


@pytest.mark.parametrize("channel", ["sms", "email"])
@pytest.mark.parametrize("step", [-7, 0, 3])
@pytest.mark.parametrize(("name", "locale", "currencies", "amounts"), REALISTIC)
def test_bundled_templates_are_not_blocked_by_their_own_content(
    channel: str, step: int, name: str, locale: str, currencies: list[str], amounts: list[int]
) -> None:
    rng = random.Random(f"{name}{channel}{step}")
    frame = pl.DataFrame(
        [
            {
                "message_key": f"k{i}",
                "channel": channel,
                "cadence_step": step,
                "due_date": date(2026, rng.randint(1, 12), rng.randint(1, 28)),
                "invoice_count": rng.randint(1, 12),
                "first_name": name,
                "full_name": name,
                "locale": locale,
                "currencies": currencies,
                "amounts_minor": amounts,
            }
            for i in range(20)
        ]
    )
    tokens = iter(
        base64.urlsafe_b64encode(rng.randbytes(16)).decode().rstrip("=") for _ in range(20)
    )
    render = RenderSettings()
    out = render_messages(
        frame, templates=TEMPLATES, settings=render, new_token=lambda: next(tokens)
    )
    if channel == "email" or step > 0:
        assert all(render.support_phone in body for body in out["body"])
    for body, subject in zip(out["body"], out["subject"], strict=True):
        assert find_pans(body) == [], body
        assert find_pans(subject or "") == []
    assert set(out["render_status"]) <= {"ok", "sms_too_long"}


def test_pan_in_customer_name_blocks_the_rendered_message() -> None:
    frame = pl.DataFrame(
        [
            {
                "message_key": "k",
                "channel": "sms",
                "cadence_step": -1,
                "due_date": date(2026, 11, 24),
                "invoice_count": 1,
                "first_name": f"Ana {in_script(VISA, 0x0966)}",
                "full_name": None,
                "locale": "en_US",
                "currencies": ["USD"],
                "amounts_minor": [1000],
            }
        ]
    )
    out = render_messages(frame, templates=TEMPLATES, settings=RenderSettings())
    assert out["render_status"].to_list() == ["pci_pan"]


# ---------------------------------------------------------------------------- properties

luhn_pans = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n).map(with_check_digit)
)
gap = st.lists(st.sampled_from(SEPARATORS), min_size=0, max_size=2).map("".join)
invisible = st.lists(st.sampled_from(INVISIBLE), max_size=2).map("".join)
script = st.sampled_from(sorted(SCRIPT_ZEROS.values()))
names = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Lo"), exclude_characters="_"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(luhn_pans, st.data(), names, names)
def test_hidden_pan_is_always_found(pan: str, data: st.DataObject, before: str, after: str) -> None:
    digits = [in_script(d, data.draw(script)) for d in pan]
    gaps = [data.draw(gap) + data.draw(invisible) for _ in pan[1:]]
    hidden = digits[0] + "".join(g + d for g, d in zip(gaps, digits[1:], strict=True))
    text = f"{before} {hidden} {after}"
    assert contains_pan(text)
    assert find_pans(text) == [pan]
    masked = mask_pans(text)
    assert find_pans(masked) == []
    assert ascii_digits(masked) == pan[-4:]


@given(st.text(alphabet="0123456789", max_size=45))
def test_windows_match_a_brute_force(digits: str) -> None:
    assert find_pans(digits) == reference_hits(digits)


short_runs = st.tuples(
    st.lists(script, min_size=1, max_size=12),
    st.lists(gap, min_size=11, max_size=11),
).map(lambda t: group("".join(in_script(str(i % 10), z) for i, z in enumerate(t[0])), t[1]))
run_breakers = st.one_of(
    st.tuples(gap, names, gap).map("".join),
    st.lists(st.sampled_from(SEPARATORS), min_size=3, max_size=5).map("".join),
)


@given(st.lists(st.tuples(short_runs, run_breakers), max_size=10))
def test_runs_under_13_digits_are_never_flagged(chunks: list[tuple[str, str]]) -> None:
    text = "".join(run + breaker for run, breaker in chunks)
    assert find_pans(text) == []
    assert mask_pans(text) == text


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_find_and_mask_never_crash(text: str) -> None:
    hits = find_pans(text)
    assert all(h.isascii() and h.isdigit() and 13 <= len(h) <= 19 for h in hits)
    masked = mask_pans(text)
    assert len(masked) == len(text)
    assert find_pans(masked) == []


# ---------------------------------------------------------------------------- mask_pan


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


def test_mask_pans_keeps_separators_and_last_four() -> None:
    assert mask_pans("card 4111 1111 1111 1111 exp 12/28") == "card •••• •••• •••• 1111 exp 12/28"
    assert mask_pans("a 5555-5555-5555-4444 b") == "a ••••-••••-••••-4444 b"
