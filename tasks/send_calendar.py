"""No-send days: holidays and quiet weekdays per country (and state / province) as a table.

The calendar frame (:data:`CALENDAR_SCHEMA`) has one row per country x subdivision x local date
on which no reminder goes out: ``country`` (ISO 3166-1 alpha-2), ``subdivision`` (null: the
whole country; else the ISO 3166-2 suffix, e.g. US ``NY``, CA ``ON``), ``day``, ``name`` and
``kind`` (``holiday`` or ``weekday``). It is the union of

- the public holidays of the ``holidays`` package for every (country, subdivision) among the
  run's customers (``calendar.package_holidays``; a country the package does not know adds
  none, an unknown subdivision falls back to the national list),
- the user's rows: ``calendar.extra_csv`` (columns ``country, subdivision, day, name``;
  ``subdivision`` may be empty) and the warehouse table ``no_send_days`` (read by the flow),
- the quiet weekdays of ``calendar.quiet_weekdays`` (country -> weekday names, ``"*"`` for
  every country), spelled out for the dates the run can plan.

A customer's subdivision comes from the postal code where the sample data carries one: a US
ZIP through the offline ``zipcodes`` registry (a ZIP it does not list: the state of its 3-digit
area when that area lies in one state; territories are their own: PR, GU, VI, AS, MP),
a Canadian postal code by its first letter (X, Northwest Territories or Nunavut, is ambiguous
and gets the national list only). Everything here is pure except :func:`read_calendar_csv`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import polars as pl

__all__ = [
    "CALENDAR_SCHEMA",
    "WEEKDAYS",
    "blocked_days",
    "build_calendar",
    "customer_subdivisions",
    "package_holidays",
    "postal_subdivision",
    "quiet_weekday_days",
    "read_calendar_csv",
]

CALENDAR_SCHEMA: dict[str, pl.DataType] = {
    "country": pl.String(),
    "subdivision": pl.String(),
    "day": pl.Date(),
    "name": pl.String(),
    "kind": pl.String(),
}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_CA_PROVINCE_BY_LETTER = {
    "A": "NL",
    "B": "NS",
    "C": "PE",
    "E": "NB",
    "G": "QC",
    "H": "QC",
    "J": "QC",
    "K": "ON",
    "L": "ON",
    "M": "ON",
    "N": "ON",
    "P": "ON",
    "R": "MB",
    "S": "SK",
    "T": "AB",
    "V": "BC",
    "Y": "YT",
}


def empty_calendar() -> pl.DataFrame:
    return pl.DataFrame(schema=CALENDAR_SCHEMA)


@functools.cache
def _zip_states() -> dict[str, str]:
    import zipcodes

    return {e["zip_code"]: e["state"] for e in zipcodes.list_all() if e.get("state")}


@functools.cache
def _zip_prefix_states() -> dict[str, str]:
    """3-digit ZIP prefix -> its state, where every known ZIP of the prefix is in one state."""
    states: dict[str, set[str]] = {}
    for zip5, state in _zip_states().items():
        states.setdefault(zip5[:3], set()).add(state)
    return {prefix: next(iter(s)) for prefix, s in states.items() if len(s) == 1}


def _zip_state(zip5: str) -> str | None:
    return _zip_states().get(zip5) or _zip_prefix_states().get(zip5[:3])


def postal_subdivision(country: str | None, postal_code: str | None) -> str | None:
    """The state / province of a US ZIP or a Canadian postal code, else None."""
    if not country or not postal_code:
        return None
    from tasks.zones import _CA_POSTAL, _US_ZIP, _US_ZIP_LOST_ZERO

    code = postal_code.strip().upper()
    if country == "US":
        match = _US_ZIP.fullmatch(code)
        if match is not None:
            return _zip_state(match.group(1))
        match = _US_ZIP_LOST_ZERO.fullmatch(code)
        return _zip_state("0" + match.group(1)) if match else None
    if country == "CA":
        return _CA_PROVINCE_BY_LETTER.get(code[0]) if _CA_POSTAL.fullmatch(code) else None
    return None


def customer_subdivisions(customers: pl.DataFrame) -> pl.Series:
    """``subdivision`` for each customer row (one Python call per distinct country x postal)."""
    if "postal_code" not in customers.columns:
        return pl.Series("subdivision", [None] * customers.height, dtype=pl.String)
    pairs = customers.select("country", "postal_code").unique()
    found = pairs.with_columns(
        pl.Series(
            "subdivision",
            [postal_subdivision(c, p) for c, p in pairs.iter_rows()],
            dtype=pl.String,
        )
    )
    return customers.select("country", "postal_code").join(
        found, on=["country", "postal_code"], how="left", nulls_equal=True, maintain_order="left"
    )["subdivision"]


@functools.lru_cache(maxsize=1024)
def _package_rows(
    country: str, subdivision: str | None, years: tuple[int, ...]
) -> tuple[tuple[date, str], ...]:
    import holidays

    try:
        table = holidays.country_holidays(country, subdiv=subdivision, years=years)
    except NotImplementedError:  # a country the package does not know
        return ()
    except (KeyError, ValueError):  # a subdivision it does not know: the national list
        if subdivision is None:
            return ()
        return _package_rows(country, None, years)
    return tuple(sorted(table.items()))


def package_holidays(
    pairs: Iterable[tuple[str | None, str | None]], years: Sequence[int]
) -> pl.DataFrame:
    """Public holidays of the ``holidays`` package for each (country, subdivision) pair."""
    rows = []
    for country, subdivision in sorted(set(pairs), key=lambda p: (p[0] or "", p[1] or "")):
        if not country:
            continue
        for day, name in _package_rows(country, subdivision, tuple(sorted(set(years)))):
            rows.append((country, subdivision, day, name, "holiday"))
    return pl.DataFrame(rows, schema=CALENDAR_SCHEMA, orient="row")


def quiet_weekday_days(
    rules: Mapping[str, Sequence[str]], countries: Iterable[str], start: date, end: date
) -> pl.DataFrame:
    """One ``weekday`` row per country x date in [start, end] whose weekday is quiet there."""
    rows = []
    for country in sorted({c for c in countries if c}):
        quiet = {WEEKDAYS.index(d) for d in (*rules.get("*", ()), *rules.get(country, ()))}
        day = start
        while day <= end:
            if day.weekday() in quiet:
                name = f"{_WEEKDAY_NAMES[day.weekday()]} (no sends on this weekday)"
                rows.append((country, None, day, name, "weekday"))
            day += timedelta(days=1)
    return pl.DataFrame(rows, schema=CALENDAR_SCHEMA, orient="row")


def read_calendar_csv(path: Path) -> pl.DataFrame:
    """A user's no-send days (columns ``country, subdivision, day, name``) as calendar rows.

    ``day`` is ``YYYY-MM-DD``; ``subdivision`` may be empty or absent. A row that cannot be
    read raises ``ValueError`` naming it: a calendar that is silently short would send on a
    day the user closed.
    """
    frame = pl.read_csv(path, infer_schema=False)
    missing = {"country", "day", "name"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: the no-send calendar lacks column(s) {sorted(missing)}")
    if "subdivision" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("subdivision"))
    out = frame.select(
        pl.col("country").str.strip_chars().str.to_uppercase(),
        pl.col("subdivision").str.strip_chars().str.to_uppercase().replace("", None),
        pl.col("day").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("day"),
        pl.col("name").str.strip_chars(),
        pl.lit("holiday").alias("kind"),
        pl.col("day").alias("_raw_day"),
    )
    bad = out.with_row_index("_line", offset=2).filter(
        pl.col("day").is_null() | pl.col("country").is_null() | (pl.col("country") == "")
    )
    if bad.height:
        line, raw = bad.select("_line", "_raw_day").row(0)
        raise ValueError(f"{path}: line {line}: no country or no YYYY-MM-DD day (got {raw!r})")
    return out.drop("_raw_day").with_columns(pl.col("name").fill_null("no-send day"))


def build_calendar(
    customers: pl.DataFrame,
    *,
    years: Sequence[int],
    span: tuple[date, date],
    package: bool = True,
    quiet_weekdays: Mapping[str, Sequence[str]] | None = None,
    extra: Sequence[pl.DataFrame] = (),
) -> pl.DataFrame:
    """The no-send calendar for the run's customers (``country``, ``subdivision`` columns).

    ``span`` is the range of local dates the run can plan (quiet weekdays are spelled out in
    it); ``extra`` are the user's calendar frames (CSV, warehouse).
    """
    if "subdivision" not in customers.columns:
        customers = customers.with_columns(customer_subdivisions(customers))
    pairs = customers.select("country", "subdivision").unique().rows()
    countries = {c for c, _ in pairs if c}
    parts = [empty_calendar()]
    if package:
        parts.append(package_holidays([*pairs, *((c, None) for c in countries)], years))
    if quiet_weekdays:
        parts.append(quiet_weekday_days(quiet_weekdays, countries, *span))
    parts += [e.select(*CALENDAR_SCHEMA).cast(CALENDAR_SCHEMA) for e in extra]  # type: ignore[arg-type]
    return pl.concat(parts).unique().sort("country", "subdivision", "day", "kind", "name")


def blocked_days(
    calendar: pl.DataFrame | None,
) -> dict[tuple[str, str | None], dict[date, tuple[str, str]]]:
    """(country, subdivision) -> {day: (name, kind)}; a day with several rows joins their
    names; a holiday wins over a quiet weekday. Look a customer up under both
    (country, None) and (country, subdivision): see :func:`days_for`."""
    out: dict[tuple[str, str | None], dict[date, tuple[str, str]]] = {}
    if calendar is None or calendar.is_empty():
        return out
    grouped = (
        calendar.sort("kind", "name")
        .group_by("country", "subdivision", "day", maintain_order=True)
        .agg(pl.col("name").unique(maintain_order=True).str.join("; "), pl.col("kind").first())
    )
    for country, subdivision, day, name, kind in grouped.iter_rows():
        out.setdefault((country, subdivision), {})[day] = (name, kind)
    return out


def days_for(
    blocked: Mapping[tuple[str, str | None], Mapping[date, tuple[str, str]]],
    country: str | None,
    subdivision: str | None,
) -> dict[date, tuple[str, str]]:
    """The no-send days of one customer: the national rows, then the subdivision's."""
    if not country:
        return {}
    days = dict(blocked.get((country, None), {}))
    if subdivision is not None:
        for day, (name, kind) in blocked.get((country, subdivision), {}).items():
            if day in days and days[day][0] != name:
                # the subdivision's own name wins; a holiday wins over a quiet weekday
                kind = "holiday" if "holiday" in (kind, days[day][1]) else kind
            days[day] = (name, kind)
    return days
