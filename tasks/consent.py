"""Consent: fold consent events into one state per customer and channel.

Rules (DESIGN.md "consent ledger"):

- The latest event per customer x channel wins. Events on channel ``all`` count for every
  channel. When two events of one customer and channel share a timestamp, ``opt_out`` wins.
- An opt-out that is the latest event on *any* channel is global: no channel may send.
  STOP by SMS therefore stops e-mail too, until the customer opts in again on that channel.
- Without an opt-in, SMS never sends; e-mail sends on "no opt-out" unless configured to need
  an opt-in (``cadence.email_requires_opt_in``).

Output grain: one row per customer_id that has at least one event: ``sms_status``,
``email_status`` (``opt_in`` / ``opt_out`` / null), ``global_opt_out``, ``opted_out_at``.
"""

from __future__ import annotations

import polars as pl

__all__ = ["CONSENT_SCHEMA", "channel_allowed", "consent_state"]

CHANNELS = ("sms", "email")

CONSENT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "sms_status": pl.String(),
    "email_status": pl.String(),
    "global_opt_out": pl.Boolean(),
    "opted_out_at": pl.Datetime("us"),
}


def consent_state(events: pl.DataFrame) -> pl.DataFrame:
    """Fold normalized consent events (customer_id, channel, status, occurred_at) per customer."""
    expanded = (
        events.with_columns(
            pl.when(pl.col("channel") == "all")
            .then(pl.lit(list(CHANNELS)))
            .otherwise(pl.concat_list(pl.col("channel")))
            .alias("channel")
        )
        .explode("channel", empty_as_null=True)
        .filter(pl.col("channel").is_in(CHANNELS))
    )
    latest = (
        expanded.sort(
            "customer_id",
            "channel",
            "occurred_at",
            (pl.col("status") == "opt_out"),
        )
        .group_by("customer_id", "channel", maintain_order=True)
        .last()
    )
    wide = latest.pivot(
        on="channel", index="customer_id", values="status", aggregate_function="first"
    )
    for channel in CHANNELS:
        if channel not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.String).alias(channel))
    opted_out_at = (
        latest.filter(pl.col("status") == "opt_out")
        .group_by("customer_id")
        .agg(pl.col("occurred_at").max().alias("opted_out_at"))
    )
    return (
        wide.select(
            "customer_id",
            pl.col("sms").alias("sms_status"),
            pl.col("email").alias("email_status"),
        )
        .with_columns(
            ((pl.col("sms_status") == "opt_out") | (pl.col("email_status") == "opt_out"))
            .fill_null(False)
            .alias("global_opt_out")
        )
        .join(opted_out_at, on="customer_id", how="left")
        .cast(CONSENT_SCHEMA)  # type: ignore[arg-type]
        .sort("customer_id")
    )


def channel_allowed(channel: str, *, email_requires_opt_in: bool) -> pl.Expr:
    """Expression over a consent_state row: may ``channel`` send? Null state means no events."""
    status = pl.col(f"{channel}_status")
    not_out = ~pl.col("global_opt_out").fill_null(False)
    if channel == "email" and not email_requires_opt_in:
        return not_out
    return not_out & (status == "opt_in").fill_null(False)
