"""Consent: fold consent events into one state per customer and channel.

Rules (DESIGN.md "consent ledger"):

- Channel and status spellings are read through one table each (:data:`CHANNEL_ALIASES`,
  :data:`STATUS_ALIASES`); ``tasks.normalize`` applies them. A channel name that is not in the
  table is kept (normalised: lower case, no whitespace, ``-`` or ``_``), so ``WhatsApp`` and
  ``whats-app`` are one channel ``whatsapp``.
- The latest event per customer x channel name wins. Events on channel ``all`` count for
  ``sms`` and ``email``. When two events of one customer and channel share a timestamp,
  ``opt_out`` wins.
- An opt-out that is the latest event on *any* channel name, known or not, is global: no
  channel may send. STOP by SMS therefore stops e-mail too, until the customer opts in again
  on that channel; an opt-out on ``whatsapp`` holds until a later opt-in on ``whatsapp``. An
  opt-in on a channel this pipeline does not send on grants nothing.
- An opt-in dated after the run's as-of time grants nothing (it is ignored); an opt-out dated
  after it counts now.
- An opt-out dated by a bare date (``date_only``: it happened at some time that UTC day) ranks
  at the end of its day: a timed opt-in of the same day cannot be shown to be later.
- A customer with a consent row that could not be read (``consent_unclear``) may not be
  messaged on any channel.
- Without an opt-in, SMS never sends; e-mail sends on "no opt-out" unless configured to need
  an opt-in (``cadence.email_requires_opt_in``).

Output grain: one row per customer_id that has at least one event or an unreadable consent
row: ``sms_status``, ``email_status`` (``opt_in`` / ``opt_out`` / null), ``global_opt_out``,
``opted_out_at``, ``consent_unclear``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

__all__ = [
    "CHANNEL_ALIASES",
    "CONSENT_SCHEMA",
    "STATUS_ALIASES",
    "channel_allowed",
    "channel_key",
    "consent_state",
    "naive_utc",
    "status_key",
]

CHANNELS = ("sms", "email")

CHANNEL_ALIASES: dict[str, str] = {
    "sms": "sms",
    "text": "sms",
    "txt": "sms",
    "sms/text": "sms",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "all": "all",
    "any": "all",
    "*": "all",
    "all_channels": "all",
}
"""Channel spelling -> canonical channel; matched after :func:`channel_key` on both sides."""

STATUS_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        (
            "opt_out",
            "opt-out",
            "OPT OUT",
            "optout",
            "opted_out",
            "unsubscribe",
            "unsubscribed",
            "stop",
            "revoke",
            "revoked",
            "withdraw",
            "withdrawn",
            "out",
            "no",
        ),
        "opt_out",
    ),
    **dict.fromkeys(
        (
            "opt_in",
            "opt-in",
            "optin",
            "opted_in",
            "subscribe",
            "subscribed",
            "start",
            "unstop",
            "yes",
            "in",
        ),
        "opt_in",
    ),
}
"""Status spelling -> ``opt_in`` / ``opt_out``; matched after :func:`status_key` on both sides.
Anything else is unreadable (quarantine rule ``consent_status_unknown``)."""

CONSENT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "sms_status": pl.String(),
    "email_status": pl.String(),
    "global_opt_out": pl.Boolean(),
    "opted_out_at": pl.Datetime("us"),
    "consent_unclear": pl.Boolean(),
}

_CHANNEL_NOISE = r"[\s\-_]+"
_STATUS_NOISE = r"[^\p{L}\p{N}]+"


def channel_key(expr: pl.Expr) -> pl.Expr:
    """A channel name normalised for matching: lower case; whitespace, ``-`` and ``_`` removed."""
    return expr.str.to_lowercase().str.replace_all(_CHANNEL_NOISE, "")


def status_key(expr: pl.Expr) -> pl.Expr:
    """A status normalised for matching: lower case, only letters and digits kept."""
    return expr.str.to_lowercase().str.replace_all(_STATUS_NOISE, "")


def _key_table(aliases: dict[str, str], key: pl.Expr) -> dict[str, str]:
    spellings = pl.DataFrame({"s": list(aliases)}).select(key.alias("k"), pl.col("s"))
    table: dict[str, str] = {}
    for k, s in spellings.iter_rows():
        if table.setdefault(k, aliases[s]) != aliases[s]:
            raise ValueError(f"consent spelling {s!r} collides with another meaning")
    return table


CHANNEL_KEYS: dict[str, str] = _key_table(CHANNEL_ALIASES, channel_key(pl.col("s")))
"""Normalised channel key -> canonical channel (derived from :data:`CHANNEL_ALIASES`)."""

STATUS_KEYS: dict[str, str] = _key_table(STATUS_ALIASES, status_key(pl.col("s")))
"""Normalised status key -> ``opt_in`` / ``opt_out`` (derived from :data:`STATUS_ALIASES`)."""


def naive_utc(moment: datetime) -> datetime:
    """``moment`` as a naive UTC datetime (naive input is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def consent_state(
    events: pl.DataFrame,
    *,
    as_of: datetime | None = None,
    unclear: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Fold normalized consent events (customer_id, channel, status, occurred_at) per customer.

    ``channel`` is ``sms``, ``email``, ``all`` or any other (normalised) channel name. An opt-in
    dated after ``as_of`` (or flagged ``after_as_of`` by ``normalize_consent``) is ignored.
    ``unclear`` (a frame with ``customer_id``) lists customers with an unreadable consent row:
    they get ``consent_unclear`` true, with or without events.
    """
    future = pl.lit(False)
    if "after_as_of" in events.columns:
        future = future | pl.col("after_as_of").fill_null(False)
    if as_of is not None:
        future = future | (pl.col("occurred_at") > naive_utc(as_of)).fill_null(False)
    counted = events.filter(~((pl.col("status") == "opt_in") & future))
    expanded = counted.with_columns(
        pl.when(pl.col("channel") == "all")
        .then(pl.lit(list(CHANNELS)))
        .otherwise(pl.concat_list(pl.col("channel")))
        .alias("channel")
    ).explode("channel", empty_as_null=False)
    ranked_at = pl.col("occurred_at")
    if "date_only" in expanded.columns:
        day_end = pl.col("occurred_at") + pl.duration(days=1) - pl.duration(microseconds=1)
        bare_opt_out = pl.col("date_only").fill_null(False) & (pl.col("status") == "opt_out")
        ranked_at = pl.when(bare_opt_out).then(day_end).otherwise(ranked_at)
    latest = (
        expanded.sort(
            "customer_id",
            "channel",
            ranked_at,
            (pl.col("status") == "opt_out"),
            nulls_last=False,
        )
        .group_by("customer_id", "channel", maintain_order=True)
        .last()
    )
    out = pl.col("status") == "opt_out"
    state = latest.group_by("customer_id").agg(
        pl.col("status").filter(pl.col("channel") == "sms").first().alias("sms_status"),
        pl.col("status").filter(pl.col("channel") == "email").first().alias("email_status"),
        out.any().alias("global_opt_out"),
        pl.col("occurred_at").filter(out).max().alias("opted_out_at"),
    )
    ids = (
        unclear.select(pl.col("customer_id").cast(pl.String)).drop_nulls().unique()
        if unclear is not None
        else pl.DataFrame(schema={"customer_id": pl.String})
    )
    return (
        state.cast({"customer_id": pl.String})
        .join(
            ids.with_columns(pl.lit(True).alias("consent_unclear")),
            on="customer_id",
            how="full",
            coalesce=True,
        )
        .with_columns(
            pl.col("global_opt_out").fill_null(False),
            pl.col("consent_unclear").fill_null(False),
        )
        .select(list(CONSENT_SCHEMA))
        .cast(CONSENT_SCHEMA)  # type: ignore[arg-type]
        .sort("customer_id")
    )


def channel_allowed(channel: str, *, email_requires_opt_in: bool) -> pl.Expr:
    """Expression over a consent_state row: may ``channel`` send? Null state means no events."""
    status = pl.col(f"{channel}_status")
    not_out = ~pl.col("global_opt_out").fill_null(False) & ~pl.col("consent_unclear").fill_null(
        False
    )
    if channel == "email" and not email_requires_opt_in:
        return not_out
    return not_out & (status == "opt_in").fill_null(False)


def load_captured_consent(conn: Any) -> pl.DataFrame:
    """The consent events this project captured (warehouse ``consent_events``: inbound
    keywords with source ``keyword:<twilio|genesys>``, CRM imports), those naming a customer
    and a status, as (customer_id, channel, status, source, occurred_at)."""
    import sqlalchemy as sa

    rows = conn.execute(
        sa.text(
            "select customer_id, channel, status, source, occurred_at_utc from consent_events"
            " where customer_id is not null and status is not null"
        )
    ).all()
    return pl.DataFrame(
        rows,
        schema={
            "customer_id": pl.String,
            "channel": pl.String,
            "status": pl.String,
            "source": pl.String,
            "occurred_at": pl.Datetime("us"),
        },
        orient="row",
    )
