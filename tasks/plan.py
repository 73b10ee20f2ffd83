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
from tasks.eligibility import (
    CODES,
    DECISION_CHANNELS,
    DECISION_SCHEMA,
    PLANNED,
    REASONS,
    SEND_COLUMNS,
    Decided,
    at_positions,
    decide_positions,
)
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


def _quarantined_rows(raw_invoices: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """(invoice_row, invoice_id, customer_id, reason = rule, detail) per quarantined invoice row
    and rule, in raw row order."""
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
    return rows.with_columns(
        hex_escape_sentinels(pl.col(c).str.strip_chars().str.slice(0, RAW_VALUE_CHARS))
        for c in ("invoice_id", "customer_id")
    )


def quarantined_decisions(raw_invoices: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """Decision rows (status ``quarantined``, reason = rule) for every quarantined invoice row."""
    rows = _quarantined_rows(raw_invoices, quarantine)
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


TIMED = ("send_at_utc", "send_at_local", "send_at_local_by_zone", "wave_id", "slot")
"""The decision columns taken from the decision's staggered message (planned rows only)."""


def _decision_rows(
    decided: Decided,
    planned_rows: pl.Series,
    blocked: pl.DataFrame,
    messages: pl.DataFrame,
    quarantined: pl.DataFrame,
) -> tuple[pl.DataFrame, dict[str, int], int]:
    """The run's decisions (:data:`DECISION_SCHEMA`, ``detail``, :data:`TIMED`), in
    invoice_row order (by channel within an invoice row, except the rows of an invoice row
    quarantined by several rules, which alternate channels: no reader relies on the order);
    their count per status; the number of invoice rows decided.

    ``planned_rows`` are the planned positions of ``decided``; ``blocked`` (_k,
    render_status) the messages render blocked: their decisions become ``excluded`` with the
    render reason. ``messages`` (staggered, with ``_k``) give the planned rows their timing;
    ``quarantined`` (:func:`_quarantined_rows`) adds the quarantined invoice rows. Every column
    is built once, by gathers from its own grain (invoice, customer, customer x channel,
    message), in the final row order.
    """
    inv, cust = decided.invoices, decided.customers
    n_inv, n_keys = inv.height, decided.keys.len()
    codes = decided.codes.cast(pl.UInt32)
    planned_keys = decided.positions(planned_rows)[3]
    block_names = sorted(set(blocked["render_status"].drop_nulls().to_list()))
    rule_names = sorted(set(quarantined["reason"].drop_nulls().to_list()))
    names = [*CODES, *block_names, *rule_names]
    descriptions = REASONS | RENDER_REASONS
    details = [descriptions.get(n) for n in (*CODES, *block_names)] + [None] * len(rule_names)
    block_code = blocked.select(
        pl.col("render_status")
        .replace_strict(block_names, range(len(CODES), len(CODES) + len(block_names)))
        .cast(pl.UInt32)
    ).to_series()
    hit = at_positions(n_keys, blocked["_k"], block_code).gather(planned_keys)
    if blocked.height:
        codes = codes.scatter(planned_rows.filter(hit.is_not_null()), hit.drop_nulls())
    sent_rows, sent_keys = planned_rows.filter(hit.is_null()), planned_keys.filter(hit.is_null())
    message_at = at_positions(
        n_keys, messages["_k"], pl.int_range(0, messages.height, dtype=pl.UInt32, eager=True)
    )
    message = at_positions(codes.len(), sent_rows, message_at.gather(sent_keys))

    units = inv.select(
        "invoice_row",
        "invoice_id",
        "customer_id",
        pl.col("reason_detail").alias("_detail"),
        pl.int_range(0, n_inv, dtype=pl.UInt32).alias("_i"),
        pl.lit(None, pl.UInt32).alias("_q"),
    )
    if quarantined.height:
        units = pl.concat(
            [
                units,
                quarantined.select(
                    pl.col("invoice_row").cast(pl.Int32),
                    "invoice_id",
                    "customer_id",
                    pl.col("detail").alias("_detail"),
                    pl.lit(None, pl.UInt32).alias("_i"),
                    pl.int_range(0, quarantined.height, dtype=pl.UInt32).alias("_q"),
                ),
            ]
        ).sort("invoice_row", maintain_order=True)
    f = pl.int_range(0, 2 * units.height, dtype=pl.UInt32, eager=True)
    u, ch = f // 2, f % 2
    i = units["_i"].gather(u)
    q = units["_q"].gather(u)
    d = i * 2 + ch
    c = inv["_c"].gather(i)
    k = c + ch * cust.height
    rule_code = quarantined.select(
        pl.col("reason")
        .replace_strict(rule_names, range(len(names) - len(rule_names), len(names)), default=None)
        .cast(pl.UInt32)
    ).to_series()
    code = (
        pl.select(pl.coalesce(pl.lit(codes.gather(d)), pl.lit(rule_code.gather(q)))).to_series()
        if quarantined.height
        else codes
    )
    message_of = message.gather(d)
    status = (
        pl.when(pl.lit(q).is_not_null())
        .then(2)
        .when(pl.lit(code) == PLANNED)
        .then(0)
        .otherwise(1)
        .cast(pl.UInt32)
    )
    frame = pl.DataFrame(
        {
            "invoice_row": units["invoice_row"].gather(u),
            "invoice_id": units["invoice_id"].gather(u),
            "customer_id": units["customer_id"].gather(u),
            "channel": pl.Series(DECISION_CHANNELS).gather(ch),
            "cadence_step": inv["cadence_step"].gather(i),
            "_status": pl.select(status).to_series(),
            "reason": pl.Series(names, dtype=pl.String).gather(code),
            "message_key": decided.keys.gather(k),
            **{n: cust[n].gather(c) for n in SEND_COLUMNS},
            **{n: inv[n].gather(i) for n in ("amount_due_minor", "currency", "due_date")},
            "detail": pl.select(
                pl.coalesce(
                    pl.lit(units["_detail"].gather(u)),
                    pl.lit(pl.Series(details, dtype=pl.String).gather(code)),
                )
            ).to_series(),
            **{n: messages[n].gather(message_of) for n in TIMED},
        }
    )
    tally = frame["_status"].value_counts()
    statuses = ("planned", "excluded", "quarantined")
    by_status = {statuses[s]: n for s, n in tally.iter_rows() if n}
    frame = frame.with_columns(
        pl.Series(statuses, dtype=pl.String).gather(frame["_status"]).alias("status")
    )
    decisions = frame.select(
        *[pl.col(n).cast(t) for n, t in DECISION_SCHEMA.items()],
        pl.col("detail").cast(pl.String),
        *TIMED,
    )
    return decisions, by_status, units["invoice_row"].n_unique()


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
    decided = decide_positions(
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
    # The planned decisions (a tenth of them) make the messages. ``_k``, each message's
    # customer x channel position, links the messages back to the decisions; it is dropped
    # before they leave.
    planned_rows = (decided.codes == PLANNED).arg_true()
    planned = decided.frame(planned_rows)
    messages = assemble_messages(planned)
    keys = planned.select("message_key", decided.positions(planned_rows)[3].alias("_k"))
    messages = messages.hstack(
        messages.select("message_key")
        .join(keys.unique("message_key"), on="message_key", how="left", maintain_order="left")
        .select("_k")
    )
    del planned, keys
    messages = render_messages(
        messages,
        templates=templates,
        settings=settings.render,
        existing_tokens=existing_tokens,
        new_token=new_token,
    )
    blocked = messages.filter(pl.col("render_status") != "ok").select("_k", "render_status")
    messages = messages.filter(pl.col("render_status") == "ok")
    messages = stagger(messages, as_of=as_of, window=settings.window)
    decisions, by_status, invoice_rows_decided = _decision_rows(
        decided,
        planned_rows,
        blocked,
        messages,
        _quarantined_rows(extracted.frames["invoices"], normalized.quarantine),
    )
    messages = messages.drop("_k")
    del decided

    rows_in = extracted.counts
    q_rows = normalized.quarantine.filter(pl.col("scope") == "row")
    rows_quarantined = {name: q_rows.filter(pl.col("source") == name).height for name in INPUTS}
    accepted = {
        "customers": normalized.customers.height,
        "invoices": normalized.invoices.height,
        "consent_events": normalized.consent_events.height,
        "contact_history": normalized.contact_history.height,
    }
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
        invoice_rows_decided,
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
