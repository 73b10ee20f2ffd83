"""Keyword matrix: every keyword of the issue, under hostile spelling (hypothesis).

The expected action of each keyword is written here from the issue text (item 4), not read
from tasks.keywords; the transformations are generated independently of the classifier.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.consent import STATUS_KEYS, status_key
from tasks.keywords import classify

EXPECTED = {
    "STOP": "opt_out",
    "STOPALL": "opt_out",
    "UNSUBSCRIBE": "opt_out",
    "CANCEL": "opt_out",
    "END": "opt_out",
    "QUIT": "opt_out",
    "REVOKE": "opt_out",
    "OPTOUT": "opt_out",
    "START": "opt_in",
    "YES": "opt_in",
    "UNSTOP": "opt_in",
    "HELP": "help",
    "INFO": "help",
    "PAID": "payment_link",
    "CALL": "callback_request",
}
CUSTOM = {"PAID": "payment_link", "CALL": "callback_request"}

# Unicode look-alikes per Latin letter (Cyrillic, Greek, full-width, mathematical bold)
LOOKALIKES = {
    "A": "АΑＡ𝐀",
    "B": "ВΒＢ",
    "C": "СＣ",
    "E": "ЕΕＥ𝐄",
    "H": "НΗＨ",
    "I": "ІΙＩ",
    "K": "КΚＫ",
    "L": "Ｌ𝐋",
    "N": "ΝＮ",
    "O": "ОΟＯ𝐎",
    "P": "РΡＰ𝐏",
    "S": "ЅＳ𝐒",
    "T": "ТΤＴ𝐓",
    "U": "Ｕ𝐔",
    "Y": "УΥＹ",
}
SPACES = [" ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\r\n"]
PUNCTUATION = [".", "!", "?", "!!", "...", "…", ",", ";", ":", '"', "'", "(", ")", "🛑", "🙏", "*"]
INVISIBLE = ["\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff"]


@st.composite
def hostile(draw: st.DrawFn, keyword: str) -> str:
    letters = []
    for ch in keyword:
        mode = draw(st.sampled_from(["upper", "lower", "lookalike"]))
        if mode == "lookalike" and ch in LOOKALIKES:
            letters.append(draw(st.sampled_from(list(LOOKALIKES[ch]))))
        else:
            letters.append(ch.lower() if mode == "lower" else ch)
        if draw(st.integers(0, 9)) == 0:
            letters.append(draw(st.sampled_from(INVISIBLE)))
    around = st.lists(st.sampled_from(SPACES + PUNCTUATION), max_size=4).map("".join)
    return draw(around) + "".join(letters) + draw(around)


@pytest.mark.parametrize("keyword", sorted(EXPECTED))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_keyword_matrix(keyword: str, data: st.DataObject) -> None:
    text = data.draw(hostile(keyword))
    match = classify(text, CUSTOM)
    assert match.action == EXPECTED[keyword], repr(text)
    assert match.keyword == keyword
    assert match.match == "exact"


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("opt out", "opt_out"),
        ("Opt-Out", "opt_out"),
        ("S.T.O.P.", "opt_out"),
        ("ST0P", "opt_out"),
        ("ARRÊT", "opt_out"),
        ("please stop texting me", "opt_out"),
        ("STOP PLEASE", "opt_out"),
        ("I want to unsubscribe now", "opt_out"),
        ("thanks", "none"),
        ("when is my bill due", "none"),
        ("", "none"),
        ("   ", "none"),
        ("YES PLEASE", "none"),
        ("1NFO", "none"),  # digits-for-letters are read only to find an opt-out
    ],
)
def test_phrases_and_non_keywords(text: str, action: str) -> None:
    assert classify(text, CUSTOM).action == action


def test_keyword_statuses_are_read_alike_by_the_consent_table() -> None:
    """A keyword that is also a consent spelling means the same there, and the status a keyword
    writes into consent_events is read back by the consent table as itself."""
    spelled = pl.DataFrame({"k": ["STOP", "UNSUBSCRIBE", "REVOKE", "OPTOUT", "START", "UNSTOP"]})
    keys = spelled.select(status_key(pl.col("k"))).to_series().to_list()
    for keyword, key in zip(spelled["k"], keys, strict=True):
        assert STATUS_KEYS[key] == EXPECTED[keyword]
        assert classify(keyword).status == EXPECTED[keyword]
    for status in ("opt_out", "opt_in"):
        assert STATUS_KEYS[pl.select(status_key(pl.lit(status))).item()] == status


def test_custom_keyword_cannot_redefine_stop() -> None:
    with pytest.raises(ValueError, match="collides"):
        classify("stop", {"STOP": "payment_link"})


def test_unknown_keyword_without_custom_table() -> None:
    assert classify("PAID").action == "none"
