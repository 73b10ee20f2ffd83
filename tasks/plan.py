"""Plan: compose normalize -> consent -> eligibility -> render -> stagger into one run's rows.

Pure: the caller passes the normalized inputs, the outbox as it stands (``prior``), the as-of
time and settings, and gets back every row the run will write. The accounting rule is checked
here: ``invoices in x channels = planned + excluded + quarantined`` decisions, and per source
``rows in = rows accepted + rows quarantined (scope row)``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from data_quality.rules import RAW_VALUE_CHARS
from tasks.consent import consent_state
from tasks.eligibility import DECISION_SCHEMA, REASONS, decide
from tasks.errors import AccountingError
from tasks.extract import INPUTS, Extracted, hex_escape_sentinels
from tasks.normalize import Normalized
from tasks.render import RENDER_REASONS, TemplateSet, assemble_messages, render_messages
from tasks.settings import Settings
from tasks.stagger import stagger

__all__ = ["CHANNELS", "Plan", "build_plan", "quarantined_decisions"]

CHANNELS = ("sms", "email")


@dataclass(frozen=True)
class Plan:
    """Every row one build-reminders run writes, and its counts."""

    decisions: pl.DataFrame
    messages: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: dict[str, int]
    rows_quarantined: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)

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


def build_plan(
    extracted: Extracted,
    normalized: Normalized,
    prior: pl.DataFrame,
    *,
    as_of: datetime,
    settings: Settings,
    templates: TemplateSet,
    existing_tokens: Mapping[str, str] | None = None,
    new_token: Callable[[], str] = lambda: secrets.token_urlsafe(16),
) -> Plan:
    """Plan one run at ``as_of`` (naive UTC). Raises :class:`AccountingError` if rows go missing."""
    consent = consent_state(normalized.consent_events)
    field_issues = normalized.quarantine.filter(
        (pl.col("source") == "customers") & (pl.col("scope") == "field")
    ).select(pl.col("record_key").alias("customer_id"), "rule")
    decided = decide(
        normalized.invoices,
        normalized.customers,
        consent,
        normalized.contact_history,
        prior,
        as_of=as_of,
        cadence=settings.cadence,
        window=settings.window,
        field_issues=field_issues,
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
        decided.with_columns(pl.col("reason").alias("_decided_reason"))
        .join(blocked, on="message_key", how="left")
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
    timing = messages.select("message_key", "send_at_utc", "send_at_local", "wave_id", "slot")
    decisions = (
        decisions.join(timing, on="message_key", how="left")
        .with_columns(
            *[
                pl.when(pl.col("status") == "planned").then(pl.col(c)).otherwise(None).alias(c)
                for c in ("send_at_utc", "send_at_local", "wave_id", "slot")
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
    for name in INPUTS:
        if rows_in[name] != accepted[name] + rows_quarantined[name]:
            raise AccountingError(
                f"{name}: {rows_in[name]} rows in, {accepted[name]} accepted + "
                f"{rows_quarantined[name]} quarantined"
            )
    by_status = dict(decisions.group_by("status").len().iter_rows())
    counts = {
        "decisions_planned": by_status.get("planned", 0),
        "decisions_excluded": by_status.get("excluded", 0),
        "decisions_quarantined": by_status.get("quarantined", 0),
        "messages_planned": messages.height,
    }
    expected = rows_in["invoices"] * len(CHANNELS)
    total = counts["decisions_planned"] + counts["decisions_excluded"]
    total += counts["decisions_quarantined"]
    if (
        total != expected
        or decisions.select(pl.col("invoice_row").n_unique()).item() != rows_in["invoices"]
    ):
        raise AccountingError(
            f"invoices: {rows_in['invoices']} rows x {len(CHANNELS)} channels = {expected}, "
            f"but decisions are {counts}"
        )
    return Plan(
        decisions=decisions,
        messages=messages,
        quarantine=normalized.quarantine,
        rows_in=rows_in,
        rows_quarantined=rows_quarantined,
        counts=counts,
    )
