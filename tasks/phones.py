"""Phone parsing at scale: each distinct (raw value, default region) parsed once, cached.

phonenumbers is pure Python (about 30 µs a number), so it is the slowest step of normalize at a
million customers. This module keeps its answers in a frame keyed by (raw value, region)
(:data:`PHONE_CACHE_SCHEMA`), kept in the warehouse table ``phone_cache`` between runs: a warm
run parses only the values it has not seen, a cold run parses each distinct value once, in
parallel across the cores (processes, chunked; phonenumbers holds the GIL).

``number_type`` records what phonenumbers knows of the line: ``mobile``, ``fixed_line``,
``fixed_or_mobile``, ``toll_free``, ``premium_rate``, ... Numbers of the North American plan
(+1) cannot be told mobile from fixed by their digits, so every +1 fixed-line, mobile or
either answer is recorded ``fixed_or_mobile`` and stays eligible for SMS; a number known to be
a fixed line elsewhere is rejected ``phone_not_mobile``.

The cache is keyed by the phonenumbers version too (``parser``): a new version's metadata may
answer differently, so a run under another version parses again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import phonenumbers as pn
import polars as pl
from phonenumbers import timezone as pn_timezone
from sqlalchemy.engine import Connection

from tasks.warehouse import read_arrow, write_frame

__all__ = [
    "PARSER_VERSION",
    "PHONE_CACHE_SCHEMA",
    "empty_phone_cache",
    "join_phones",
    "load_phone_cache",
    "lookup_phones",
    "parse_phone",
    "parse_phone_values",
    "save_phone_cache",
]

PARSER_VERSION = f"phonenumbers-{pn.__version__}"

PHONE_CACHE_SCHEMA: dict[str, pl.DataType] = {
    "raw": pl.String(),
    "region": pl.String(),
    "e164": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
    "zones": pl.List(pl.String()),
    "calling_code": pl.Int32(),
    "line": pl.String(),
    "number_type": pl.String(),
}
"""One parsed (raw, region): e164 (null unless SMS-capable), rule/reason (null/"" when fine),
phonenumbers' raw zones, calling code, line (E.164 of any valid number) and number type."""

_TYPE_NAMES = {
    pn.PhoneNumberType.FIXED_LINE: "fixed_line",
    pn.PhoneNumberType.MOBILE: "mobile",
    pn.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    pn.PhoneNumberType.TOLL_FREE: "toll_free",
    pn.PhoneNumberType.PREMIUM_RATE: "premium_rate",
    pn.PhoneNumberType.SHARED_COST: "shared_cost",
    pn.PhoneNumberType.VOIP: "voip",
    pn.PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    pn.PhoneNumberType.PAGER: "pager",
    pn.PhoneNumberType.UAN: "uan",
    pn.PhoneNumberType.VOICEMAIL: "voicemail",
}
_NOT_SMS_CAPABLE = frozenset(
    {"fixed_line", "premium_rate", "shared_cost", "voicemail", "pager", "uan"}
)
_NANP_EITHER = frozenset({"fixed_line", "mobile", "fixed_or_mobile"})
_PARSE_ERRORS = {
    pn.NumberParseException.INVALID_COUNTRY_CODE: "invalid or missing country code",
    pn.NumberParseException.NOT_A_NUMBER: "not a phone number",
    pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    pn.NumberParseException.TOO_SHORT_NSN: "too short",
    pn.NumberParseException.TOO_LONG: "too long",
}

Parsed = tuple[str | None, str | None, str, tuple[str, ...], int | None, str | None, str | None]
"""(e164, rule, reason, zones, calling_code, line, number_type)."""


def parse_phone(raw: str | None, region: str | None) -> Parsed:
    """Parse one raw phone string with ``region`` as the default region.

    The line is the E.164 form of any valid number, without its extension and whatever its
    type: it tells a number shared by several customers even when this customer's number
    cannot take SMS. The zones of a valid number are a location signal whether or not it can
    take SMS.
    """
    if raw is None or not raw.strip():
        return None, None, "no phone number", (), None, None, None
    try:
        number = pn.parse(raw, region if region else None)
    except pn.NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "cannot be parsed")
        return None, "phone_unparseable", reason, (), None, None, None
    # number_type is UNKNOWN exactly when is_valid_number is False: one call answers both.
    kind = pn.number_type(number)
    if kind == pn.PhoneNumberType.UNKNOWN:
        return None, "phone_invalid", "not a valid number for its region", (), None, None, None
    label = _TYPE_NAMES.get(kind, "other")
    if number.country_code == 1 and label in _NANP_EITHER:
        label = "fixed_or_mobile"  # +1: the digits do not tell mobile from fixed
    zones = tuple(pn_timezone.time_zones_for_number(number))
    line = pn.format_number(number, pn.PhoneNumberFormat.E164)  # never carries the extension
    code = number.country_code
    if number.extension:
        reason = "has an extension, so it is not a mobile line"
        return None, "phone_has_extension", reason, zones, code, line, label
    if label in _NOT_SMS_CAPABLE:
        reason = f"number type cannot receive SMS ({label})"
        return None, "phone_not_mobile", reason, zones, code, line, label
    return line, None, "", zones, code, line, label


def _parse_chunk(pairs: Sequence[tuple[str | None, str | None]]) -> list[Parsed]:
    return [parse_phone(raw, region) for raw, region in pairs]


def _workers(requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


PARALLEL_MIN = 20_000
"""Below this many values to parse, one process parses them (a pool costs ~0.3 s to start)."""


def parse_phone_values(
    pairs: pl.DataFrame, *, workers: int | None = None, chunk: int = 25_000
) -> pl.DataFrame:
    """Parse every row of ``pairs`` (columns raw, region; distinct) into the cache schema.

    With more than :data:`PARALLEL_MIN` rows and more than one core, the rows are parsed in
    chunks by a process pool; the result is in the order of ``pairs`` either way.
    """
    rows: list[tuple[str | None, str | None]] = pairs.select("raw", "region").rows()
    n = _workers(workers)
    results: Iterable[Parsed]
    if n > 1 and len(rows) >= PARALLEL_MIN:
        size = max(1_000, min(chunk, -(-len(rows) // (n * 4))))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        from tasks.zones import wait_for_background

        wait_for_background()  # fork no background thread of ours mid-work into the pool
        with ProcessPoolExecutor(max_workers=n) as pool:
            results = [p for part in pool.map(_parse_chunk, chunks) for p in part]
    else:
        results = _parse_chunk(rows)
    columns = list(zip(*results, strict=True)) if rows else [[] for _ in range(7)]
    names = ("e164", "rule", "reason", "zones", "calling_code", "line", "number_type")
    data: dict[str, list[object]] = {n: list(c) for n, c in zip(names, columns, strict=True)}
    data["zones"] = ["|".join(z) for z in columns[3]]  # flat strings build 10x faster
    frame = pl.DataFrame(
        {"raw": [r for r, _ in rows], "region": [g for _, g in rows], **data},
        schema=PHONE_CACHE_SCHEMA | {"zones": pl.String()},
    )
    return frame.with_columns(split_zones(pl.col("zones")))


def split_zones(joined: pl.Expr) -> pl.Expr:
    """'|'-joined zone names back to a list ('' or null: the empty list)."""
    return (
        pl.when(joined.is_null() | (joined == ""))
        .then(pl.lit([], pl.List(pl.String())))
        .otherwise(joined.str.split("|"))
        .alias("zones")
    )


def empty_phone_cache() -> pl.DataFrame:
    return pl.DataFrame(schema=PHONE_CACHE_SCHEMA)


def lookup_phones(
    values: pl.DataFrame,
    cache: pl.DataFrame | None = None,
    *,
    workers: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(parsed, new): the cache rows for every distinct (raw, region) of ``values``.

    ``values`` has columns raw and region (any number of rows, repeats welcome). Rows already
    in ``cache`` are taken from it; the rest are parsed (once each) and also returned as
    ``new``, the rows to add to the warehouse cache.
    """
    distinct = values.select(
        pl.col("raw").cast(pl.String), pl.col("region").cast(pl.String)
    ).unique()
    if cache is None or cache.height == 0:
        new = parse_phone_values(distinct, workers=workers)
        return new, new
    cache = cache.select(*PHONE_CACHE_SCHEMA).cast(PHONE_CACHE_SCHEMA)  # type: ignore[arg-type]
    known = distinct.join(cache, on=["raw", "region"], how="inner", nulls_equal=True)
    unseen = distinct.join(
        known.select("raw", "region"), on=["raw", "region"], how="anti", nulls_equal=True
    )
    new = parse_phone_values(unseen, workers=workers)
    return pl.concat([known.select(*PHONE_CACHE_SCHEMA), new]), new


def join_phones(
    frame: pl.DataFrame,
    raw: str,
    region: str,
    cache: pl.DataFrame | None = None,
    *,
    workers: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(``frame`` + the cache columns of its (``raw``, ``region``), new): what joining
    :func:`lookup_phones`' answer onto ``frame`` gives, with the rows of ``frame`` joined to
    ``cache`` directly (one join instead of distinct values, two joins and a join back): only
    the values the cache lacks are made distinct, parsed (``new``) and joined to the rows that
    missed. Row order is not kept (as a plain left join)."""
    names = [c for c in PHONE_CACHE_SCHEMA if c not in ("raw", "region")]
    keys = frame.select(pl.col(raw).cast(pl.String), pl.col(region).cast(pl.String))
    if cache is None or cache.height == 0:
        new = parse_phone_values(
            keys.rename({raw: "raw", region: "region"}).unique(), workers=workers
        )
        return frame.join(
            new.rename({"raw": raw, "region": region}),
            on=[raw, region],
            how="left",
            nulls_equal=True,
        ), new
    cache = cache.select(*PHONE_CACHE_SCHEMA).cast(PHONE_CACHE_SCHEMA)  # type: ignore[arg-type]
    hit = cache.rename({"raw": raw, "region": region}).with_columns(pl.lit(True).alias("_hit"))
    joined = frame.with_columns(keys).join(hit, on=[raw, region], how="left", nulls_equal=True)
    missed = joined.filter(pl.col("_hit").is_null())
    new = parse_phone_values(
        missed.select(pl.col(raw).alias("raw"), pl.col(region).alias("region")).unique(),
        workers=workers,
    )
    if missed.height:
        found = joined.filter(pl.col("_hit").is_not_null())
        filled = missed.drop(names).join(
            new.rename({"raw": raw, "region": region}),
            on=[raw, region],
            how="left",
            nulls_equal=True,
        )
        joined = pl.concat([found, filled.select(found.columns)])
    return joined.drop("_hit"), new


def load_phone_cache(conn: Connection) -> pl.DataFrame:
    """The warehouse ``phone_cache`` rows of this phonenumbers version, once per key."""
    text = {c: pl.String() for c in ("raw", "region", "e164", "rule", "reason", "zones")}
    frame = read_arrow(
        conn,
        "select raw, region, e164, rule, reason, zones, calling_code, line, number_type"
        f" from phone_cache where parser = '{PARSER_VERSION}'",
        schema=text | {"calling_code": pl.Int32(), "line": pl.String(), "number_type": pl.String()},
    )
    return (
        frame.unique(["raw", "region"], keep="any")
        .with_columns(
            pl.col("reason").fill_null(""),
            split_zones(pl.col("zones")),
        )
        .select(*PHONE_CACHE_SCHEMA)
        .cast(PHONE_CACHE_SCHEMA)  # type: ignore[arg-type]
    )


def save_phone_cache(conn: Connection, new: pl.DataFrame) -> int:
    """Append newly parsed rows (not blank values: those cost nothing to parse)."""
    rows = new.filter(
        pl.col("raw").is_not_null()
        & (pl.col("raw").str.strip_chars() != "")
        & pl.col("region").is_not_null()
    ).select(
        pl.lit(PARSER_VERSION).alias("parser"),
        "raw",
        "region",
        "e164",
        "rule",
        "reason",
        pl.col("zones").list.join("|").alias("zones"),
        "calling_code",
        "line",
        "number_type",
    )
    return write_frame(conn, "phone_cache", rows)
