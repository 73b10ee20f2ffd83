"""Normalize: parse and validate the canonical inputs; bad rows go to quarantine.

Pure functions on polars frames. Output grains:

- customers: one row per accepted customer_id (duplicates: the latest ``updated_at`` wins, the
  others are quarantined). ``phone_e164`` / ``email`` are null when missing or rejected (a
  rejected field also yields a ``scope='field'`` quarantine row). ``time_zones`` holds the
  sorted candidate IANA zones and ``zone_source`` the signal that gave them (``preferred``,
  ``postal_code``, ``phone``, ``country`` or ``unknown``); see :mod:`tasks.zones`. Several
  candidates mean the stagger stage uses the intersection of their windows. A
  preferred_timezone that is not a geographic zone is a ``timezone_not_geographic`` field row.
- invoices: one row per accepted invoice_id, ``amount_due_minor`` in the currency's minor units.
- consent_events / contact_history: accepted events, timestamps parsed to UTC.

Every input row is either accepted or has exactly one ``scope='row'`` quarantine row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import phonenumbers as pn
import polars as pl
from babel.numbers import get_currency_precision, list_currencies
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import timezone as pn_timezone
from prefect import task
from prefect.cache_policies import NO_CACHE

from data_quality.rules import QUARANTINE_SCHEMA, Rule, empty_quarantine, raw_json, split_rows
from tasks.consent import CHANNEL_KEYS, STATUS_KEYS, channel_key, naive_utc, status_key
from tasks.extract import Extracted
from tasks.settings import CANONICAL_COLUMNS
from tasks.zones import (
    ZONE_RULE,
    _zone_tab,
    canonical_zone,
    check_zone,
    country_zones,
    resolve_zones,
)

__all__ = [
    "CONSENT_UNCLEAR_RULES",
    "KNOWN_INVOICE_STATUSES",
    "Normalized",
    "canonical_zone",
    "country_zones",
    "normalize",
    "normalize_consent",
    "normalize_contact_history",
    "normalize_customers",
    "normalize_email",
    "normalize_invoices",
    "normalize_phone",
    "normalize_task",
    "parse_utc",
]

KNOWN_INVOICE_STATUSES = frozenset(
    {"open", "partially_paid", "paid", "void", "disputed", "written_off", "refunded"}
)
CONSENT_UNCLEAR_RULES = ("channel_unknown", "consent_status_unknown", "occurred_at_invalid")
"""Row rules of consent_events that leave the customer's consent unclear: the customer is
excluded ``consent_unclear`` on every channel until the row is fixed."""
CHANNELS = ("sms", "email")
_NOT_SMS_CAPABLE = frozenset(
    {
        pn.PhoneNumberType.FIXED_LINE,
        pn.PhoneNumberType.PREMIUM_RATE,
        pn.PhoneNumberType.SHARED_COST,
        pn.PhoneNumberType.VOICEMAIL,
        pn.PhoneNumberType.PAGER,
        pn.PhoneNumberType.UAN,
    }
)
_PARSE_ERRORS = {
    pn.NumberParseException.INVALID_COUNTRY_CODE: "invalid or missing country code",
    pn.NumberParseException.NOT_A_NUMBER: "not a phone number",
    pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    pn.NumberParseException.TOO_SHORT_NSN: "too short",
    pn.NumberParseException.TOO_LONG: "too long",
}


@dataclass(frozen=True)
class Normalized:
    customers: pl.DataFrame
    invoices: pl.DataFrame
    consent_events: pl.DataFrame
    contact_history: pl.DataFrame
    quarantine: pl.DataFrame

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


def _phone_info(
    raw: str | None, region: str | None
) -> tuple[str | None, str | None, str, tuple[str, ...], int | None]:
    """normalize_phone plus phonenumbers' zones and the calling code, from one parse."""
    if raw is None or not raw.strip():
        return None, None, "no phone number", (), None
    try:
        number = pn.parse(raw, region if region else None)
    except pn.NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "cannot be parsed")
        return None, "phone_unparseable", reason, (), None
    # number_type is UNKNOWN exactly when is_valid_number is False; computing it once halves
    # the cost of the slowest step of the pipeline.
    kind = pn.number_type(number)
    if kind == pn.PhoneNumberType.UNKNOWN:
        return None, "phone_invalid", "not a valid number for its region", (), None
    if number.extension:
        return None, "phone_has_extension", "has an extension, so it is not a mobile line", (), None
    if kind in _NOT_SMS_CAPABLE:
        return None, "phone_not_mobile", "number type cannot receive SMS", (), None
    zones = tuple(pn_timezone.time_zones_for_number(number))
    e164 = pn.format_number(number, pn.PhoneNumberFormat.E164)
    return e164, None, "", zones, number.country_code


def normalize_phone(raw: str | None, region: str | None) -> tuple[str | None, str | None, str]:
    """Return (E.164 or None, rule or None, reason) for one raw phone string.

    Missing numbers are not errors (rule None, E.164 None). A number with an extension, or one
    that phonenumbers knows is not SMS-capable (fixed line, premium rate, ...), is rejected:
    both would fail at the carrier and cost money.
    """
    return _phone_info(raw, region)[:3]


_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9]+(?:[._%+-][a-z0-9]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)


def normalize_email(raw: str | None) -> tuple[str | None, str | None, str]:
    """Return (normalized address or None, rule or None, reason); addresses are lower-cased.

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
    return result.normalized.lower(), None, ""


def parse_utc(column: str) -> pl.Expr:
    """Parse ISO-8601-ish text to a naive UTC datetime (offsets converted, 'Z' accepted)."""
    text = pl.col(column).str.strip_chars()
    aware = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
    candidates = [
        aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
        text.str.to_datetime("%Y-%m-%d", strict=False, time_unit="us"),
    ]
    return pl.coalesce(candidates)


def _duplicates_last_wins(key: str, order: str) -> pl.Expr:
    """True for every row of a duplicated key except the latest by ``order`` then source_row."""
    rank = pl.struct(pl.col(order).fill_null(pl.datetime(1, 1, 1)), "source_row").rank(
        "ordinal", descending=True
    )
    return pl.col(key).is_not_null() & (rank.over(key) > 1)


def normalize_customers(raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate customers: (accepted customers, quarantine rows of both scopes)."""
    raw_cols = [c for c in CANONICAL_COLUMNS["customers"] if c in raw.columns]
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars().replace("", None),
        pl.col("country").str.strip_chars().str.to_uppercase().alias("_country"),
        parse_utc("updated_at").alias("_updated_at"),
    )
    known_countries = list(_zone_tab())
    rules = [
        Rule("customer_id_missing", "customer_id is empty", pl.col("customer_id").is_null()),
        Rule(
            "customer_id_duplicate",
            "another row has the same customer_id and a later updated_at",
            _duplicates_last_wins("customer_id", "_updated_at"),
        ),
        Rule(
            "country_invalid",
            "country is not an ISO 3166-1 alpha-2 code",
            ~pl.col("_country").is_in(known_countries),
        ),
    ]
    accepted, quarantine = split_rows(
        frame, rules, source="customers", key="customer_id", raw_columns=raw_cols
    )
    rows = accepted.select(
        "source_row",
        "customer_id",
        "phone",
        "email",
        "_country",
        "postal_code",
        "preferred_timezone",
    ).rows()
    phone_cache: dict[
        tuple[str | None, str], tuple[str | None, str | None, str, tuple[str, ...], int | None]
    ] = {}
    out_phone, out_email, out_zones, out_zone_source = [], [], [], []
    field_issues: list[tuple[int, str, str, str]] = []
    for source_row, customer_id, phone, email, country, postal, preferred in rows:
        key = (phone, country)
        if key not in phone_cache:
            phone_cache[key] = _phone_info(phone, country)
        e164, rule, reason, phone_zones, calling_code = phone_cache[key]
        if rule:
            field_issues.append((source_row, customer_id, rule, f"phone: {reason}"))
        address, email_rule, email_reason = normalize_email(email)
        if email_rule:
            field_issues.append((source_row, customer_id, email_rule, f"email: {email_reason}"))
        _zone, zone_reason = check_zone(preferred)
        if zone_reason:
            field_issues.append(
                (source_row, customer_id, ZONE_RULE, f"preferred_timezone: {zone_reason}")
            )
        # cached per distinct (preferred, country, postal code, phone zones, calling code)
        zones, zone_source = resolve_zones(preferred, country, postal, phone_zones, calling_code)
        out_phone.append(e164)
        out_email.append(address)
        out_zones.append(list(zones))
        out_zone_source.append(zone_source)
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
        pl.Series("phone_e164", out_phone, dtype=pl.String),
        pl.Series("email", out_email, dtype=pl.String),
        pl.col("_country").alias("country"),
        pl.col("postal_code"),
        pl.Series("time_zones", out_zones, dtype=pl.List(pl.String)),
        pl.Series("zone_source", out_zone_source, dtype=pl.String),
        pl.col("locale").str.strip_chars().replace("", None),
        pl.col("preferred_channel").str.strip_chars().str.to_lowercase().replace("", None),
        pl.col("_updated_at").alias("updated_at"),
    )
    if field_issues:
        issues = pl.DataFrame(
            field_issues,
            schema={
                "source_row": pl.Int32,
                "record_key": pl.String,
                "rule": pl.String,
                "reason": pl.String,
            },
            orient="row",
        )
        raw_by_row = raw.select("source_row", raw_json(raw_cols).alias("raw_values"))
        fields = issues.join(raw_by_row, on="source_row", how="left").select(
            pl.lit("customers").alias("source"),
            "source_row",
            "record_key",
            pl.lit("field").alias("scope"),
            "rule",
            "reason",
            "raw_values",
        )
        quarantine = pl.concat([quarantine, fields])
    return customers, quarantine


def _amount_minor(raw: str | None, currency: str | None) -> tuple[int | None, str | None]:
    if raw is None:
        return None, "amount_invalid"
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        return None, "amount_invalid"
    if not value.is_finite():
        return None, "amount_invalid"
    if value < 0:
        return None, "amount_negative"
    digits = get_currency_precision(currency) if currency else 2
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        return None, "amount_precision"
    if minor >= 2**63:  # does not fit the warehouse's bigint minor units
        return None, "amount_invalid"
    return int(minor), None


def normalize_invoices(
    raw: pl.DataFrame, customers: pl.DataFrame, customer_ids_seen: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate invoices against the accepted customers: (accepted, quarantine rows).

    ``customer_ids_seen`` holds every customer_id present in the raw customers, so an invoice
    whose customer was quarantined is told apart from one whose customer does not exist.
    """
    raw_cols = [c for c in CANONICAL_COLUMNS["invoices"] if c in raw.columns]
    currencies = list(list_currencies())
    frame = raw.with_columns(
        pl.col("invoice_id").str.strip_chars().replace("", None),
        pl.col("customer_id").str.strip_chars().replace("", None),
        pl.col("currency").str.strip_chars().str.to_uppercase().alias("_currency"),
        pl.col("status").str.strip_chars().str.to_lowercase().alias("_status"),
        pl.col("due_date").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("_due"),
        parse_utc("updated_at").alias("_updated_at"),
        parse_utc("paid_at").alias("_paid_at"),
    )
    currency_ok = pl.col("_currency").is_in(currencies)
    parsed = [
        _amount_minor(a, c if c in currencies else None)
        for a, c in frame.select("amount_due", "_currency").rows()
    ]
    frame = frame.with_columns(
        pl.Series("_amount_minor", [p[0] for p in parsed], dtype=pl.Int64),
        pl.Series("_amount_rule", [p[1] for p in parsed], dtype=pl.String),
    )
    accepted_ids = customers["customer_id"]
    rules = [
        Rule("invoice_id_missing", "invoice_id is empty", pl.col("invoice_id").is_null()),
        Rule(
            "invoice_id_duplicate",
            "another row has the same invoice_id and a later updated_at",
            _duplicates_last_wins("invoice_id", "_updated_at"),
        ),
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
        Rule("currency_invalid", "currency is not an ISO 4217 code", ~currency_ok),
        Rule(
            "amount_invalid",
            "amount_due is not a decimal number",
            pl.col("_amount_rule") == "amount_invalid",
        ),
        Rule(
            "amount_negative", "amount_due is negative", pl.col("_amount_rule") == "amount_negative"
        ),
        Rule(
            "amount_precision",
            "amount_due has more decimals than its currency allows",
            pl.col("_amount_rule") == "amount_precision",
        ),
        Rule("due_date_invalid", "due_date is not a YYYY-MM-DD date", pl.col("_due").is_null()),
        Rule(
            "status_unknown",
            f"status is not one of {', '.join(sorted(KNOWN_INVOICE_STATUSES))}",
            ~pl.col("_status").is_in(list(KNOWN_INVOICE_STATUSES)),
        ),
    ]
    accepted, quarantine = split_rows(
        frame, rules, source="invoices", key="invoice_id", raw_columns=raw_cols
    )
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
    raw: pl.DataFrame, customer_ids: pl.Series, *, as_of: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate consent events: (accepted events, quarantine rows of both scopes).

    Channel and status spellings are read through ``tasks.consent``'s tables; a channel name
    outside the table is kept in its normalised form (an opt-out there is still global). A
    null or blank channel, a status outside the table or an unreadable ``occurred_at`` is a
    row quarantine (:data:`CONSENT_UNCLEAR_RULES`). An accepted event dated after ``as_of``
    (naive UTC) is flagged ``after_as_of`` and noted (``scope='field'``, rule
    ``consent_in_future``): a future opt-in grants nothing, a future opt-out counts now.
    """
    raw_cols = [c for c in CANONICAL_COLUMNS["consent_events"] if c in raw.columns]
    channel = channel_key(pl.col("channel").str.strip_chars())
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars(),
        pl.coalesce(channel.replace_strict(CHANNEL_KEYS, default=None), channel)
        .replace("", None)
        .alias("_channel"),
        status_key(pl.col("status"))
        .replace_strict(STATUS_KEYS, default=None, return_dtype=pl.String)
        .alias("_status"),
        parse_utc("occurred_at").alias("_occurred_at"),
    )
    rules = [
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
        frame, rules, source="consent_events", key="customer_id", raw_columns=raw_cols
    )
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
    )
    notes = events.filter(pl.col("after_as_of"))
    if notes.height:
        raw_by_row = raw.select("source_row", raw_json(raw_cols).alias("raw_values"))
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
    raw: pl.DataFrame, customer_ids: pl.Series
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate contact history made outside this pipeline: (accepted, quarantine rows)."""
    raw_cols = [c for c in CANONICAL_COLUMNS["contact_history"] if c in raw.columns]
    frame = raw.with_columns(
        pl.col("customer_id").str.strip_chars(),
        pl.col("channel").str.strip_chars().str.to_lowercase().alias("_channel"),
        parse_utc("attempted_at").alias("_attempted_at"),
    )
    rules = [
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
        frame, rules, source="contact_history", key="customer_id", raw_columns=raw_cols
    )
    return (
        accepted.select(
            "source_row",
            "customer_id",
            pl.col("_channel").alias("channel"),
            pl.col("_attempted_at").alias("attempted_at"),
            pl.col("outcome"),
        ),
        quarantine,
    )


def normalize(
    extracted: Extracted, *, as_of: datetime | None = None, parsing: object | None = None
) -> Normalized:
    """Normalize every input of one run. ``as_of`` is the run's time (consent dated after it
    is noted, and a future opt-in grants nothing); ``parsing`` is accepted and not used here."""
    frames = extracted.frames
    customers, q_customers = normalize_customers(frames["customers"])
    seen = frames["customers"]["customer_id"].str.strip_chars().drop_nulls().unique()
    invoices, q_invoices = normalize_invoices(frames["invoices"], customers, seen)
    ids = customers["customer_id"]
    consent, q_consent = normalize_consent(frames["consent_events"], ids, as_of=as_of)
    history, q_history = normalize_contact_history(frames["contact_history"], ids)
    quarantine = pl.concat([empty_quarantine(), q_customers, q_invoices, q_consent, q_history])
    return Normalized(customers, invoices, consent, history, quarantine)


@task(name="normalize", cache_policy=NO_CACHE)
def normalize_task(extracted: Extracted, as_of: datetime | None = None) -> Normalized:
    return normalize(extracted, as_of=as_of)
