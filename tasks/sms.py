"""Exact SMS encoding and segmentation, counted the way carriers bill.

Contract
--------
* A message is GSM-7 if every character is in the GSM 03.38 basic table or its extension
  table; one character outside both makes the *whole* message UCS-2.
* GSM-7 units are septets: basic characters cost 1, extension characters (``^ { } \\ [ ~ ] | €``
  and form feed) cost 2 because they are sent as ESC + code.  UCS-2 units are UTF-16 code units:
  1 per BMP character, 2 per character outside the BMP (a surrogate pair).
* A message that fits in one SMS may use 160 septets / 70 units.  Otherwise every part carries a
  6-octet concatenation header and holds at most 153 septets / 67 units.
* Parts are filled greedily in order and a boundary never splits an ESC pair or a surrogate
  pair, so the count can exceed ``ceil(units / 153)`` (or ``/ 67``).  Splitting is by code
  point: grapheme clusters (e.g. an emoji with a skin-tone modifier) may be split across parts.
* The empty string has 0 units and 0 segments (``segments == ()``): nothing is sent or billed.

Source of the rules: Twilio's reference calculator
``TwilioDevEd/message-segment-calculator`` (``SegmentedMessage.ts``, ``Segment.ts``,
``UnicodeToGSM.ts``), summarised with worked examples in
the team's reference notes ``shared/reference/carriers-and-compliance.md`` section 3
(3GPP TS 23.038 / 23.040).
Twilio's Smart Encoding (look-alike substitution) is not applied.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "SmsSegments",
    "count_segments",
    "encoding_of",
    "segment",
]

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: frozenset[str] = frozenset("^{}\\[~]|€\f")

_SINGLE_GSM7 = 160
_SINGLE_UCS2 = 70
_MULTI_GSM7 = 153
_MULTI_UCS2 = 67

# Typical reminders are all-basic, so one C-level scan that finds nothing decides the encoding
# and the unit count without any per-character Python work.
_NOT_BASIC = re.compile("[^" + "".join(sorted(re.escape(c) for c in GSM7_BASIC)) + "]")
_EXTENSION = re.compile("[" + "".join(sorted(re.escape(c) for c in GSM7_EXTENSION)) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class SmsSegments:
    """Billing view of one message.

    ``units`` is the message total in septets (GSM-7) or UTF-16 code units (UCS-2), excluding
    concatenation headers.  ``segments`` are the parts as sent, in order; ``"".join(segments)``
    is the original text.
    """

    encoding: Encoding
    units: int
    segments: tuple[str, ...]

    @property
    def count(self) -> int:
        """Number of billed SMS parts."""
        return len(self.segments)


def _classify(text: str) -> tuple[Encoding, int]:
    odd = _NOT_BASIC.findall(text)
    if not odd:
        return "GSM-7", len(text)
    if GSM7_EXTENSION.issuperset(odd):
        return "GSM-7", len(text) + len(odd)
    return "UCS-2", len(text) + sum(1 for c in odd if c > "\uffff")


def encoding_of(text: str) -> Encoding:
    """``"GSM-7"`` if every character is GSM-7 encodable (basic or extension), else ``"UCS-2"``."""
    return _classify(text)[0]


def _split(text: str, limit: int, double_width: re.Pattern[str]) -> tuple[str, ...]:
    n = len(text)
    wide = [m.start() for m in double_width.finditer(text)]
    if not wide:
        return tuple(text[i : i + limit] for i in range(0, n, limit))
    parts: list[str] = []
    start = 0
    while start < n:
        end = min(start + limit, n)
        lo = bisect_left(wide, start)
        # Cost of text[start:end] is its length plus one per double-width character in it.
        # Each character costs 1 or 2, so dropping ceil(excess / 2) characters can never cut
        # below the longest prefix that fits: the loop lands exactly on the greedy part.
        while (excess := end - start + bisect_left(wide, end, lo) - lo - limit) > 0:
            end -= (excess + 1) // 2
        parts.append(text[start:end])
        start = end
    return tuple(parts)


def segment(text: str) -> SmsSegments:
    """Encode ``text`` and split it into billed SMS parts (see the module docstring)."""
    if not text:
        return SmsSegments("GSM-7", 0, ())
    encoding, units = _classify(text)
    if encoding == "GSM-7":
        single, multi, wide = _SINGLE_GSM7, _MULTI_GSM7, _EXTENSION
    else:
        single, multi, wide = _SINGLE_UCS2, _MULTI_UCS2, _ASTRAL
    if units <= single:
        return SmsSegments(encoding, units, (text,))
    return SmsSegments(encoding, units, _split(text, multi, wide))


def count_segments(text: str) -> int:
    """Number of billed SMS parts for ``text`` (0 for the empty string)."""
    return segment(text).count
