"""The carrier's side of SMS billing: how many segments a message body is split into.

The sandbox bills segments on its own, the way a carrier counts them, so that the product's
count (``tasks/sms.py``) can be reconciled against it instead of against itself.  Written from
3GPP TS 23.038 (GSM 03.38) section 6.2.1 (default alphabet and its extension table) and TS
23.040 (concatenation header), with the billing rules of the carrier notes
(``carriers-and-compliance.md`` section 3):

* GSM 7-bit default alphabet: every character of the message is in the default table (one
  septet) or the extension table (escape 0x1B + code: two septets).  Otherwise the whole
  message is sent in UCS-2, counted in UTF-16 code units (a character outside the BMP is a
  surrogate pair: two units).
* One SMS carries 140 octets: 160 septets or 70 UCS-2 units.  A longer message is
  concatenated: every part loses 6 octets to the user data header, leaving 153 septets or 67
  units.
* A part boundary never falls between an escape and its code, nor between the two halves of a
  surrogate pair: such a character moves whole to the next part.
* The empty body has no parts: carriers refuse it (Twilio 21602), so nothing is billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CarrierSegments", "carrier_segments"]

# 3GPP TS 23.038 6.2.1, default alphabet, positions 0x00..0x7F (0x1B is the escape to the
# extension table and is not a character of its own).
_DEFAULT_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 6.2.1.1, extension table: 0x0A form feed, 0x14 ^, 0x28 {, 0x29 }, 0x2F \,
# 0x3C [, 0x3D ~, 0x3E ], 0x40 |, 0x65 €.
_EXTENSION_TABLE = "\f^{}\\[~]|€"

SEPTETS_SINGLE, SEPTETS_PART = 160, 153
UNITS_SINGLE, UNITS_PART = 70, 67

_ONE_SEPTET = frozenset(_DEFAULT_TABLE) - {"\x1b"}
_TWO_SEPTETS = frozenset(_EXTENSION_TABLE)

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class CarrierSegments:
    """A body as the carrier bills it: encoding, total units, and the units of each part."""

    encoding: Encoding
    units: int
    parts: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


def _cost(char: str, gsm: bool) -> int:
    if gsm:
        return 2 if char in _TWO_SEPTETS else 1
    return 2 if ord(char) > 0xFFFF else 1


def carrier_segments(body: str) -> CarrierSegments:
    """How a carrier splits ``body``: GSM-7 if every character has a septet code, else UCS-2."""
    gsm = all(c in _ONE_SEPTET or c in _TWO_SEPTETS for c in body)
    costs = [_cost(c, gsm) for c in body]
    units = sum(costs)
    single, per_part = (SEPTETS_SINGLE, SEPTETS_PART) if gsm else (UNITS_SINGLE, UNITS_PART)
    encoding: Encoding = "GSM-7" if gsm else "UCS-2"
    if not body:
        return CarrierSegments(encoding, 0, ())
    if units <= single:
        return CarrierSegments(encoding, units, (units,))
    parts: list[int] = []
    filled = 0
    for cost in costs:
        if filled + cost > per_part:
            parts.append(filled)
            filled = 0
        filled += cost
    parts.append(filled)
    return CarrierSegments(encoding, units, tuple(parts))
