"""PCI guard: find primary account numbers (card PANs) in rendered message text.

Contract
--------
* A *digit run* is a maximal sequence of ASCII digits in which consecutive digits are either
  adjacent or separated by exactly one space or one hyphen (``4111 1111 1111 1111``,
  ``4111-1111-1111-1111``).  Any other character, or two separators in a row, ends the run.
* A run is a PAN candidate iff it has 13–19 digits; it is reported (separators stripped) iff it
  passes the Luhn check.  No brand-prefix test is applied: the product rule is "any Luhn-valid
  13–19 digit run blocks the message", deliberately more conservative than the brand+length
  filter in the reference (which cuts the ~1-in-10 Luhn false-positive rate).
* Only maximal runs are considered.  A run longer than 19 digits is not reported even if a
  13–19 digit window inside it would pass Luhn (e.g. a PAN directly followed by `` 123``).
* NANP phone numbers (``+1 (416) 555-0123``, ``+1 416 555 0123``) are never reported: their
  runs have at most 11 digits.  International numbers written as one run with the country code
  can reach 13–15 digits (``+86 138 0013 8000``) and are reported when Luhn-valid; the guard
  does not try to recognise phone numbers, in line with the conservative product rule.

Source of the rules: PCI DSS v4.0.1 Req. 4.2.2 (no PAN over end-user messaging) and Req. 3.4.1
(masked display), the Luhn algorithm and the free-text detection recipe in
``/work/shared/reference/carriers-and-compliance.md`` section 7.
"""

from __future__ import annotations

import re

__all__ = ["contains_pan", "find_pans", "luhn_valid", "mask_pan"]

_MIN_DIGITS = 13
_MAX_DIGITS = 19
_PAN_LENGTHS = range(12, 20)

_RUN = re.compile(r"[0-9](?:[ -]?[0-9])*")
_SEPARATORS = str.maketrans("", "", " -")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check; ``False`` unless ``digits`` is a non-empty string of ASCII digits."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += _DOUBLED[value] if position & 1 else value
    return total % 10 == 0


def find_pans(text: str) -> list[str]:
    """Luhn-valid 13–19 digit runs in ``text``, separators stripped, in order of appearance."""
    pans: list[str] = []
    for match in _RUN.finditer(text):
        digits = match.group().translate(_SEPARATORS)
        if _MIN_DIGITS <= len(digits) <= _MAX_DIGITS and luhn_valid(digits):
            pans.append(digits)
    return pans


def contains_pan(text: str) -> bool:
    """``True`` if :func:`find_pans` would report anything, i.e. the message must be blocked."""
    return bool(find_pans(text))


def mask_pan(pan: str) -> str:
    """Mask a PAN for display, keeping only the last four digits: ``"•••• 1111"``.

    Spaces and hyphens in ``pan`` are ignored.  Raises ``ValueError`` unless what remains is
    12–19 ASCII digits (ISO/IEC 7812 PAN lengths), so a short value is never mostly revealed.
    """
    digits = pan.translate(_SEPARATORS)
    if not (digits.isascii() and digits.isdigit() and len(digits) in _PAN_LENGTHS):
        raise ValueError("mask_pan expects 12-19 digits, optionally separated by spaces/hyphens")
    return f"•••• {digits[-4:]}"
