"""PCI guard: find primary account numbers (card PANs) in rendered message text, and mask them.

Contract
--------
1. *Normalisation.* Each character of the text is folded on its own (so positions can be
   mapped back for masking):

   * format characters and combining marks (categories ``Cf``, ``Mn``, ``Me``: zero-width
     space/joiners U+200B-U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD, bidi
     marks, variation selectors, the keycap mark U+20E3 ...) are removed;
   * every character with a Unicode decimal or digit value (every ``Nd`` digit of every
     script: full-width, Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, Thai,
     mathematical bold/monospace ...; also superscripts, circled and dingbat digits such as
     ``²``, ``①``, ``❶``) becomes that ASCII digit;
   * any other character is replaced by its NFKC form, folded again the same way, with a run
     of non-alphanumeric characters inside one expansion counted as one (``…`` -> ``.``,
     ``½`` -> ``1/2``).

2. *Digit runs.* In the folded text a *separator* is any character that is neither a letter
   nor a digit (formally: not ``\\w``, or ``_``): spaces of every kind (NBSP, thin, narrow,
   figure), dot, comma, dash, en/em dash, minus sign, slash, parentheses, line breaks, ``•``
   ... A *digit run* is a maximal sequence of ASCII digits in which consecutive digits are
   separated by **at most two** separator characters. A letter (or any other alphanumeric
   character that is not a digit) or three separators in a row end a run.

3. *Windows.* Every window of 13-19 consecutive digits of a run is a PAN candidate, whatever
   precedes or follows it in the run (a PAN followed by an expiry or a CVV, or preceded by
   other digits, is still found). A candidate that passes the Luhn check is a hit. No
   brand-prefix test is applied: the product rule is "any Luhn-valid 13-19 digit window
   blocks the message", deliberately more conservative than the brand+length filter of the
   reference. :func:`find_pans` reports the *maximal* hits (those not contained in a longer
   hit of the same run), as ASCII digits, in order of position.

4. *What it does to real reminders.* NANP phones (``+1 800 555 0100``: 11 digits), amounts
   (``$1,234.56``), dates (``11/23/2026``) and invoice counts in the bundled templates are
   always separated by words, so they never join into a 13-digit run; the payment-link token
   starts after ``/r/`` and is a random URL-safe string in which 13 digits with only ``-``/``_``
   between them practically never occur (``benchmarks/pci_false_positives.py`` measures the
   false-positive rate on rendered bodies). International numbers written with the country
   code can reach 13-15 digits (``+86 138 0013 8000``) and are reported when Luhn-valid;
   the guard does not try to recognise phone numbers.

5. *Masking.* :func:`mask_pans` replaces every digit character of every hit by ``•`` except
   the hit's last four digits, which stay as written; separators, letters and every other
   character stay in place (the text keeps its length and shape). Digits that belong to
   overlapping hits are masked if any hit masks them, so no hit shows more than its last
   four digits, and the masked text contains no hit (the 9+ masks in a row end the run).
   :func:`mask_pan` formats one known PAN for display as ``•••• 1111``.

Source of the rules: PCI DSS v4.0.1 Req. 4.2.2 (no PAN over end-user messaging) and Req. 3.4.1
(masked display), the Luhn algorithm and the free-text detection recipe in
the team's reference notes ``shared/reference/carriers-and-compliance.md`` section 7.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import accumulate

__all__ = ["contains_pan", "find_pans", "fold_text", "luhn_valid", "mask_pan", "mask_pans"]

_MIN_DIGITS = 13
_MAX_DIGITS = 19
_PAN_LENGTHS = range(12, 20)
_MASK = "•"

_RUN = re.compile(r"[0-9](?:[\W_]{0,2}[0-9])*")
_NON_DIGITS = re.compile(r"[^0-9]+")
_SEPARATOR_RUN = re.compile(r"[\W_]+")
_SEPARATORS = str.maketrans("", "", " -")
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_ASCII_DIGITS = "0123456789"
_DROPPED = frozenset({"Cf", "Mn", "Me"})


def _digit_value(char: str) -> int | None:
    value = unicodedata.decimal(char, None)
    return unicodedata.digit(char, None) if value is None else value


def _fold_simple(char: str) -> str:
    if unicodedata.category(char) in _DROPPED:
        return ""
    value = _digit_value(char)
    return char if value is None else _ASCII_DIGITS[value]


def _fold_char(char: str) -> str:
    if unicodedata.category(char) in _DROPPED:
        return ""
    value = _digit_value(char)
    if value is not None:
        return _ASCII_DIGITS[value]
    if char.isascii():
        return char
    try:
        expanded = unicodedata.normalize("NFKC", char)
    except (UnicodeError, ValueError):  # pragma: no cover - lone surrogates normalise fine today
        return char
    if expanded == char:
        return char
    folded = "".join(_fold_simple(c) for c in expanded)
    return _SEPARATOR_RUN.sub(lambda m: m.group()[0], folded)


class _FoldTable(dict[int, str]):
    """``str.translate`` table built lazily: each code point is folded once, then cached."""

    def __missing__(self, code_point: int) -> str:
        folded = _fold_char(chr(code_point))
        self[code_point] = folded
        return folded


_FOLD = _FoldTable()


def fold_text(text: str) -> str:
    """The text as the guard scans it (contract point 1): ASCII digits, no invisible chars."""
    return text.translate(_FOLD)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check; ``False`` unless ``digits`` is a non-empty string of ASCII digits."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += _DOUBLED[value] if position & 1 else value
    return total % 10 == 0


def _hits(digits: str) -> list[tuple[int, int]]:
    """Maximal Luhn-valid windows ``[start, end)`` of 13-19 digits in one run, by start."""
    n = len(digits)
    if n < _MIN_DIGITS:
        return []
    values = [ord(c) - 48 for c in digits]
    # sums[q][p]: sum over positions < p, plain where position parity == q, doubled elsewhere.
    sums = [
        [0, *accumulate(v if (p & 1) == q else _DOUBLED[v] for p, v in enumerate(values))]
        for q in (0, 1)
    ]
    valid: set[tuple[int, int]] = set()
    for end in range(_MIN_DIGITS, n + 1):
        prefix = sums[(end - 1) & 1]
        for start in range(max(0, end - _MAX_DIGITS), end - _MIN_DIGITS + 1):
            if (prefix[end] - prefix[start]) % 10 == 0:
                valid.add((start, end))
    maximal = [
        (start, end)
        for start, end in valid
        if not any(
            (outer_start, outer_end) in valid
            for outer_start in range(max(0, end - _MAX_DIGITS), start + 1)
            for outer_end in range(end, outer_start + _MAX_DIGITS + 1)
            if (outer_start, outer_end) != (start, end)
        )
    ]
    return sorted(maximal)


def _enough_digits(folded: str) -> bool:
    return sum(map(folded.count, _ASCII_DIGITS)) >= _MIN_DIGITS


def find_pans(text: str) -> list[str]:
    """Maximal Luhn-valid 13-19 digit windows of the digit runs of ``text`` (see the module
    contract), as ASCII digits, in order of appearance."""
    folded = fold_text(text)
    if not _enough_digits(folded):
        return []
    pans: list[str] = []
    for match in _RUN.finditer(folded):
        digits = _NON_DIGITS.sub("", match.group())
        pans.extend(digits[start:end] for start, end in _hits(digits))
    return pans


def contains_pan(text: str) -> bool:
    """``True`` if :func:`find_pans` would report anything, i.e. the message must be blocked."""
    return bool(find_pans(text))


def mask_pans(text: str) -> str:
    """``text`` with every digit of every PAN found by :func:`find_pans` replaced by ``•``,
    except each PAN's last four digits; everything else (separators included) is kept."""
    folded = fold_text(text)
    if not _enough_digits(folded) or not any(
        _hits(_NON_DIGITS.sub("", m.group())) for m in _RUN.finditer(folded)
    ):
        return text
    folded_parts = [_FOLD[ord(c)] for c in text]
    origin = [i for i, part in enumerate(folded_parts) for _ in part]
    masked: set[int] = set()
    for match in _RUN.finditer(folded):
        positions = [match.start() + k for k, c in enumerate(match.group()) if "0" <= c <= "9"]
        digits = "".join(folded[p] for p in positions)
        for start, end in _hits(digits):
            masked.update(origin[positions[k]] for k in range(start, end - 4))
    return "".join(_MASK if i in masked else c for i, c in enumerate(text))


def mask_pan(pan: str) -> str:
    """Mask a PAN for display, keeping only the last four digits: ``"•••• 1111"``.

    Spaces and hyphens in ``pan`` are ignored.  Raises ``ValueError`` unless what remains is
    12–19 ASCII digits (ISO/IEC 7812 PAN lengths), so a short value is never mostly revealed.
    """
    digits = pan.translate(_SEPARATORS)
    if not (digits.isascii() and digits.isdigit() and len(digits) in _PAN_LENGTHS):
        raise ValueError("mask_pan expects 12-19 digits, optionally separated by spaces/hyphens")
    return f"•••• {digits[-4:]}"
