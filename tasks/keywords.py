"""Inbound SMS keywords: STOP / START / HELP and custom keywords, read the hostile way.

Matching (carriers-and-compliance §4; Twilio, CTIA, FCC 47 CFR 64.1200(a)(10)):

1. *Fold* the text: NFKC (full-width and mathematical letters become ASCII), Unicode
   look-alikes of Latin letters (Cyrillic ``С Т О Р``, Greek ``Ο Ρ Τ`` ...) become those letters,
   case folded, accents stripped (``ARRÊT`` -> ``arret``), invisible characters (zero-width,
   joiners, soft hyphen, bidi marks) dropped.
2. *Exact*: the whole message, with every character that is not a letter or a digit removed
   (surrounding whitespace, punctuation, emoji; ``OPT-OUT``, ``opt out``, ``S.T.O.P``), is one
   keyword of :data:`KEYWORDS` or of the configured custom table; an opt-out keyword is
   also found with digits written for letters (``ST0P``, ``QU1T``).
3. *Phrase* (the FCC reads any clear revocation as one): otherwise, a message with a word
   ``stop``, ``stopall``, ``unsubscribe``, ``optout``, ``revoke``, ``arret`` or the words
   ``opt out`` opts out (conservative: "please stop texting me" is an opt-out; "don't stop" is
   one too, a false opt-out is the safe error).
4. Anything else is ``none``: recorded, no consent change, no reply.

Actions: ``opt_out`` (every channel: the consent rule makes an opt-out on the channel it came
from global), ``opt_in`` (that channel again), ``help``, and the custom ``payment_link`` /
``callback_request``. The consent status a keyword writes (``opt_out`` / ``opt_in``) is the
canonical status of ``tasks.consent``; a keyword that is also a consent spelling there (STOP,
START, YES, UNSTOP, UNSUBSCRIBE, REVOKE, OPTOUT) must mean the same (checked at import).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from tasks.consent import STATUS_KEYS, status_key

__all__ = [
    "CONFUSABLES",
    "KEYWORDS",
    "PHRASE_OPT_OUT_WORDS",
    "KeywordMatch",
    "classify",
    "fold",
]

OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "ARRET")
OPT_IN = ("START", "YES", "UNSTOP")
HELP = ("HELP", "INFO", "AIDE")

KEYWORDS: dict[str, str] = {
    **dict.fromkeys(OPT_OUT, "opt_out"),
    **dict.fromkeys(OPT_IN, "opt_in"),
    **dict.fromkeys(HELP, "help"),
}
"""Keyword (upper case, letters only) -> action."""

PHRASE_OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "optout", "revoke", "arret"})

CONFUSABLES: dict[str, str] = {
    # Cyrillic capitals and small letters that render as Latin ones
    **dict(zip("АВСЕНІЈКМОРЅТХУЁЇ", "ABCEHIJKMOPSTXYEI", strict=True)),
    **dict(zip("авсеһіјкмопрѕтхуёї", "abcehijkmonpstxyei", strict=True)),
    # Greek
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
    **dict(zip("αβεικνορτυχ", "abeiknoptux", strict=True)),
    # Latin look-alikes outside ASCII that NFKC keeps
    "ı": "i",
    "ȷ": "j",
    "ꓢ": "S",
    "ꓔ": "T",
    "ꓳ": "O",
    "ꓑ": "P",
    "Ꭺ": "A",
    "Ꮪ": "S",
    "Ꭲ": "T",
    "Ꮲ": "P",
    "ᴏ": "o",
    "ѕ": "s",
}
"""Look-alike -> Latin letter (Unicode TR39 confusables of the letters keywords use)."""

_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)
_DIGIT_LOOKALIKES = str.maketrans("0135", "oies")
"""Digits written for letters (``ST0P``): read so only to find an opt-out (the safe error)."""
_DROPPED = frozenset({"Cf", "Mn", "Me"})


@dataclass(frozen=True)
class KeywordMatch:
    """What an inbound text means: ``action`` is opt_out, opt_in, help, payment_link,
    callback_request or none; ``keyword`` the canonical keyword (None for none);
    ``match`` exact or phrase; ``status`` the consent status it writes, if any."""

    action: str
    keyword: str | None
    match: str | None

    @property
    def status(self) -> str | None:
        return self.action if self.action in ("opt_out", "opt_in") else None


def fold(text: str) -> str:
    """The text folded for matching (see the module docstring, step 1)."""
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLE_TABLE)
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if unicodedata.category(c) not in _DROPPED)


def _letters(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def _words(text: str) -> list[str]:
    out: list[str] = []
    word: list[str] = []
    for c in text:
        if c.isalnum():
            word.append(c)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def _table(custom: Mapping[str, str]) -> dict[str, str]:
    table = {_letters(fold(k)): a for k, a in KEYWORDS.items()}
    for k, action in custom.items():
        key = _letters(fold(k))
        if key in table and table[key] != action:
            raise ValueError(f"custom keyword {k!r} collides with the built-in {key.upper()}")
        table[key] = action
    return table


def classify(text: str | None, custom: Mapping[str, str] | None = None) -> KeywordMatch:
    """Classify one inbound message (``custom``: keyword -> payment_link | callback_request)."""
    if not text:
        return KeywordMatch("none", None, None)
    table = _table(custom or {})
    folded = fold(text)
    key = _letters(folded)
    if key in table:
        return KeywordMatch(table[key], key.upper(), "exact")
    digits_as_letters = key.translate(_DIGIT_LOOKALIKES)
    if table.get(digits_as_letters) == "opt_out":
        return KeywordMatch("opt_out", digits_as_letters.upper(), "exact")
    words = _words(folded)
    pairs = {a + b for a, b in itertools.pairwise(words)}
    hits = [w for w in words if w in PHRASE_OPT_OUT_WORDS] or sorted(pairs & {"optout"})
    if hits:
        return KeywordMatch("opt_out", hits[0].upper(), "phrase")
    return KeywordMatch("none", None, None)


def _check_against_consent_table() -> None:
    """A keyword that is also a consent spelling must carry the same meaning there."""
    keys = pl.DataFrame({"k": [k for k, a in KEYWORDS.items() if a != "help"]}).select(
        pl.col("k"), status_key(pl.col("k")).alias("key")
    )
    for keyword, key in keys.iter_rows():
        known = STATUS_KEYS.get(key)
        if known is not None and known != KEYWORDS[keyword]:
            raise ValueError(f"keyword {keyword} means {KEYWORDS[keyword]}, consent says {known}")
    for status in ("opt_out", "opt_in"):
        if STATUS_KEYS.get(status.replace("_", "")) != status:
            raise ValueError(f"consent table does not read the status {status!r}")


_check_against_consent_table()
