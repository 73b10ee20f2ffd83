from __future__ import annotations

import logging
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import masking
from tasks.masking import MaskingFilter, mask_phone, mask_text
from tasks.pci import find_pans


def digits_of(text: str) -> str:
    return "".join(
        str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None
    )


VISA = "4111111111111111"


def test_pan_is_masked_before_phones_so_the_phone_pattern_cannot_split_it() -> None:
    text = "card 411 111 1111 111111 on file"  # VISA in 3-3-4-6 groups
    assert digits_of(text) == VISA
    # The premise: the NANP phone pattern matches the first 10 digits of this card number.
    # Run alone, it leaves six digits plus its own four in clear, too few for the PAN guard.
    phone_first = masking._PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    assert len(digits_of(phone_first)) > 4
    assert find_pans(phone_first) == []
    # mask_text masks the PAN first: only its last four digits remain.
    masked = mask_text(text)
    assert digits_of(masked) == VISA[-4:]
    assert masked.startswith("card ")
    assert masked.endswith(" on file")


def test_pan_phone_and_email_in_one_line_are_all_masked() -> None:
    text = "card 4111-1111-1111-1111 for +14165550123 ana.silva@example.com"
    masked = mask_text(text)
    assert "4111" not in masked
    assert "4165550123" not in masked
    assert "ana.silva" not in masked
    assert "1111" in masked  # the PAN's last four stay, as on a receipt
    assert masked.count("•") > 12


def test_disguised_pan_is_masked() -> None:
    arabic_1111 = "\u0661" * 4
    text = f"paid with \u0664\u0661\u0661\u0661\u200b {arabic_1111}\u2013{arabic_1111} 1111 ok"
    masked = mask_text(text)
    assert find_pans(masked) == []
    assert digits_of(masked) == "1111"


def test_luhn_valid_international_phone_keeps_at_most_four_digits() -> None:
    text = "tel +86 1380013 8002 done"
    assert find_pans(text) == ["8613800138002"]
    masked = mask_text(text)
    assert len(digits_of(masked)) <= 4


def test_text_without_pan_is_masked_as_before() -> None:
    text = "run 2026-11-23T06:00:00+00:00 planned 1000000 messages to +14165550123"
    assert mask_text(text) == (
        "run 2026-11-23T06:00:00+00:00 planned 1000000 messages to +1•••••••123"
    )


def test_space_separated_timestamp_is_masked_when_it_forms_a_luhn_valid_window() -> None:
    # Fail closed: "2026-11-23 06:00:00" is one 14-digit run for the PAN guard, and
    # 20261123060000 passes Luhn, so the log line shows it masked. isoformat() (with "T")
    # and a date alone are not affected (see test_settings and the test above).
    assert mask_text("at 2026-11-23 06:00:00 ok") == "at ••••-••-•• ••:00:00 ok"


def test_logging_filter_masks_pans_in_formatted_arguments() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "body %s", (f"pan {VISA}",), None)
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "body pan ••••••••••••1111"


pans = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)


def _complete(body: str) -> str:
    for d in "0123456789":
        digits = [int(c) for c in (body + d)[::-1]]
        total = sum(
            v if i % 2 == 0 else (2 * v - 9 if v > 4 else 2 * v) for i, v in enumerate(digits)
        )
        if total % 10 == 0:
            return body + d
    raise AssertionError


@settings(max_examples=200, deadline=None)
@given(
    pans.map(_complete),
    st.lists(st.sampled_from(["", " ", "-", ".", " -", "  ", "\u00a0"]), min_size=18, max_size=18),
    st.from_regex(r"\+1[2-9][0-9]{2}555[0-9]{4}", fullmatch=True),
)
def test_no_pan_survives_mask_text(pan: str, seps: list[str], phone: str) -> None:
    grouped = pan[0] + "".join(s + d for s, d in zip(seps, pan[1:], strict=False))
    masked = mask_text(f"call {phone} about card {grouped} today")
    assert find_pans(masked) == []
    masked_phone, _, masked_card = masked.partition(" about card ")
    assert digits_of(masked_card) == pan[-4:]
    assert phone[2:] not in masked_phone
