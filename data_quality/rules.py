"""Row rules: declarative checks that turn a bad input row into a quarantine row.

A :class:`Rule` names a condition that is true when a row *fails*. :func:`split_rows` applies
a source's rules in order; a row that fails several is quarantined once, under the first, so
``rows in = rows accepted + rows quarantined`` holds per source. Field-level problems (a bad
phone on an otherwise good customer) are not row rules: the row is kept, the field is nulled,
and a ``scope='field'`` quarantine row records it (see ``tasks.normalize``).

Quarantine frame grain: one row per rejected input row (scope ``row``) or rejected field
(scope ``field``); columns ``source, source_row, record_key, scope, rule, reason, raw_values``
where ``raw_values`` is the row's canonical columns as they arrived, JSON-encoded, except that
a card number (PAN) in a text value is never stored in clear: :func:`raw_json` masks it with
:func:`tasks.pci.mask_pans` (all but the last four digits become ``•``) before encoding, so
JSON escapes (``\n``) cannot hide a PAN split over a line break from the guard; then each value
is cut to :data:`RAW_VALUE_CHARS` characters, so a 10 MB cell is not stored whole.

A rule's ``reason`` is a fixed text or a per-row string expression (e.g. naming the column that
is too long and its length).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from tasks.pci import mask_pans

__all__ = [
    "QUARANTINE_SCHEMA",
    "RAW_VALUE_CHARS",
    "Rule",
    "empty_quarantine",
    "raw_json",
    "split_rows",
]

RAW_VALUE_CHARS = 1000
"""Longest raw value kept in ``raw_values``; longer ones are cut and marked."""

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "source_row": pl.Int32(),
    "record_key": pl.String(),
    "scope": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
    "raw_values": pl.String(),
}


@dataclass(frozen=True)
class Rule:
    """``fails`` is a boolean expression, true (not null) when the row breaks the rule.

    ``reason`` is a fixed text or a string expression evaluated on the failing rows.
    """

    name: str
    reason: str | pl.Expr
    fails: pl.Expr


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


_PAN_MIN_DIGITS = 13
"""Fewest digits of a PAN (``tasks.pci``): a text that folds to fewer digits holds none."""
_FOLDED_DIGITS_MAX = 3
"""Most ASCII digits one non-ASCII character folds to in ``tasks.pci`` (U+2152 ⅒ -> 1⁄10);
``tests/unit/test_rules.py`` checks it over every code point."""


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[cut, {len(text)} characters]"


_ASCII_RUN = r"[0-9](?:[^A-Za-z0-9]{0,2}[0-9]){12,}"
"""In ASCII text, a ``tasks.pci`` digit run of 13+ digits (digits with at most two
non-alphanumerics between them): ``tasks.pci`` folds every ASCII character to itself and its
separators ``[\\W_]`` are, among ASCII characters, exactly the non-alphanumerics. An ASCII
value without such a match holds no PAN window, so ``mask_pans`` returns it unchanged."""


def _mask_and_cut(values: pl.Series, limit: int) -> pl.Series:
    """Text values with every PAN masked, then cut to ``limit``; other dtypes unchanged.

    Masking comes first, so a cut cannot leave a PAN's digits in clear. Python runs once per
    distinct value that might change: ``tasks.pci`` folds an ASCII character to itself and
    any other to at most :data:`_FOLDED_DIGITS_MAX` digits, so a value whose ASCII digits
    plus three per non-ASCII character stay under 13 holds no PAN, nor does an ASCII value
    without a 13-digit run (:data:`_ASCII_RUN`: a timestamp's 14 digits are split by its
    ``T``), and one of at most ``limit`` characters is not cut; such values are kept as they
    are without a Python call.
    """
    if values.dtype != pl.String:
        return values
    non_ascii = values.str.count_matches(r"[^\x00-\x7f]")
    digits = values.str.count_matches(r"[0-9]") + _FOLDED_DIGITS_MAX * non_ascii
    no_pan = (digits < _PAN_MIN_DIGITS) | ((non_ascii == 0) & ~values.str.contains(_ASCII_RUN))
    kept = (no_pan & (values.str.len_chars() <= limit)).fill_null(True)
    if kept.all():
        return values
    rest = values.filter(~kept)
    distinct = rest.unique().to_list()
    done = [_cut(mask_pans(v), limit) for v in distinct]
    fixed = rest.replace_strict(distinct, done, return_dtype=pl.String)
    return values.clone().scatter((~kept).arg_true(), fixed)


def raw_json(columns: Sequence[str], *, limit: int = RAW_VALUE_CHARS) -> pl.Expr:
    """The given raw columns of a row as one JSON object string: card numbers masked first
    (so a cut cannot leave a PAN's digits in clear), then each value cut to ``limit``.

    Runs Python once per distinct text value: apply it to the quarantined rows only.
    """
    return pl.struct(
        [
            pl.col(c).map_batches(lambda v: _mask_and_cut(v, limit), return_dtype=None)
            for c in columns
        ]
    ).struct.json_encode()


def split_rows(
    frame: pl.DataFrame,
    rules: Sequence[Rule],
    *,
    source: str,
    key: str,
    raw_columns: Sequence[str],
    reasons_per_row: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` into (accepted rows, quarantine rows) by the first failing rule.

    Reasons are evaluated on the whole frame (they may use window expressions over a key),
    then the rejected rows are taken. With ``reasons_per_row`` the caller promises that every
    reason is elementwise (it reads only its own row's values, no window or aggregation): they
    are then evaluated on the rejected rows only, which gives the same texts without building
    a reason for every accepted row.
    """
    if not rules:
        return frame, empty_quarantine()
    chain = pl.when(rules[0].fails.fill_null(False)).then(pl.lit(0))
    for i, rule in enumerate(rules[1:], start=1):
        chain = chain.when(rule.fails.fill_null(False)).then(pl.lit(i))
    tagged = frame.with_columns(chain.otherwise(None).cast(pl.Int32).alias("_rule"))
    texts = [pl.lit(r.reason) if isinstance(r.reason, str) else r.reason for r in rules]
    reason_chain = pl.when(pl.col("_rule") == 0).then(texts[0].cast(pl.String))
    for i, text in enumerate(texts[1:], start=1):
        reason_chain = reason_chain.when(pl.col("_rule") == i).then(text.cast(pl.String))
    if reasons_per_row:
        accepted = tagged.filter(pl.col("_rule").is_null()).drop("_rule")
        rejected = tagged.filter(pl.col("_rule").is_not_null())
        rejected = rejected.with_columns(reason_chain.otherwise(None).alias("_reason"))
    else:
        tagged = tagged.with_columns(reason_chain.otherwise(None).alias("_reason"))
        accepted = tagged.filter(pl.col("_rule").is_null()).drop("_rule", "_reason")
        rejected = tagged.filter(pl.col("_rule").is_not_null())
    index = list(range(len(rules)))
    quarantine = rejected.select(
        pl.lit(source).alias("source"),
        pl.col("source_row").cast(pl.Int32),
        pl.col(key).cast(pl.String).str.slice(0, RAW_VALUE_CHARS).alias("record_key"),
        pl.lit("row").alias("scope"),
        pl.col("_rule")
        .replace_strict(index, [r.name for r in rules], return_dtype=pl.String)
        .alias("rule"),
        pl.col("_reason").alias("reason"),
        raw_json(raw_columns).alias("raw_values"),
    )
    return accepted, quarantine.cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
