"""Plan: compose normalize -> consent -> eligibility -> render -> stagger into one run's rows.

Pure: the caller passes the normalized inputs, the outbox as it stands (``prior``), the as-of
time and settings, and gets back every row the run will write. The accounting rule is checked
here: ``invoices in x channels = planned + excluded + quarantined`` decisions, and per source
``rows in = rows accepted + rows quarantined (scope row)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from data_quality.rules import RAW_VALUE_CHARS
from tasks.consent import consent_state
from tasks.eligibility import DECISION_SCHEMA, REASONS, add_columns, decide
from tasks.extract import INPUTS, Extracted, hex_escape_sentinels
from tasks.normalize import Normalized
from tasks.render import (
    RENDER_REASONS,
    TemplateSet,
    assemble_messages,
    default_token,
    render_messages,
)
from tasks.send_calendar import build_calendar, customer_subdivisions
from tasks.settings import CalendarSettings, Settings
from tasks.stagger import stagger

__all__ = [
    "CHANNELS",
    "Accounting",
    "Plan",
    "build_plan",
    "check_accounting",
    "no_send_calendar",
    "quarantined_decisions",
]

CHANNELS = ("sms", "email")


@dataclass(frozen=True)
class Accounting:
    """The run's accounting, computed from its counts: ``ok`` iff ``problems`` is empty."""

    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_accounting(
    rows_in: Mapping[str, int],
    accepted: Mapping[str, int],
    rows_quarantined: Mapping[str, int],
    decisions_by_status: Mapping[str, int],
    invoice_rows_decided: int,
    channels: int = len(CHANNELS),
) -> Accounting:
    """Every input row accounted for, from the counts alone.

    Per input: rows in = rows accepted + rows quarantined (scope row). Invoices: rows in x
    channels = planned + excluded + quarantined decisions, every invoice row decided, and no
    decision status outside those three.
    """
    problems = []
    for name, n_in in rows_in.items():
        got = accepted.get(name, 0) + rows_quarantined.get(name, 0)
        if n_in != got:
            problems.append(
                f"{name}: {n_in} rows in, but {accepted.get(name, 0)} accepted + "
                f"{rows_quarantined.get(name, 0)} quarantined = {got}"
            )
    known = {"planned", "excluded", "quarantined"}
    odd = {s: n for s, n in decisions_by_status.items() if s not in known}
    if odd:
        problems.append(f"decisions with unknown status: {odd}")
    expected = rows_in.get("invoices", 0) * channels
    total = sum(decisions_by_status.values())
    if total != expected:
        problems.append(
            f"invoices: {rows_in.get('invoices', 0)} rows x {channels} channels = {expected}, "
            f"but {total} decisions {dict(decisions_by_status)}"
        )
    if invoice_rows_decided != rows_in.get("invoices", 0):
        problems.append(
            f"invoices: {rows_in.get('invoices', 0)} rows in, {invoice_rows_decided} decided"
        )
    return Accounting(tuple(problems))


@dataclass(frozen=True)
class Plan:
    """Every row one build-reminders run writes, and its counts."""

    decisions: pl.DataFrame
    messages: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: dict[str, int]
    rows_quarantined: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    accounting: Accounting = field(default_factory=lambda: Accounting(()))

    @property
    def reasons(self) -> dict[str, int]:
        tally = self.decisions.group_by("status", "reason").len().sort("status", "reason")
        return {f"{s}:{r}": n for s, r, n in tally.iter_rows()}


def quarantined_decisions(raw_invoices: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """Decision rows (status ``quarantined``, reason = rule) for every quarantined invoice row."""
    rules = quarantine.filter((pl.col("source") == "invoices") & (pl.col("scope") == "row"))
    rows = raw_invoices.select(
        pl.col("source_row").cast(pl.Int32).alias("invoice_row"),
        "invoice_id",
        "customer_id",
    ).join(
        rules.select(
            pl.col("source_row").alias("invoice_row"),
            pl.col("rule").alias("reason"),
            pl.col("reason").alias("detail"),
        ),
        on="invoice_row",
        how="inner",
    )
    # The ids as stored: trimmed, cut (a 10 MB id is quarantined field_too_long, not stored
    # whole) and with undecodable bytes as \xNN.
    rows = rows.with_columns(
        hex_escape_sentinels(pl.col(c).str.strip_chars().str.slice(0, RAW_VALUE_CHARS))
        for c in ("invoice_id", "customer_id")
    )
    frame = rows.join(pl.DataFrame({"channel": list(CHANNELS)}), how="cross").with_columns(
        pl.lit("quarantined").alias("status")
    )
    return frame.select(
        *[
            pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
            for c, t in DECISION_SCHEMA.items()
        ],
        "detail",
    )


def no_send_calendar(
    customers: pl.DataFrame,
    *,
    as_of: datetime,
    settings: CalendarSettings,
    for_date: date | None = None,
    extra: pl.DataFrame | None = None,
) -> pl.DataFrame | None:
    """The run's no-send calendar (``tasks.send_calendar``), or None when it is disabled.

    ``customers`` carries ``subdivision``; ``extra`` holds the user's rows (CSV, warehouse).
    """
    if not settings.enabled:
        return None
    first = as_of.date() - timedelta(days=2)
    last = as_of.date() + timedelta(days=4 + settings.horizon_days)
    if for_date is not None:
        first, last = min(first, for_date), max(last, for_date)
    return build_calendar(
        customers,
        years=sorted({first.year, last.year}),
        span=(first, last),
        package=settings.package_holidays,
        quiet_weekdays=settings.quiet_weekdays,
        extra=[extra] if extra is not None else [],
    )


def build_plan(
    extracted: Extracted,
    normalized: Normalized,
    prior: pl.DataFrame,
    *,
    as_of: datetime,
    settings: Settings,
    templates: TemplateSet,
    existing_tokens: Mapping[str, str] | pl.DataFrame | None = None,
    new_token: Callable[[], str] = default_token,
    for_date: date | None = None,
    no_send_days: pl.DataFrame | None = None,
    line_owners: pl.DataFrame | None = None,
) -> Plan:
    """Plan one run at ``as_of`` (naive UTC); ``for_date`` plans that local date for everyone.

    ``no_send_days`` are the user's calendar rows (``tasks.send_calendar.CALENDAR_SCHEMA``),
    merged with the package holidays and quiet weekdays of ``settings.calendar``.

    ``line_owners`` (:func:`tasks.eligibility.phone_line_owners` over every partition) is
    given by a partitioned run (:mod:`tasks.partition`), so a line shared across partitions
    is still shared.

    The plan's :attr:`Plan.accounting` says whether every input row is accounted for; a caller
    must not write an outbox from a plan whose accounting is not ok.
    """
    consent = consent_state(
        normalized.consent_for_planning, as_of=as_of, unclear=normalized.consent_unclear
    )
    field_issues = normalized.quarantine.filter(
        (pl.col("source") == "customers") & (pl.col("scope") == "field")
    ).select(pl.col("record_key").alias("customer_id"), "rule")
    customers = normalized.customers
    calendar = None
    if settings.calendar.enabled:
        customers = customers.with_columns(customer_subdivisions(customers))
        calendar = no_send_calendar(
            customers,
            as_of=as_of,
            settings=settings.calendar,
            for_date=for_date,
            extra=no_send_days,
        )
    decided = decide(
        normalized.invoices,
        customers,
        consent,
        normalized.contact_history,
        prior,
        as_of=as_of,
        cadence=settings.cadence,
        window=settings.window,
        field_issues=field_issues,
        for_date=for_date,
        calendar=calendar,
        horizon_days=settings.calendar.horizon_days,
        line_owners=line_owners,
    )
    planned = decided.filter(pl.col("status") == "planned")
    messages = render_messages(
        assemble_messages(planned),
        templates=templates,
        settings=settings.render,
        existing_tokens=existing_tokens,
        new_token=new_token,
    )
    blocked = messages.filter(pl.col("render_status") != "ok").select(
        "message_key", pl.col("render_status").alias("_blocked")
    )
    messages = messages.filter(pl.col("render_status") == "ok")
    messages = stagger(messages, as_of=as_of, window=settings.window)

    decisions = (
        add_columns(
            decided.with_columns(pl.col("reason").alias("_decided_reason")), blocked, "message_key"
        )
        .with_columns(
            pl.when(pl.col("_blocked").is_not_null() & (pl.col("status") == "planned"))
            .then(pl.lit("excluded"))
            .otherwise(pl.col("status"))
            .alias("status"),
            pl.when(pl.col("_blocked").is_not_null() & (pl.col("status") == "planned"))
            .then(pl.col("_blocked"))
            .otherwise(pl.col("reason"))
            .alias("reason"),
        )
        .drop("_blocked")
    )
    descriptions = REASONS | RENDER_REASONS
    decisions = pl.concat(
        [
            decisions.select(
                *DECISION_SCHEMA,
                pl.coalesce(
                    pl.when(pl.col("reason") == pl.col("_decided_reason")).then(
                        pl.col("reason_detail")
                    ),
                    pl.col("reason").replace_strict(
                        descriptions, default=None, return_dtype=pl.String
                    ),
                ).alias("detail"),
            ),
            quarantined_decisions(extracted.frames["invoices"], normalized.quarantine),
        ]
    )
    del decided, planned  # their customer columns (one row per invoice x channel) are done
    timed = ("send_at_utc", "send_at_local", "send_at_local_by_zone", "wave_id", "slot")
    timing = messages.select("message_key", *timed)
    decisions = (
        add_columns(decisions, timing, "message_key")
        .with_columns(
            *[
                pl.when(pl.col("status") == "planned").then(pl.col(c)).otherwise(None).alias(c)
                for c in timed
            ]
        )
        .sort("invoice_row", "channel")
    )

    rows_in = extracted.counts
    q_rows = normalized.quarantine.filter(pl.col("scope") == "row")
    rows_quarantined = {name: q_rows.filter(pl.col("source") == name).height for name in INPUTS}
    accepted = {
        "customers": normalized.customers.height,
        "invoices": normalized.invoices.height,
        "consent_events": normalized.consent_events.height,
        "contact_history": normalized.contact_history.height,
    }
    by_status = dict(decisions.group_by("status").len().iter_rows())
    counts = {
        "decisions_planned": by_status.get("planned", 0),
        "decisions_excluded": by_status.get("excluded", 0),
        "decisions_quarantined": by_status.get("quarantined", 0),
        "messages_planned": messages.height,
    }
    accounting = check_accounting(
        rows_in,
        accepted,
        rows_quarantined,
        by_status,
        decisions.select(pl.col("invoice_row").n_unique()).item(),
    )
    return Plan(
        decisions=decisions,
        messages=messages,
        quarantine=normalized.quarantine,
        rows_in=rows_in,
        rows_quarantined=rows_quarantined,
        counts=counts,
        accounting=accounting,
    )
