"""Normalize: parse and validate the canonical inputs; bad rows go to quarantine.

Pure functions on polars frames. Output grains:

- customers: one row per accepted customer_id (duplicates: the latest ``updated_at`` wins, the
  others are quarantined). ``phone_e164`` / ``email`` are null when missing or rejected (a
  rejected field also yields a ``scope='field'`` quarantine row). ``time_zones`` holds the
  sorted candidate IANA zones and ``zone_source`` the signal that gave them (``preferred``,
  ``postal_code``, ``phone``, ``country`` or ``unknown``); see :mod:`tasks.zones`. Several
  candidates mean the stagger stage uses the intersection of their windows. A
  preferred_timezone that is not a geographic zone is a ``timezone_not_geographic`` field row.
- invoices: one row per accepted invoice, ``amount_due_minor`` in the currency's minor units.
- consent_events / contact_history: accepted events, timestamps parsed to UTC.

Every input row is either accepted or has exactly one ``scope='row'`` quarantine row.

Rules every source shares, checked first: ``encoding_invalid`` (a cell held bytes the source's
encoding cannot decode; only checked when extract saw such bytes) and ``field_too_long`` (a
canonical cell longer than ``parsing.max_field_length`` characters).

Versions (customers by customer_id, invoices by invoice_id): the latest ``updated_at`` wins and
older rows are ``*_duplicate``. Several rows sharing the latest timestamp are one version if
their content (every canonical column but updated_at) is identical: one is kept, the others are
duplicates; if their content differs, every row of the record is quarantined
(``customer_id_conflict`` / ``invoice_version_conflict``): the file order never decides. For
invoices a missing or unparseable ``updated_at`` cannot be ordered, so it ties with the latest;
for customers only valid timestamps compete (an undated row loses to a dated one). An invoice_id
under several customer_ids is ``invoice_id_conflict`` for all its rows, never merged.

Amounts are plain decimals only (``^[+-]?[0-9]+(\\.[0-9]+)?$`` after trimming ASCII
whitespace); anything else is ``amount_invalid`` with a reason naming the form (exponent,
separators, underscores, non-ASCII digits, NaN / Infinity, empty).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import polars as pl
from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies, list_currencies
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from prefect import task
from prefect.cache_policies import NO_CACHE

from data_quality.rules import QUARANTINE_SCHEMA, Rule, empty_quarantine, raw_json, split_rows
from tasks.consent import CHANNEL_KEYS, STATUS_KEYS, channel_key, naive_utc, status_key
from tasks.extract import SENTINEL_PATTERN, Extracted, hex_escape_sentinels
from tasks.phones import empty_phone_cache, join_phones, parse_phone, split_zones
from tasks.settings import CANONICAL_COLUMNS, ParsingSettings
from tasks.zones import (
    POSTAL_COUNTRIES,
    ZONE_RULE,
    _valid_set,
    _zone_tab,
    canonical_zone,
    check_zone,
    country_zones,
    phone_zones,
    postal_zones_column,
    prepare_postal_frames,
)

__all__ = [
    "CONSENT_UNCLEAR_RULES",
    "KNOWN_INVOICE_STATUSES",
    "Normalized",
    "canonical_zone",
    "country_zones",
    "invoice_owners",
    "normalize",
    "normalize_consent",
    "normalize_contact_history",
    "normalize_customers",
    "normalize_email",
    "normalize_invoices",
    "normalize_phone",
    "normalize_task",
    "parse_amounts",
    "parse_due_dates",
    "parse_utc",
]

KNOWN_INVOICE_STATUSES = frozenset(
    {"open", "partially_paid", "paid", "void", "disputed", "written_off", "refunded"}
)
CONSENT_UNCLEAR_RULES = (
    "customer_id_case_mismatch",
    "channel_unknown",
    "consent_status_unknown",
    "occurred_at_invalid",
)
"""Row rules of consent_events that leave the customer's consent unclear: the customer is
excluded ``consent_unclear`` on every channel until the row is fixed."""
CHANNELS = ("sms", "email")


@dataclass(frozen=True)
class Normalized:
    customers: pl.DataFrame
    invoices: pl.DataFrame
    consent_events: pl.DataFrame
    contact_history: pl.DataFrame
    quarantine: pl.DataFrame
    new_phones: pl.DataFrame = field(default_factory=empty_phone_cache)
    """Phone-cache rows parsed by this run (to add to the warehouse ``phone_cache``)."""
    captured_consent: pl.DataFrame | None = None
    """Consent events this project captured (inbound keywords, CRM imports: the warehouse
    ``consent_events``, :func:`with_captured_consent`); not source rows, so kept apart from
    ``consent_events`` (the run's accounting counts source rows only)."""

    @property
    def consent_for_planning(self) -> pl.DataFrame:
        """Every consent event the consent rules fold: the sources' plus the captured ones
        (what planning and the push's re-check use; ``tasks.consent.consent_state`` applies
        the rules: latest wins, opt-out wins ties, an opt-out on any channel is global)."""
        if self.captured_consent is None or self.captured_consent.height == 0:
            return self.consent_events
        return pl.concat([self.consent_events, self.captured_consent], how="diagonal_relaxed")

    def quarantined_rows(self, source: str) -> int:
        q = self.quarantine
        return q.filter((pl.col("source") == source) & (pl.col("scope") == "row")).height

    @property
    def consent_unclear(self) -> pl.DataFrame:
        """(customer_id) of every customer with a consent row that could not be read."""
        return (
            self.quarantine.filter(
                (pl.col("source") == "consent_events")
                & (pl.col("scope") == "row")
                & pl.col("rule").is_in(CONSENT_UNCLEAR_RULES)
            )
            .select(pl.col("record_key").alias("customer_id"))
            .drop_nulls()
            .unique()
            .sort("customer_id")
        )


def normalize_phone(raw: str | None, region: str | None) -> tuple[str | None, str | None, str]:
    """Return (E.164 or None, rule or None, reason) for one raw phone string.

    Missing numbers are not errors (rule None, E.164 None). A number with an extension, or one
    that phonenumbers knows is not SMS-capable (fixed line, premium rate, ...), is rejected:
    both would fail at the carrier and cost money. +1 numbers are ``fixed_or_mobile`` and
    pass (see :mod:`tasks.phones`).
    """
    return parse_phone(raw, region)[:3]


_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9]+(?:[._%+-][a-z0-9]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalize_email(raw: str | None) -> tuple[str | None, str | None, str]:
    """Return (normalized address or None, rule or None, reason); the domain is lower-cased,
    and so are the ASCII letters of the local part: a non-ASCII local part keeps its other
    letters (``str.lower`` would make 'İ' 'i̇' and 'ǅ' 'ǆ', another mailbox).

    Plain ASCII addresses take a fast path (a strict pattern whose every match email-validator
    also accepts, checked by a property test); everything else goes through email-validator.
    """
    if raw is None or not raw.strip():
        return None, None, "no e-mail address"
    address = raw.strip().lower()
    if (
        len(address) <= 254
        and _SIMPLE_EMAIL.fullmatch(address)
        and len(address.partition("@")[0]) <= 64
        # IDNA reserves "--" in label positions 3-4 (e.g. "00--0.aa"): let email-validator judge.
        and "--" not in address.partition("@")[2]
        and address.rsplit(".", 1)[1] not in SPECIAL_USE_DOMAIN_NAMES
    ):
        return address, None, ""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, "email_invalid", str(exc).split(".")[0][:120]
    local, _, domain = result.normalized.rpartition("@")
    return f"{local.translate(_ASCII_LOWER)}@{domain.lower()}", None, ""


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


_UTC_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d",
)
_PLAIN_UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


def _parse_utc_text(text: pl.Expr) -> pl.Expr:
    """Every accepted form, the first that parses wins (an explicit offset first)."""
    aware = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
    return pl.coalesce(
        aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None),
        *[text.str.to_datetime(f, strict=False, time_unit="us") for f in _UTC_FORMATS],
    )


def _parse_utc_series(text: pl.Series) -> pl.Series:
    """:func:`_parse_utc_text` on a column, the common ``YYYY-MM-DDTHH:MM:SSZ`` form parsed by
    one format: such a text has no offset (the first form gives null) and the two ``Z`` forms
    give the same instant. Only the other texts go through every form."""
    fast = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us")
    done = (text.str.contains(_PLAIN_UTC) & fast.is_not_null()).fill_null(False) | text.is_null()
    rest = (~done).arg_true()
    if rest.len() == 0:
        return fast
    parsed = pl.select(_parse_utc_text(pl.lit(text.gather(rest)))).to_series()
    return fast.scatter(rest, parsed)


def parse_utc(column: str) -> pl.Expr:
    """Parse ISO-8601-ish text to a naive UTC datetime (offsets converted, 'Z' accepted)."""
    return (
        pl.col(column)
        .str.strip_chars()
        .map_batches(_parse_utc_series, return_dtype=pl.Datetime("us"))
        .alias(column)
    )


_DATE_ONLY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _end_of_day_if_date_only(text: str, parsed: pl.Expr) -> pl.Expr:
    """``parsed`` (:func:`parse_utc` of column ``text``), moved to the last microsecond of its
    UTC day when the text is a bare date: a contact known only by its date may have been made
    at any time that day, and the frequency cap must measure from the latest of them."""
    date_only = pl.col(text).str.strip_chars().str.contains(_DATE_ONLY).fill_null(False)
    late = parsed + pl.duration(days=1) - pl.duration(microseconds=1)
    return pl.when(date_only).then(late).otherwise(parsed)


def _content(columns: Sequence[str]) -> pl.Expr:
    """A row's content: its trimmed canonical columns as one JSON string."""
    return pl.struct(
        [pl.col(c).cast(pl.String).str.strip_chars().alias(c) for c in columns]
    ).struct.json_encode()


def _with_versions(
    frame: pl.DataFrame,
    key: str,
    order: str,
    content_columns: Sequence[str],
    *,
    undated_ties: bool,
) -> pl.DataFrame:
    """Add ``_v_conflict``, ``_v_duplicate``, ``_v_reason``, ``_v_top`` (see module docstring).

    ``top`` rows are those at the latest ``order`` (with ``undated_ties``, a null ``order`` ties
    with the latest; without, it loses to any dated row). Several distinct contents among the
    top rows are a conflict; otherwise the first top row (dated before undated, then by
    source_row) is kept and the others are duplicates. Only keys with several rows are looked
    at, so the content comparison costs nothing on clean data.
    """
    many = frame.filter(pl.col(key).is_not_null() & (pl.len().over(key) > 1))
    ts = pl.col(order)
    latest = ts.max().over(key)
    if undated_ties:
        top = (ts == latest).fill_null(True)
    else:
        top = pl.when(latest.is_null()).then(True).otherwise((ts == latest).fill_null(False))
    many = many.with_columns(top.alias("_top"), _content(content_columns).alias("_content"))
    rank = pl.struct((~pl.col("_top")).alias("_a"), ts.is_null().alias("_b"), "source_row").rank(
        "ordinal"
    )
    flags = many.select(
        "source_row",
        pl.col("_content").filter(pl.col("_top")).n_unique().over(key).alias("_v_top"),
        (rank.over(key) > 1).alias("_v_duplicate"),
        pl.when(pl.col("_top"))
        .then(pl.lit("an identical row with the same latest updated_at was kept"))
        .otherwise(pl.lit("another row of the same record has a later updated_at"))
        .alias("_v_reason"),
    ).with_columns((pl.col("_v_top") > 1).alias("_v_conflict"))
    # Joined on the row numbers alone, then set beside the frame: the frame's own (wide)
    # columns are not rebuilt by the join.
    found = frame.select("source_row").join(
        flags, on="source_row", how="left", maintain_order="left"
    )
    return frame.hstack(
        found.select(
            "_v_top",
            pl.col("_v_duplicate").fill_null(False),
            "_v_reason",
            pl.col("_v_conflict").fill_null(False),
        )
    )


def _shared_rules(
    frame: pl.DataFrame,
    columns: Sequence[str],
    *,
    parsing: ParsingSettings,
    bad_encoding: str | None,
) -> list[Rule]:
    """encoding_invalid (only if extract saw undecodable bytes) and field_too_long."""
    rules: list[Rule] = []
    if bad_encoding is not None:
        text_columns = [c for c, t in frame.schema.items() if t == pl.String]
        if text_columns:
            has = {c: pl.col(c).str.contains(SENTINEL_PATTERN) for c in text_columns}
            named = pl.when(has[text_columns[0]]).then(pl.lit(text_columns[0]))
            for c in text_columns[1:]:
                named = named.when(has[c]).then(pl.lit(c))
            rules.append(
                Rule(
                    "encoding_invalid",
                    pl.format(
                        "{} holds bytes that are not valid {} (shown as \\xNN in raw_values)",
                        named.otherwise(None),
                        pl.lit(bad_encoding),
                    ),
                    pl.any_horizontal([e.fill_null(False) for e in has.values()]),
                )
            )
    limit = parsing.max_field_length
    lengths = {c: pl.col(c).str.len_chars() for c in columns}
    if lengths:
        too_long = {c: (n > limit).fill_null(False) for c, n in lengths.items()}
        first = next(iter(lengths))
        reason = pl.when(too_long[first]).then(
            pl.format("{} is {} characters long (at most {})", pl.lit(first), lengths[first], limit)
        )
        for c in list(lengths)[1:]:
            reason = reason.when(too_long[c]).then(
                pl.format("{} is {} characters long (at most {})", pl.lit(c), lengths[c], limit)
            )
        rules.append(
            Rule("field_too_long", reason.otherwise(None), pl.any_horizontal(too_long.values()))
        )
    return rules


def _escape_raw(quarantine: pl.DataFrame, bad_encoding: str | None) -> pl.DataFrame:
    """Undecodable bytes as ``\\xNN`` in raw_values (JSON: the backslash itself is escaped)."""
    if bad_encoding is None or quarantine.is_empty():
        return quarantine
    return quarantine.with_columns(
        hex_escape_sentinels(pl.col("raw_values"), json=True),
        hex_escape_sentinels(pl.col("record_key")),
    )


def _per_distinct(
    frame: pl.DataFrame, keys: list[str], fn: Any, schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """``fn(*key values)`` once per distinct ``keys`` of ``frame``: keys + ``schema`` columns."""
    distinct = frame.select(keys).unique()
    answers = [fn(*row) for row in distinct.iter_rows()]
    columns = list(zip(*answers, strict=True)) if answers else [[] for _ in schema]
    return distinct.hstack(
        pl.DataFrame(
            {n: list(c) for n, c in zip(schema, columns, strict=True)},
            schema=schema,
        )
    )


def _emails_fast(raw: pl.Expr) -> pl.Expr:
    """:func:`normalize_email`'s fast path as one expression: the lower-cased address where the
    strict pattern (and its length / IDNA / special-use checks) accepts it, else null (then
    :func:`normalize_email` decides, once per distinct value). polars trims a subset of what
    ``str.strip`` trims, and an address that matches has ASCII letters at both ends, so the
    trimmed value is the one ``str.strip`` gives."""
    address = raw.str.strip_chars().str.to_lowercase()
    parts = address.str.split_exact("@", 1)
    local, domain = parts.struct.field("field_0"), parts.struct.field("field_1")
    tld = address.str.extract(r"\.([^.]*)$", 1)
    fast = (
        address.str.contains("^(?:" + _SIMPLE_EMAIL.pattern + ")$")
        & (address.str.len_chars() <= 254)
        & (local.str.len_chars() <= 64)
        & ~domain.str.contains("--", literal=True)
        & ~tld.is_in(sorted(SPECIAL_USE_DOMAIN_NAMES))
    )
    return pl.when(fast.fill_null(False)).then(address).alias("email_out")


_NO_AT = normalize_email("no-at-sign")
"""normalize_email's answer for a value without an at-sign (email-validator's first check)."""


def _email_without_at(raw: pl.Expr) -> pl.Expr:
    """``_no_at``: true where :func:`normalize_email` answers :data:`_NO_AT` without being
    called. email-validator first splits the address at an unquoted ``@`` or ``<`` and names
    the full-width and small at-signs; a value with none of the four and an ASCII letter or
    digit (so it is not blank to ``str.strip``) fails that split and nothing else is looked
    at. Checked by a property test against normalize_email."""
    return (
        (raw.str.contains("[A-Za-z0-9]") & ~raw.str.contains("[@<\uff20\ufe6b]"))
        .fill_null(False)
        .alias("_no_at")
    )


def _table(frame: pl.DataFrame, keys: list[str], fn: Any, out: str) -> pl.DataFrame:
    """``fn(*key values)`` (a tuple of zones) once per distinct ``keys`` of ``frame``: keys +
    column ``out``, the zones as a list (built from '|'-joined text: no Python list per row)."""
    distinct = frame.select(keys).unique()
    values = ["|".join(fn(*row)) for row in distinct.iter_rows()]
    return distinct.with_columns(
        split_zones(pl.lit(pl.Series(out, values, dtype=pl.String))).alias(out)
    )


def _resolved_zones(frame: pl.DataFrame) -> list[pl.Series]:
    """``time_zones`` and ``zone_source`` for every row of ``frame`` (columns _zone,
    _country, postal_code, zones, calling_code): :func:`tasks.zones.resolve_zones` taken apart
    into its signals, each asked once per distinct value of its own inputs (postal codes only
    where no preferred zone answered and the country has a postal table), then the first
    signal that answers is picked per row, as ``resolve_zones`` does."""
    zones = pl.List(pl.String())
    need_postal = frame.filter(
        pl.col("_zone").is_null()
        & pl.col("postal_code").is_not_null()
        & pl.col("_country").is_in(sorted(POSTAL_COUNTRIES))
    )

    def by_phone(key: str | None) -> tuple[str, ...]:
        return phone_zones(tuple(key.split("|")) if key else ())

    def by_country(country: str | None) -> tuple[str, ...]:
        return _valid_set(country_zones(country)) if country else ()

    keyed = frame.select(
        "_zone",
        "_country",
        "postal_code",
        pl.col("zones").list.join("|").alias("_zkey"),
    )
    pairs = need_postal.select("_country", "postal_code").unique()
    postal_t = pairs.with_columns(
        split_zones(pl.lit(postal_zones_column(pairs, "_country", "postal_code"))).alias("_pz")
    )
    phones_t = _table(keyed, ["_zkey"], by_phone, "_hz")
    country_t = _table(keyed, ["_country"], by_country, "_cz")
    joined = (
        keyed.with_row_index("_r")
        .join(postal_t, on=["_country", "postal_code"], how="left", nulls_equal=True)
        .join(phones_t, on="_zkey", how="left", nulls_equal=True)
        .join(country_t, on="_country", how="left", nulls_equal=True)
        .sort("_r")
    )
    has = {c: pl.col(c).list.len().fill_null(0) > 0 for c in ("_pz", "_hz", "_cz")}
    picked = joined.select(
        pl.when(pl.col("_zone").is_not_null())
        .then(pl.concat_list(pl.col("_zone")))
        .when(has["_pz"])
        .then(pl.col("_pz"))
        .when(has["_hz"])
        .then(pl.col("_hz"))
        .when(has["_cz"])
        .then(pl.col("_cz"))
        .otherwise(pl.lit([], zones))
        .alias("time_zones"),
        pl.when(pl.col("_zone").is_not_null())
        .then(pl.lit("preferred"))
        .when(has["_pz"])
        .then(pl.lit("postal_code"))
        .when(has["_hz"])
        .then(pl.lit("phone"))
        .when(has["_cz"])
        .then(pl.lit("country"))
        .otherwise(pl.lit("unknown"))
        .alias("zone_source"),
    )
    return [picked["time_zones"], picked["zone_source"]]


_ISSUE_SCHEMA = {
    "source_row": pl.Int32(),
    "record_key": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
}


def _contact_fields(
    accepted: pl.DataFrame,
    *,
    phone_cache: pl.DataFrame | None,
    workers: int | None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(contact columns in ``accepted``'s order, field issues, new phone-cache rows).

    Every Python call is made once per distinct value (phone: once per distinct (raw, region)
    not already in ``phone_cache``, in parallel; e-mail, zone checks and zone resolution: once
    per distinct input), then joined back: no per-row Python.
    """
    base = accepted.select(
        "source_row",
        "customer_id",
        "phone",
        "email",
        "_country",
        "postal_code",
        "preferred_timezone",
    ).with_row_index("_i")
    frame, new_phones = join_phones(base, "phone", "_country", phone_cache, workers=workers)
    frame = frame.with_columns(_emails_fast(pl.col("email")), _email_without_at(pl.col("email")))
    slow = frame.filter(
        pl.col("email_out").is_null() & pl.col("email").is_not_null() & ~pl.col("_no_at")
    )
    emails = _per_distinct(
        slow,
        ["email"],
        normalize_email,
        {"_e_out": pl.String(), "email_rule": pl.String(), "email_reason": pl.String()},
    )
    frame = frame.join(emails, on="email", how="left", nulls_equal=True).with_columns(
        pl.coalesce("email_out", "_e_out").alias("email_out"),
        pl.when("_no_at").then(pl.lit(_NO_AT[1])).otherwise("email_rule").alias("email_rule"),
        pl.when("_no_at").then(pl.lit(_NO_AT[2])).otherwise("email_reason").alias("email_reason"),
    )
    checks = _per_distinct(
        frame,
        ["preferred_timezone"],
        check_zone,
        {"_zone": pl.String(), "zone_reason": pl.String()},
    )
    frame = frame.join(checks, on="preferred_timezone", how="left", nulls_equal=True)
    frame = frame.with_columns(_resolved_zones(frame)).sort("_i")
    issues = pl.concat(
        [
            frame.filter(pl.col("rule").is_not_null()).select(
                "_i",
                pl.lit(0).alias("_k"),
                "rule",
                pl.format("phone: {}", pl.col("reason")).alias("reason"),
            ),
            frame.filter(pl.col("email_rule").is_not_null()).select(
                "_i",
                pl.lit(1).alias("_k"),
                pl.col("email_rule").alias("rule"),
                pl.format("email: {}", pl.col("email_reason")).alias("reason"),
            ),
            frame.filter(pl.col("zone_reason").is_not_null()).select(
                "_i",
                pl.lit(2).alias("_k"),
                pl.lit(ZONE_RULE).alias("rule"),
                pl.format("preferred_timezone: {}", pl.col("zone_reason")).alias("reason"),
            ),
        ]
    ).sort("_i", "_k")
    issues = issues.join(
        frame.select("_i", "source_row", pl.col("customer_id").alias("record_key")),
        on="_i",
        how="left",
    ).select(*_ISSUE_SCHEMA)
    contacts = frame.select(
        pl.col("e164").alias("phone_e164"),
        pl.col("line").alias("phone_line"),
        pl.col("number_type").alias("phone_type"),
        pl.col("email_out").alias("email"),
        "time_zones",
        "zone_source",
    )
    return contacts, issues.cast(_ISSUE_SCHEMA), new_phones  # type: ignore[arg-type]


def _per_distinct_value(column: pl.Expr, fn: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """``fn(column)`` (an elementwise string expression) computed once per distinct value of
    the column and mapped back onto every row: the same values, but the regex work runs on a
    handful of spellings (channels, statuses) instead of on every row."""

    def apply(values: pl.Series) -> pl.Series:
        distinct = values.unique()
        answers = pl.select(fn(pl.lit(distinct))).to_series()
        return values.replace_strict(distinct, answers, return_dtype=answers.dtype)

    return column.map_batches(apply, return_dtype=pl.String)


def _channel_name(raw: pl.Expr) -> pl.Expr:
    """``sms`` / ``email`` read through the consent channel table (``E-mail``, ``Text``), any
    other value kept in its normalised form (it names no channel this pipeline sends on), a
    blank one null: the reading of consent rows' channels and of ``preferred_channel``."""

    def name(value: pl.Expr) -> pl.Expr:
        key = channel_key(value.str.strip_chars())
        return pl.coalesce(key.replace_strict(CHANNEL_KEYS, default=None), key).replace("", None)

    return _per_distinct_value(raw, name)


def normalize_customers(
    raw: pl.DataFrame,
    *,
    parsing: ParsingSettings | None = None,
    bad_encoding: str | None = None,
    phone_cache: pl.DataFrame | None = None,
    workers: int | None = None,
    return_new_phones: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate customers: (accepted customers, quarantine rows of both scopes).

    ``bad_encoding`` is the source's encoding when extract found undecodable bytes in it.
    ``phone_cache`` (:data:`tasks.phones.PHONE_CACHE_SCHEMA`) answers phones already parsed;
    the rest are parsed once per distinct (raw, country), ``workers`` processes (default: the
    cores). With ``return_new_phones`` a third item is returned: the newly parsed cache rows.
    """
    parsing = parsing or ParsingSettings()
    raw_cols = [c for c in CANONICAL_COLUMNS["customers"] if c in raw.columns]
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars().replace("", None),
        pl.col("country").str.strip_chars().str.to_uppercase().replace("", None).alias("_country"),
        parse_utc("updated_at").alias("_updated_at"),
    )
    known_countries = list(_zone_tab())
    frame = _with_versions(
        frame,
        "customer_id",
        "_updated_at",
        [c for c in raw_cols if c != "updated_at"],
        undated_ties=False,
    )
    rules = [
        *_shared_rules(raw, raw_cols, parsing=parsing, bad_encoding=bad_encoding),
        Rule("customer_id_missing", "customer_id is empty", pl.col("customer_id").is_null()),
        Rule(
            "customer_id_conflict",
            pl.format(
                "{} rows of this customer_id share the latest updated_at and differ in content",
                pl.col("_v_top"),
            ),
            pl.col("_v_conflict"),
        ),
        Rule("customer_id_duplicate", pl.col("_v_reason"), pl.col("_v_duplicate")),
        Rule("country_missing", "country is empty", pl.col("_country").is_null()),
        Rule(
            "country_invalid",
            "country is not an ISO 3166-1 alpha-2 code",
            ~pl.col("_country").is_in(known_countries),
        ),
    ]
    accepted, quarantine = split_rows(
        frame,
        rules,
        source="customers",
        key="customer_id",
        raw_columns=raw_cols,
        reasons_per_row=True,
    )
    quarantine = _escape_raw(quarantine, bad_encoding)
    contacts, field_issues, new_phones = _contact_fields(
        accepted, phone_cache=phone_cache, workers=workers
    )
    name = pl.coalesce(
        pl.col("full_name").str.strip_chars().replace("", None),
        pl.concat_str(
            [pl.col("first_name").str.strip_chars(), pl.col("last_name").str.strip_chars()],
            separator=" ",
            ignore_nulls=True,
        ).replace("", None),
    )
    customers = accepted.select(
        "source_row",
        "customer_id",
        name.alias("full_name"),
        pl.coalesce(
            pl.col("first_name").str.strip_chars().replace("", None),
            name.str.split(" ").list.first(),
        ).alias("first_name"),
        contacts["phone_e164"],
        contacts["phone_line"],
        contacts["phone_type"],
        contacts["email"],
        pl.col("_country").alias("country"),
        pl.col("postal_code"),
        contacts["time_zones"],
        contacts["zone_source"],
        pl.col("locale").str.strip_chars().replace("", None),
        _channel_name(pl.col("preferred_channel")).alias("preferred_channel"),
        pl.col("_updated_at").alias("updated_at"),
    )
    if field_issues.height:
        issues = field_issues
        raw_by_row = raw.join(issues.select("source_row").unique(), on="source_row", how="semi")
        raw_by_row = raw_by_row.select("source_row", raw_json(raw_cols).alias("raw_values"))
        fields = issues.join(raw_by_row, on="source_row", how="left").select(
            pl.lit("customers").alias("source"),
            "source_row",
            "record_key",
            pl.lit("field").alias("scope"),
            "rule",
            "reason",
            "raw_values",
        )
        quarantine = pl.concat([quarantine, _escape_raw(fields, bad_encoding)])
    if return_new_phones:
        return customers, quarantine, new_phones  # type: ignore[return-value]
    return customers, quarantine


_ASCII_SPACE = " \t\n\r\x0b\x0c"
_PLAIN_AMOUNT = r"^[+-]?[0-9]+(\.[0-9]+)?$"
_AMOUNT_FORMS: tuple[tuple[str, str], ...] = (
    (r"(?i)^[+-]?(s?nan|inf|infinity)$", "amount_due is not a finite number (NaN / Infinity)"),
    (r"[\p{Nd}&&[^0-9]]", "amount_due has non-ASCII digits; only 0-9 are accepted"),
    (
        r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+$",
        "amount_due is in exponent form (like 1e12); write the plain decimal",
    ),
    (r"[0-9]_+[0-9]", "amount_due has underscores between digits (like 1_000)"),
    (
        r"^[+-]?[0-9]+([,.' \u00a0\u202f\u2009][0-9]+)+$",
        "amount_due has digit-group or decimal-comma separators (like 1,234.50, 1.234,50, "
        "1 234 or 1'234); write a plain decimal like 1234.50",
    ),
)
AMOUNT_RULES = ("amount_invalid", "amount_negative", "amount_precision", "amount_too_large")
_AMOUNT_OTHER = "amount_due is not a plain decimal number (digits, optional sign and point)"


def _amount_minor(raw: str | None, currency: str | None) -> tuple[int | None, str | None]:
    """Kept for callers outside normalize: one amount, default limits (see parse_amounts)."""
    text = raw.strip(_ASCII_SPACE) if raw is not None else None
    if text is None or not re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", text):
        return None, "amount_invalid"
    digits = get_currency_precision(currency) if currency else 2
    return _plain_amount(text, digits, ParsingSettings().max_amount)


_INT64_MAX = 2**63 - 1


def _plain_amount(text: str, digits: int, max_amount: Decimal) -> tuple[int | None, str | None]:
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        return None, "amount_invalid"
    if value < 0:
        return None, "amount_negative"
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        return None, "amount_precision"
    if value > max_amount or minor > _INT64_MAX:
        return None, "amount_too_large"
    return int(minor), None


def _amount_forms(text: pl.Expr) -> pl.Expr:
    """Why each trimmed ``text`` is not a plain decimal (null where it is one). The form
    patterns run only on the texts the plain pattern rejects (few): every branch of a
    when/then chain is evaluated on the whole column, so the chain runs on those rows only."""

    def forms(values: pl.Series) -> pl.Series:
        plain = values.str.contains(_PLAIN_AMOUNT).fill_null(False)
        rest = (~plain).arg_true()
        out = pl.repeat(None, values.len(), dtype=pl.String, eager=True).alias(values.name)
        if rest.len() == 0:
            return out
        x = pl.col("_t")
        form = pl.when(x.is_null() | (x == "")).then(pl.lit("amount_due is empty"))
        for pattern, reason in _AMOUNT_FORMS:
            form = form.when(x.str.contains(pattern)).then(pl.lit(reason))
        found = pl.DataFrame({"_t": values.gather(rest)}).select(
            form.otherwise(pl.lit(_AMOUNT_OTHER))
        )
        return out.scatter(rest, found.to_series())

    return text.map_batches(forms, return_dtype=pl.String)


def parse_amounts(
    amount: pl.Expr, currency: pl.Expr, frame: pl.DataFrame, *, max_amount: Decimal
) -> pl.DataFrame:
    """Columns ``_amount_minor`` (Int64), ``_amount_rule`` and ``_amount_reason`` for ``frame``.

    The form is classified by regex in polars, and so are plain values (sign, precision, minor
    units, the limit); Decimal runs only for plain values with more than 15 integer digits or a
    currency with more than 3 decimals, once per distinct value and currency. ``currency`` must
    be a valid ISO 4217 code or null (then 2 decimals are assumed).
    """
    tagged = frame.select(
        amount.str.strip_chars(_ASCII_SPACE).alias("_text"), currency.alias("_cur")
    ).with_columns(_amount_forms(pl.col("_text")).alias("_form"))
    currencies = [c for c in tagged["_cur"].unique().to_list() if c is not None]
    precision = {c: get_currency_precision(c) for c in currencies}
    digits = pl.col("_cur").replace_strict(precision, default=2, return_dtype=pl.Int32)
    # Plain decimals in polars: sign, integer and fraction digits as text. Negative, precision
    # and (for up to 15 integer digits and 3 decimals) the exact minor units and the limit are
    # decided here; any other plain value (huge, or a currency with 4 decimals) goes through
    # Decimal once per distinct (value, currency).
    # Each text operation runs once, into its own column (an expression used in several
    # places is evaluated in each).
    parts = pl.col("_text").str.strip_chars_start("+-").str.split_exact(".", 1)
    split = tagged.with_columns(digits.alias("_d"), parts.alias("_parts")).with_columns(
        pl.col("_parts").struct.field("field_0").str.strip_chars_start("0").alias("_whole"),
        pl.col("_parts")
        .struct.field("field_1")
        .fill_null("")
        .str.strip_chars_end("0")
        .alias("_frac"),
    )
    whole, fraction = pl.col("_whole"), pl.col("_frac")
    split = split.with_columns(
        whole.str.len_chars().alias("_wl"),
        fraction.str.len_chars().alias("_fl"),
        (pl.col("_text").str.starts_with("-") & ((whole != "") | (fraction != ""))).alias("_neg"),
    )
    negative = pl.col("_neg")
    short = pl.col("_fl") <= pl.col("_d")
    fast = (pl.col("_wl") <= 15) & (pl.col("_d") <= 3)
    pad = pl.col("_d") - pl.col("_fl")
    scale = pl.when(pl.col("_d") == 0).then(1).when(pl.col("_d") == 1).then(10)
    scale = scale.when(pl.col("_d") == 2).then(100).otherwise(1000)
    shift = pl.when(pad == 0).then(1).when(pad == 1).then(10).when(pad == 2).then(100)
    shift = shift.otherwise(1000)
    # Used only where the text is plain (digits only in whole and fraction): an empty part is 0.
    minor = whole.cast(pl.Int64, strict=False).fill_null(0) * scale.cast(pl.Int64) + (
        fraction.cast(pl.Int64, strict=False).fill_null(0) * shift.cast(pl.Int64)
    )
    limits = {
        d: min(int(max_amount.scaleb(d).to_integral_value(ROUND_FLOOR)), _INT64_MAX)
        for d in (0, 1, 2, 3)
    }
    limit = pl.col("_d").replace_strict(limits, default=_INT64_MAX, return_dtype=pl.Int64)
    split = split.with_columns(
        (pl.col("_form").is_null() & ~negative & short).alias("_ok"), minor.alias("_m")
    )
    plain = split.select(
        "_text",
        "_cur",
        "_form",
        pl.when(pl.col("_form").is_not_null())
        .then(None)
        .when(negative)
        .then(pl.lit("amount_negative"))
        .when(~short)
        .then(pl.lit("amount_precision"))
        .when(fast & (pl.col("_m") > limit))
        .then(pl.lit("amount_too_large"))
        .alias("_rule"),
        pl.when(pl.col("_ok") & fast).then(pl.col("_m")).alias("_minor"),
        (pl.col("_ok") & ~fast).alias("_slow"),
    )
    slow = plain.filter(pl.col("_slow")).select("_text", "_cur").unique()
    if slow.height:
        answers = [
            _plain_amount(v, precision.get(c, 2) if c else 2, max_amount)
            for v, c in slow.iter_rows()
        ]
        slow = slow.with_columns(
            pl.Series("_m2", [a[0] for a in answers], dtype=pl.Int64),
            pl.Series("_r2", [a[1] for a in answers], dtype=pl.String),
        )
        plain = plain.join(
            slow, on=["_text", "_cur"], how="left", nulls_equal=True, maintain_order="left"
        ).with_columns(
            pl.coalesce("_minor", "_m2").alias("_minor"),
            pl.coalesce("_rule", "_r2").alias("_rule"),
        )
    reasons = {
        "amount_negative": "amount_due is negative",
        "amount_precision": "amount_due has more decimals than its currency allows",
        "amount_too_large": f"amount_due is above the largest accepted amount ({max_amount})",
    }
    return plain.select(
        pl.when(pl.col("_rule").is_null()).then(pl.col("_minor")).alias("_amount_minor"),
        pl.when(pl.col("_form").is_not_null())
        .then(pl.lit("amount_invalid"))
        .otherwise(pl.col("_rule"))
        .alias("_amount_rule"),
        pl.coalesce(
            pl.col("_form"),
            pl.col("_rule").replace_strict(reasons, default=None, return_dtype=pl.String),
        ).alias("_amount_reason"),
    )


def _strict_date(text: str, formats: Sequence[str]) -> date | None:
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        # Round trip: strptime accepts 2026-3-1 for %Y-%m-%d and a 2-digit year for %Y;
        # formatting back (with a 4-digit %Y, whatever the platform) must give the text again.
        if parsed.strftime(fmt.replace("%Y", f"{parsed.year:04d}")) == text:
            return parsed.date()
    return None


def parse_due_dates(values: pl.Series, formats: Sequence[str]) -> pl.Series:
    """Dates of ``values`` (trimmed text) by the first strptime format that matches exactly."""
    mapping = {v: _strict_date(v, formats) for v in values.drop_nulls().unique().to_list()}
    return values.replace_strict(mapping, default=None, return_dtype=pl.Date)


def invoice_owners(invoices: pl.DataFrame) -> pl.DataFrame:
    """(invoice_id, _owners, _owner_ids): the distinct customer_ids each invoice_id appears
    under (trimmed ids). Computed over *all* partitions when a run is partitioned."""
    frame = invoices.select(
        pl.col("invoice_id").str.strip_chars().replace("", None),
        pl.col("customer_id").str.strip_chars().replace("", None),
    )
    frame = frame.filter(pl.col("invoice_id").is_not_null() & pl.col("customer_id").is_not_null())
    # One owner (nearly every invoice): the id list is that id; the sorted first five are
    # only built for the invoice_ids with several owners.
    owners = frame.group_by("invoice_id").agg(
        pl.col("customer_id").n_unique().alias("_owners"),
        pl.col("customer_id").min().alias("_owner_ids"),
    )
    shared = owners.filter(pl.col("_owners") > 1).select("invoice_id")
    if shared.height == 0:
        return owners
    listed = (
        frame.join(shared, on="invoice_id", how="semi")
        .group_by("invoice_id")
        .agg(pl.col("customer_id").unique().sort().head(5).str.join(", ").alias("_listed"))
    )
    return (
        owners.join(listed, on="invoice_id", how="left", maintain_order="left")
        .with_columns(pl.coalesce("_listed", "_owner_ids").alias("_owner_ids"))
        .drop("_listed")
    )


@functools.lru_cache(maxsize=64)
def currencies_in_use(day: date) -> frozenset[str]:
    """ISO 4217 codes some territory uses on ``day`` (CLDR, through babel), legal tender or not
    (CLF, the Chilean unit bills are stated in): a withdrawn currency (HRK since 2023, DEM) and
    the codes that are no money (XXX, XTS, the metals) are not among them."""
    return frozenset(
        code
        for territory in get_global("territory_currencies")
        if territory != "ZZ"  # CLDR's "unknown region": the metals, SDR, XTS, XXX
        for code in get_territory_currencies(territory, start_date=day, non_tender=True)
        if code != "XXX"  # "no currency" (Antarctica, Clipperton)
    )


def normalize_invoices(
    raw: pl.DataFrame,
    customers: pl.DataFrame,
    customer_ids_seen: pl.Series,
    *,
    parsing: ParsingSettings | None = None,
    bad_encoding: str | None = None,
    invoice_owner_table: pl.DataFrame | None = None,
    as_of: datetime | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate invoices against the accepted customers: (accepted, quarantine rows).

    ``customer_ids_seen`` holds every customer_id present in the raw customers, so an invoice
    whose customer was quarantined is told apart from one whose customer does not exist. An
    invoice is (customer_id, invoice_id); see the module docstring for versions and conflicts.
    With ``as_of`` (naive UTC) the currency must be in use on its date
    (:func:`currencies_in_use`); without, any code babel knows passes.
    """
    parsing = parsing or ParsingSettings()
    raw_cols = [c for c in CANONICAL_COLUMNS["invoices"] if c in raw.columns]
    known = list(list_currencies())
    currencies = sorted(currencies_in_use(as_of.date())) if as_of is not None else known
    frame = raw.with_columns(
        pl.col("invoice_id").str.strip_chars().replace("", None),
        pl.col("customer_id").str.strip_chars().replace("", None),
        pl.col("currency").str.strip_chars().str.to_uppercase().alias("_currency"),
        pl.col("status").str.strip_chars().str.to_lowercase().alias("_status"),
        pl.col("due_date").str.strip_chars().alias("_due_text"),
        parse_utc("updated_at").alias("_updated_at"),
        parse_utc("paid_at").alias("_paid_at"),
        pl.col("paid_at").str.strip_chars().replace("", None).alias("_paid_text"),
    )
    due = parse_due_dates(frame["_due_text"], parsing.due_date_formats)
    frame = frame.with_columns(due.alias("_due"))
    # An empty cell is null, and a null is_in is null: filled, so it fails the rule (fail closed).
    currency_ok = pl.col("_currency").is_in(currencies).fill_null(False)
    amounts = parse_amounts(
        pl.col("amount_due"),
        pl.when(currency_ok).then(pl.col("_currency")),
        frame,
        max_amount=parsing.max_amount,
    )
    frame = frame.hstack(amounts)
    owners = invoice_owners(frame) if invoice_owner_table is None else invoice_owner_table
    frame = frame.hstack(
        frame.select("invoice_id")
        .join(owners, on="invoice_id", how="left", maintain_order="left")
        .drop("invoice_id")
    )
    frame = _with_versions(
        frame,
        "invoice_id",
        "_updated_at",
        [c for c in raw_cols if c != "updated_at"],
        undated_ties=True,
    )
    accepted_ids = customers["customer_id"]
    formats = ", ".join(parsing.due_date_formats)
    rules = [
        *_shared_rules(raw, raw_cols, parsing=parsing, bad_encoding=bad_encoding),
        Rule("invoice_id_missing", "invoice_id is empty", pl.col("invoice_id").is_null()),
        Rule(
            "invoice_id_conflict",
            pl.format(
                "invoice_id appears under {} different customer_ids ({}); none of its rows "
                "is trusted",
                pl.col("_owners"),
                pl.col("_owner_ids"),
            ),
            pl.col("_owners") > 1,
        ),
        Rule(
            "invoice_version_conflict",
            pl.format(
                "{} versions of this invoice share the latest (or no) updated_at and differ in "
                "content; none of its rows is trusted",
                pl.col("_v_top"),
            ),
            pl.col("_v_conflict"),
        ),
        Rule("invoice_id_duplicate", pl.col("_v_reason"), pl.col("_v_duplicate")),
        Rule(
            "customer_quarantined",
            "the invoice's customer row was quarantined",
            pl.col("customer_id").is_in(customer_ids_seen.implode())
            & ~pl.col("customer_id").is_in(accepted_ids.implode()),
        ),
        Rule(
            "customer_unknown",
            "no customer row has this customer_id",
            pl.col("customer_id").is_null() | ~pl.col("customer_id").is_in(accepted_ids.implode()),
        ),
        Rule(
            "currency_invalid",
            pl.when(pl.col("_currency").is_null())
            .then(pl.lit("currency is empty"))
            .when(pl.col("_currency").is_in(known))
            .then(
                pl.format(
                    "currency {} is not in use on the run date (withdrawn, or no money)",
                    pl.col("_currency"),
                )
            )
            .otherwise(pl.lit("currency is not an ISO 4217 code")),
            ~currency_ok,
        ),
        *[
            Rule(name, pl.col("_amount_reason"), pl.col("_amount_rule") == name)
            for name in AMOUNT_RULES
        ],
        Rule(
            "due_date_invalid",
            f"due_date does not match an accepted format ({formats})",
            pl.col("_due").is_null(),
        ),
        Rule(
            "status_unknown",
            f"status is not one of {', '.join(sorted(KNOWN_INVOICE_STATUSES))}",
            ~pl.col("_status").is_in(list(KNOWN_INVOICE_STATUSES)).fill_null(False),
        ),
        Rule(
            "paid_at_invalid",
            "paid_at is present but not an ISO-8601 timestamp",
            pl.col("_paid_text").is_not_null() & pl.col("_paid_at").is_null(),
        ),
    ]
    accepted, quarantine = split_rows(
        frame,
        rules,
        source="invoices",
        key="invoice_id",
        raw_columns=raw_cols,
        reasons_per_row=True,
    )
    quarantine = _escape_raw(quarantine, bad_encoding)
    invoices = accepted.select(
        "source_row",
        "invoice_id",
        "customer_id",
        pl.col("_amount_minor").alias("amount_due_minor"),
        pl.col("_currency").alias("currency"),
        pl.col("_due").alias("due_date"),
        pl.col("_status").alias("status"),
        pl.col("_paid_at").alias("paid_at"),
        pl.col("_updated_at").alias("updated_at"),
        *[c for c in raw.columns if c not in CANONICAL_COLUMNS["invoices"] and c != "source_row"],
    )
    return invoices, quarantine


_FUTURE_REASONS = {
    "opt_in": "opt-in dated after the run: ignored",
    "opt_out": "opt-out dated after the run: counted as an opt-out now",
}


def normalize_consent(
    raw: pl.DataFrame,
    customer_ids: pl.Series,
    *,
    as_of: datetime | None = None,
    parsing: ParsingSettings | None = None,
    bad_encoding: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate consent events: (accepted events, quarantine rows of both scopes).

    Channel and status spellings are read through ``tasks.consent``'s tables; a channel name
    outside the table is kept in its normalised form (an opt-out there is still global). A
    null or blank channel, a status outside the table or an unreadable ``occurred_at`` is a
    row quarantine (:data:`CONSENT_UNCLEAR_RULES`). ``date_only`` marks an event dated by a
    bare date (``2026-11-01``, read as its midnight UTC): the fold ranks such an opt-out at the
    end of its day (see ``tasks.consent.consent_state``). An accepted event dated after ``as_of``
    (naive UTC) is flagged ``after_as_of`` and noted (``scope='field'``, rule
    ``consent_in_future``): a future opt-in grants nothing, a future opt-out counts now.
    """
    parsing = parsing or ParsingSettings()
    raw_cols = [c for c in CANONICAL_COLUMNS["consent_events"] if c in raw.columns]
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars(),
        _channel_name(pl.col("channel")).alias("_channel"),
        _per_distinct_value(
            pl.col("status"),
            lambda v: status_key(v).replace_strict(
                STATUS_KEYS, default=None, return_dtype=pl.String
            ),
        ).alias("_status"),
        parse_utc("occurred_at").alias("_occurred_at"),
    )
    # A row whose customer_id names an accepted customer only when case is ignored ('c-1' for
    # 'C-1'; a case-insensitive CRM export): whose consent it is cannot be told, so that
    # customer's consent is unclear (record_key is the customer's id), never silently dropped.
    known = pl.col("customer_id").is_in(customer_ids.implode())
    folds = (
        pl.DataFrame({"_match": customer_ids.cast(pl.String)})
        .with_columns(pl.col("_match").str.to_lowercase().alias("_fold"))
        .filter(pl.len().over("_fold") == 1)
    )
    frame = frame.with_columns(pl.col("customer_id").str.to_lowercase().alias("_fold")).join(
        folds, on="_fold", how="left", maintain_order="left"
    )
    mismatch = (~known & pl.col("_match").is_not_null()).fill_null(False)
    frame = frame.with_columns(
        pl.when(mismatch).then(pl.col("_match")).otherwise(pl.col("customer_id")).alias("_key")
    )
    rules = [
        *_shared_rules(raw, raw_cols, parsing=parsing, bad_encoding=bad_encoding),
        Rule(
            "customer_id_case_mismatch",
            pl.format(
                "customer_id matches customer {} only when case is ignored; that customer's "
                "consent is unclear until the row is fixed",
                pl.col("_match"),
            ),
            mismatch,
        ),
        Rule(
            "customer_unknown",
            "no accepted customer has this customer_id",
            pl.col("customer_id").is_null() | ~pl.col("customer_id").is_in(customer_ids.implode()),
        ),
        Rule(
            "channel_unknown",
            "channel is empty",
            pl.col("_channel").is_null(),
        ),
        Rule(
            "consent_status_unknown",
            "status is not a known spelling of opt_in or opt_out",
            pl.col("_status").is_null(),
        ),
        Rule(
            "occurred_at_invalid",
            "occurred_at is not an ISO-8601 timestamp",
            pl.col("_occurred_at").is_null(),
        ),
    ]
    accepted, quarantine = split_rows(
        frame,
        rules,
        source="consent_events",
        key="_key",
        raw_columns=raw_cols,
        reasons_per_row=True,
    )
    quarantine = _escape_raw(quarantine, bad_encoding)
    future = (
        pl.col("_occurred_at") > naive_utc(as_of) if as_of is not None else pl.lit(False)
    ).fill_null(False)
    events = accepted.select(
        "source_row",
        "customer_id",
        pl.col("_channel").alias("channel"),
        pl.col("_status").alias("status"),
        pl.col("source").str.strip_chars().str.to_lowercase(),
        pl.col("_occurred_at").alias("occurred_at"),
        future.alias("after_as_of"),
        pl.col("occurred_at").str.strip_chars().str.contains(_DATE_ONLY).alias("date_only"),
    )
    notes = events.filter(pl.col("after_as_of"))
    if notes.height:
        raw_by_row = raw.join(notes.select("source_row"), on="source_row", how="semi").select(
            "source_row", raw_json(raw_cols).alias("raw_values")
        )
        fields = notes.join(raw_by_row, on="source_row", how="left").select(
            pl.lit("consent_events").alias("source"),
            pl.col("source_row").cast(pl.Int32),
            pl.col("customer_id").alias("record_key"),
            pl.lit("field").alias("scope"),
            pl.lit("consent_in_future").alias("rule"),
            pl.col("status")
            .replace_strict(_FUTURE_REASONS, return_dtype=pl.String)
            .alias("reason"),
            "raw_values",
        )
        quarantine = pl.concat([quarantine, fields.cast(QUARANTINE_SCHEMA)])  # type: ignore[arg-type]
    return events, quarantine


def normalize_contact_history(
    raw: pl.DataFrame,
    customer_ids: pl.Series,
    *,
    parsing: ParsingSettings | None = None,
    bad_encoding: str | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate contact history made outside this pipeline: (accepted, quarantine rows).

    ``invoice_id`` (optional) names the invoice an attempt was about; null when absent. An
    attempt dated by a bare date is placed at the last moment of that UTC day (the frequency
    cap then measures from the latest time it may have happened).
    """
    parsing = parsing or ParsingSettings()
    if "invoice_id" not in raw.columns:
        raw = raw.with_columns(pl.lit(None, pl.String).alias("invoice_id"))
    raw_cols = [c for c in CANONICAL_COLUMNS["contact_history"] if c in raw.columns]
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars(),
        pl.col("invoice_id").str.strip_chars().replace("", None).alias("_invoice_id"),
        pl.col("channel").str.strip_chars().str.to_lowercase().alias("_channel"),
        parse_utc("attempted_at").alias("_attempted_at"),
    )
    frame = frame.with_columns(
        _end_of_day_if_date_only("attempted_at", pl.col("_attempted_at")).alias("_attempted_at")
    )
    rules = [
        *_shared_rules(raw, raw_cols, parsing=parsing, bad_encoding=bad_encoding),
        Rule(
            "customer_unknown",
            "no accepted customer has this customer_id",
            pl.col("customer_id").is_null() | ~pl.col("customer_id").is_in(customer_ids.implode()),
        ),
        Rule(
            "attempted_at_invalid",
            "attempted_at is not an ISO-8601 timestamp",
            pl.col("_attempted_at").is_null(),
        ),
    ]
    accepted, quarantine = split_rows(
        frame,
        rules,
        source="contact_history",
        key="customer_id",
        raw_columns=raw_cols,
        reasons_per_row=True,
    )
    quarantine = _escape_raw(quarantine, bad_encoding)
    return (
        accepted.select(
            "source_row",
            "customer_id",
            pl.col("_channel").alias("channel"),
            pl.col("_attempted_at").alias("attempted_at"),
            pl.col("outcome"),
            pl.col("_invoice_id").alias("invoice_id"),
        ),
        quarantine,
    )


_PREPARE_POSTAL_ROWS = 50_000
"""From this many customers on, :func:`normalize` loads the postal tables in the background
from its start (a small run loads them only if a postal code asks for them)."""


def normalize(
    extracted: Extracted,
    *,
    as_of: datetime | None = None,
    parsing: ParsingSettings | None = None,
    phone_cache: pl.DataFrame | None = None,
    workers: int | None = None,
    invoice_owner_table: pl.DataFrame | None = None,
) -> Normalized:
    """Normalize every input of one run (``parsing``: the defaults when None).

    ``invoice_owner_table`` (:func:`invoice_owners` of every partition's invoices) lets a
    partition of a partitioned run see invoice_id conflicts across partitions.
    ``phone_cache`` holds phones parsed by earlier runs (the warehouse ``phone_cache``); the
    values it lacks are parsed (``workers`` processes) and returned in ``Normalized.new_phones``.

    ``as_of`` (naive UTC) is the run's time: consent dated after it is noted, and a future
    opt-in grants nothing (paid_at against the run time is decided in eligibility).
    """
    parsing = parsing or ParsingSettings()
    frames = extracted.frames
    bad = extracted.decode_errors
    if frames["customers"].height >= _PREPARE_POSTAL_ROWS:
        prepare_postal_frames()  # the ZIP table loads while polars works on the first steps
    customers, q_customers, new_phones = normalize_customers(  # type: ignore[misc]
        frames["customers"],
        parsing=parsing,
        bad_encoding=bad.get("customers"),
        phone_cache=phone_cache,
        workers=workers,
        return_new_phones=True,
    )
    seen = frames["customers"]["customer_id"].str.strip_chars().drop_nulls().unique()
    invoices, q_invoices = normalize_invoices(
        frames["invoices"],
        customers,
        seen,
        parsing=parsing,
        bad_encoding=bad.get("invoices"),
        invoice_owner_table=invoice_owner_table,
        as_of=as_of,
    )
    ids = customers["customer_id"]
    consent, q_consent = normalize_consent(
        frames["consent_events"],
        ids,
        as_of=as_of,
        parsing=parsing,
        bad_encoding=bad.get("consent_events"),
    )
    history, q_history = normalize_contact_history(
        frames["contact_history"], ids, parsing=parsing, bad_encoding=bad.get("contact_history")
    )
    quarantine = pl.concat([empty_quarantine(), q_customers, q_invoices, q_consent, q_history])
    return Normalized(customers, invoices, consent, history, quarantine, new_phones)


def with_captured_consent(
    normalized: Normalized, captured: pl.DataFrame, *, as_of: datetime | None = None
) -> Normalized:
    """``normalized`` with the warehouse's captured consent events attached
    (:func:`tasks.consent.load_captured_consent`): those of customers this run accepted, in
    the normalized shape (``source`` kept, e.g. ``keyword:twilio``; dated after ``as_of``
    flagged ``after_as_of`` as for source rows)."""
    known = normalized.customers["customer_id"]
    future = (
        pl.col("occurred_at") > naive_utc(as_of) if as_of is not None else pl.lit(False)
    ).fill_null(False)
    rows = captured.filter(
        pl.col("customer_id").is_not_null() & pl.col("customer_id").is_in(known.implode())
    ).select(
        pl.lit(None, pl.Int64).alias("source_row"),
        "customer_id",
        "channel",
        "status",
        "source",
        "occurred_at",
        future.alias("after_as_of"),
    )
    return replace(normalized, captured_consent=rows)


@task(name="normalize", cache_policy=NO_CACHE)
def normalize_task(
    extracted: Extracted,
    *,
    as_of: datetime | None = None,
    parsing: ParsingSettings | None = None,
    phone_cache: pl.DataFrame | None = None,
) -> Normalized:
    return normalize(extracted, as_of=as_of, parsing=parsing, phone_cache=phone_cache)
