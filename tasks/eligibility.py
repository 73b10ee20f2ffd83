"""Eligibility: one decision per invoice x channel, planned or excluded with a reason.

Grain of the output: one row per accepted invoice x channel (``sms``, ``email``). The cadence
step is the one due on the recipient's local send date, or null (reason ``no_step_due``).
Reasons are checked in the order of :data:`REASONS`; the first that applies is recorded.

Several invoices of one customer due on one day make **one** message per channel: their
decisions are all ``planned`` and share the message key ``hash(customer, channel, local date)``;
the message states the total and the number of invoices (see ``tasks.render``). Only one
channel is used per customer and day: the customer's ``preferred_channel`` if it is eligible,
otherwise the first eligible channel of ``cadence.channel_order``; the other is excluded as
``one_per_day``. Because the key has no invoice or step in it, a re-run on the same day can
never make a second message for the same customer and channel, whatever changed in between.

``prior`` is the outbox as it stands (messages of earlier runs): it feeds the attempt count per
invoice, the frequency cap and the one-per-day rule across runs.

Attempts per invoice (``max_attempts``) are the outbox messages of earlier days that carried the
invoice plus the rows of ``contact_history`` (contacts made outside this pipeline) at or before
``as_of``: a history row with an ``invoice_id`` counts for that (customer_id, invoice_id); one
without counts for **every** invoice of its customer in this run, because the history cannot
say which of them was open and meant (conservative: it may stop a reminder early, never allow
an extra one). Every history row, dated before or after ``as_of``, also feeds the frequency cap.

Paid: an invoice whose ``paid_at`` is at or before ``as_of`` is ``invoice_paid`` whatever its
status says, and the decision's ``reason_detail`` says why; a later ``paid_at`` is ignored.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

import duckdb
import polars as pl
import pyarrow as pa

from tasks.consent import CONSENT_SCHEMA, channel_allowed
from tasks.send_calendar import blocked_days, customer_subdivisions, days_for
from tasks.settings import CadenceSettings, WindowSettings
from tasks.stagger import earliest_send, plan_allowed_send_date, send_window, zone_label

__all__ = [
    "ATTEMPTED_STATES",
    "PRIOR_SCHEMA",
    "REASONS",
    "add_columns",
    "decide",
    "message_key",
    "phone_line_owners",
]

REASONS: dict[str, str] = {
    "invoice_paid": "the invoice is paid",
    "invoice_void": "the invoice is void",
    "invoice_disputed": "the invoice is disputed",
    "invoice_not_payable": "the invoice status is not payable",
    "no_balance": "nothing is owed on the invoice",
    "timezone_unknown": "no time zone could be found for the customer",
    "no_common_window": "the customer's candidate zones share no send window",
    "window_passed": "the send window of the planned local date has already closed at run time",
    "holiday": "the cadence step falls on a no-send holiday of the customer's country / region",
    "quiet_weekday": "the cadence step falls on a quiet weekday of the customer's country",
    "no_step_due": "no cadence step falls on the local send date",
    "consent_unclear": "a consent row of this customer could not be read; fix it (see quarantine)",
    "opted_out": "the customer opted out (on any channel)",
    "no_opt_in": "no opt-in on this channel",
    "no_phone": "the customer has no phone number",
    "invalid_phone": "the phone number was rejected (see quarantine, scope field)",
    "phone_shared": "the phone number belongs to several customers",
    "no_email": "the customer has no e-mail address",
    "invalid_email": "the e-mail address was rejected (see quarantine, scope field)",
    "max_attempts": "the invoice reached the maximum number of reminders",
    "contacted_recently": "the customer was contacted inside the frequency cap",
    "already_messaged_today": "another message to this customer is planned for that day",
    "one_per_day": "another channel carries this customer's reminder that day",
}
"""Exclusion reason codes of this stage, in the order they are checked."""

ATTEMPTED_STATES = (
    "ready",
    "pushing",
    "pushed",
    "sending",
    "sent",
    "failed",
    "unknown",
    "delivered",
    "undelivered",
)
"""Outbox states that count as a contact attempt: on its way to Genesys or in it (ready,
pushing, pushed: it may go out), attempted by Genesys (sent, failed, unknown: an unknown
wrap-up code may have been a send) and the carrier outcomes of issue 9. ``skipped``,
``expired``, ``cancelled``, ``deferred``, ``rejected`` and ``planned`` are not attempts."""

PRIOR_SCHEMA: dict[str, pl.DataType] = {
    "message_key": pl.String(),
    "customer_id": pl.String(),
    "channel": pl.String(),
    "local_send_date": pl.Date(),
    "send_at_utc": pl.Datetime("us"),
    "invoice_ids": pl.String(),
    "state": pl.String(),
}

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "invoice_row": pl.Int32(),
    "invoice_id": pl.String(),
    "customer_id": pl.String(),
    "channel": pl.String(),
    "cadence_step": pl.Int32(),
    "status": pl.String(),
    "reason": pl.String(),
    "message_key": pl.String(),
    "time_zone": pl.String(),
    "zone_source": pl.String(),
    "candidate_zones": pl.String(),
    "display_zone": pl.String(),
    "local_send_date": pl.Date(),
    "window_start_utc": pl.Datetime("us"),
    "window_end_utc": pl.Datetime("us"),
    "amount_due_minor": pl.Int64(),
    "currency": pl.String(),
    "due_date": pl.Date(),
}


def message_key(customer_id: str, channel: str, local_send_date: str) -> str:
    """Deterministic message key: the first 32 hex digits of a SHA-256 of its identity."""
    identity = f"{customer_id}\x1f{channel}\x1f{local_send_date}".encode()
    return hashlib.sha256(identity).hexdigest()[:32]


def sha256_hex32(values: pl.Series) -> pl.Series:
    """The first 32 hex digits of the SHA-256 of each UTF-8 value (null stays null).

    Vectorised: DuckDB's ``sha256`` over the Arrow buffer (an in-memory connection), not a
    Python call per row; identical to ``hashlib.sha256(v.encode()).hexdigest()[:32]``.
    """
    values = values.cast(pl.String)
    if values.len() == 0:
        return values
    con = duckdb.connect(":memory:", config={"preserve_insertion_order": True, "threads": 1})
    try:
        table = pa.table({"v": values.to_arrow()})
        con.register("_keys", table)
        out = con.execute("select left(sha256(v), 32) as h from _keys").to_arrow_table()
    finally:
        con.close()
    hashed = pl.from_arrow(out)
    assert isinstance(hashed, pl.DataFrame)
    return hashed.to_series().cast(pl.String).alias(values.name)


def _message_key_expr() -> pl.Expr:
    return pl.concat_str(
        [pl.col("customer_id"), pl.col("channel"), pl.col("local_send_date").cast(pl.String)],
        separator="\x1f",
    ).map_batches(sha256_hex32, return_dtype=pl.String)


def add_columns(
    frame: pl.DataFrame, right: pl.DataFrame, on: str | list[str], *, nulls_equal: bool = False
) -> pl.DataFrame:
    """``frame.join(right, on=on, how="left")`` without copying ``frame``'s columns.

    When ``right`` has one row per key (and no column name of ``frame`` besides the keys),
    only the key columns are joined and ``right``'s other columns are added to ``frame``
    row for row: a left join of a frame with a unique right side keeps every left row in
    order, so the result is the same, but the wide frame is not gathered once per join
    (at a million customers, three million rows x fifty columns). Otherwise a plain join.
    """
    keys = [on] if isinstance(on, str) else list(on)
    extra = [c for c in right.columns if c not in keys]
    if not any(c in frame.columns for c in extra):
        added = frame.select(keys).join(
            right, on=keys, how="left", nulls_equal=nulls_equal, maintain_order="left"
        )
        if added.height == frame.height:
            return frame.hstack(added.select(extra))
    return frame.join(right, on=keys, how="left", nulls_equal=nulls_equal)


NO_SEND_SCHEMA = pl.List(pl.Struct({"day": pl.Date, "name": pl.String, "kind": pl.String}))

SEND_DATE_KEYS = ("time_zones", "country", "subdivision")


def _send_dates(
    customers: pl.DataFrame,
    as_of: datetime,
    window: WindowSettings,
    for_date: date | None = None,
    calendar: pl.DataFrame | None = None,
    horizon_days: int = 14,
) -> pl.DataFrame:
    """Per distinct (candidate-zone set, country, subdivision): the local send date and its
    window (naive UTC), and ``_no_send``: the no-send days that decided it.

    Without ``for_date`` the send date is the first local date whose window has not ended at
    ``as_of`` and that is not a no-send day of the customer's country / subdivision in
    ``calendar`` (``tasks.send_calendar``); ``_no_send`` lists the no-send days skipped. With
    it, every recipient's local date is ``for_date``; ``_window_passed`` marks the groups
    whose window for that date has already closed at ``as_of``, and ``_no_send`` holds
    ``for_date`` if it is a no-send day there.
    """
    keys = [k for k in SEND_DATE_KEYS if k in customers.columns]
    groups = customers.select(keys).unique()
    blocked = blocked_days(calendar)
    rows = []
    for values in groups.iter_rows(named=True):
        zones = list(values["time_zones"] or [])
        days = days_for(blocked, values.get("country"), values.get("subdivision"))
        passed = False
        no_send: list[date] = []
        if not zones:
            planned = None
        elif for_date is None:
            allowed = plan_allowed_send_date(zones, as_of, window, days, horizon_days=horizon_days)
            planned = allowed[:3] if allowed else None
            no_send = allowed[3] if allowed else []
        else:
            found = send_window(zones, for_date, window)
            planned = (for_date, *found) if found else None
            passed = found is not None and found[1] <= earliest_send(as_of)
            no_send = [for_date] if for_date in days else []
        day, start, end = planned if planned else (None, None, None)
        rows.append(
            (
                *(values[k] for k in keys),
                zone_label(zones) or None,
                "|".join(zones) or None,
                zones[0] if zones else None,
                day,
                start,
                end,
                passed,
                [{"day": d, "name": days[d][0], "kind": days[d][1]} for d in no_send],
            )
        )
    key_schema = {k: customers.schema[k] for k in keys}
    return pl.DataFrame(
        rows,
        schema={
            **key_schema,
            "time_zone": pl.String,
            "candidate_zones": pl.String,
            "display_zone": pl.String,
            "local_send_date": pl.Date,
            "window_start_utc": pl.Datetime("us"),
            "window_end_utc": pl.Datetime("us"),
            "_window_passed": pl.Boolean,
            "_no_send": NO_SEND_SCHEMA,
        },
        orient="row",
    )


def phone_line_owners(customers: pl.DataFrame) -> pl.DataFrame:
    """(phone_line, _phone_owners): how many distinct customers give each line."""
    line = "phone_line" if "phone_line" in customers.columns else "phone_e164"
    return (
        customers.filter(pl.col(line).is_not_null())
        .group_by(line)
        .agg(pl.col("customer_id").n_unique().alias("_phone_owners"))
        .rename({line: "phone_line"})
    )


def decide(
    invoices: pl.DataFrame,
    customers: pl.DataFrame,
    consent: pl.DataFrame,
    contact_history: pl.DataFrame,
    prior: pl.DataFrame,
    *,
    as_of: datetime,
    cadence: CadenceSettings,
    window: WindowSettings,
    field_issues: pl.DataFrame | None = None,
    for_date: date | None = None,
    calendar: pl.DataFrame | None = None,
    horizon_days: int = 14,
    line_owners: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Decide every accepted invoice x channel. ``as_of`` is naive UTC.

    ``for_date`` plans every recipient's local date ``for_date`` instead of the first local date
    whose window is still open (previews and backfills); see :func:`_send_dates`.

    ``calendar`` (``tasks.send_calendar.CALENDAR_SCHEMA``) holds the no-send days. Planning
    (no ``for_date``) moves the send date past them; a decision whose cadence step fell on a
    skipped no-send day (and none falls on the new date) is excluded ``holiday`` (or
    ``quiet_weekday``) with the day and its name in the detail: the step is not moved, so a
    holiday never adds a reminder. With ``for_date`` on a no-send day, the steps due that day
    are excluded the same way.

    ``field_issues`` (customer_id, rule) tells a rejected phone / e-mail from a missing one.
    Returns :data:`DECISION_SCHEMA` columns, ``reason_detail`` (nullable: a per-row
    explanation that overrides the reason's description) and the customer fields render needs.
    """
    channels = pl.DataFrame({"channel": ["sms", "email"]})
    if calendar is not None and "subdivision" not in customers.columns:
        customers = customers.with_columns(customer_subdivisions(customers))
    dates = _send_dates(customers, as_of, window, for_date, calendar, horizon_days)
    keys = [k for k in SEND_DATE_KEYS if k in customers.columns]
    cust = customers.join(dates, on=keys, how="left", nulls_equal=True)
    # A line (E.164 without extension, any type) given by several customers is shared: an
    # SMS to it could be read by someone else. Customers without the column (older callers)
    # fall back to their SMS number. ``line_owners`` (see :func:`phone_line_owners`) counts
    # owners over every partition of a partitioned run; by default, this run's customers.
    phone_owners = (
        phone_line_owners(customers)
        if line_owners is None
        else line_owners.select("phone_line", "_phone_owners")
    ).rename({"phone_line": "phone_e164"})
    cust = cust.join(phone_owners, on="phone_e164", how="left")
    issues = (
        field_issues
        if field_issues is not None
        else pl.DataFrame(schema={"customer_id": pl.String, "rule": pl.String})
    )
    bad_phone = (
        issues.filter(pl.col("rule").str.starts_with("phone_"))
        .select("customer_id", pl.lit(True).alias("_bad_phone"))
        .unique()
    )
    bad_email = (
        issues.filter(pl.col("rule").str.starts_with("email_"))
        .select("customer_id", pl.lit(True).alias("_bad_email"))
        .unique()
    )
    consent = consent.with_columns(
        pl.lit(None, t).alias(c) for c, t in CONSENT_SCHEMA.items() if c not in consent.columns
    ).cast(CONSENT_SCHEMA)  # type: ignore[arg-type]

    steps = pl.Series("steps", cadence.steps, dtype=pl.Int32).implode()
    frame = invoices.rename({"source_row": "invoice_row"}).join(channels, how="cross")
    # Only the customer columns that decide reads: a list column gathered to three million
    # rows costs more than all the others.
    unused = ("source_row", "updated_at", "time_zones", "postal_code", "phone_line", "phone_type")
    frame = add_columns(frame, cust.drop(*unused, "_no_send", strict=False), "customer_id")
    frame = add_columns(frame, consent, "customer_id")
    frame = add_columns(frame, bad_phone, "customer_id")
    frame = add_columns(frame, bad_email, "customer_id")
    frame = frame.with_columns(
        (pl.col("local_send_date") - pl.col("due_date"))
        .dt.total_days()
        .cast(pl.Int32)
        .alias("_offset"),
    ).with_columns(
        pl.when(pl.col("_offset").is_in(steps))
        .then(pl.col("_offset"))
        .otherwise(None)
        .alias("cadence_step"),
    )
    frame = frame.with_columns(
        pl.when(pl.col("local_send_date").is_not_null())
        .then(_message_key_expr())
        .otherwise(None)
        .alias("message_key")
    )
    # The first no-send day (skipped, or for_date itself) on which a cadence step falls.
    # The no-send days are a customer's: exploded per customer, then joined to its invoices.
    no_send = (
        cust.select("customer_id", "_no_send")
        .explode("_no_send", empty_as_null=True)
        .filter(pl.col("_no_send").is_not_null())
        .unnest("_no_send")
    )
    hits = (
        frame.select("invoice_row", "channel", "customer_id", "due_date")
        .join(no_send, on="customer_id", how="inner")
        .with_columns(
            (pl.col("day") - pl.col("due_date")).dt.total_days().cast(pl.Int32).alias("_hstep")
        )
        .filter(pl.col("_hstep").is_in(steps))
        .sort("invoice_row", "channel", "day")
        .group_by("invoice_row", "channel", maintain_order=True)
        .first()
        .select(
            "invoice_row",
            "channel",
            pl.col("day").alias("_hday"),
            pl.col("name").alias("_hname"),
            pl.col("kind").alias("_hkind"),
            "_hstep",
        )
    )
    frame = add_columns(frame, hits, ["invoice_row", "channel"])
    no_send_hit = pl.col("_hkind").is_not_null() & (
        pl.lit(for_date is not None) | pl.col("cadence_step").is_null()
    )

    attempted = prior.filter(pl.col("state").is_in(ATTEMPTED_STATES))
    attempts = (
        attempted.select(
            "message_key", "local_send_date", pl.col("invoice_ids").str.split(",").alias("inv")
        )
        .explode("inv", empty_as_null=True)
        .rename({"inv": "invoice_id", "message_key": "_prior_key", "local_send_date": "_pd"})
    )
    attempt_counts = (
        frame.select("invoice_id", "message_key", "local_send_date")
        .unique()
        .join(attempts, on="invoice_id", how="inner")
        .filter(
            (pl.col("_prior_key") != pl.col("message_key"))
            & (pl.col("_pd") < pl.col("local_send_date"))
        )
        .group_by("invoice_id", "message_key")
        .agg(pl.col("_prior_key").n_unique().alias("_attempts"))
    )
    frame = add_columns(frame, attempt_counts, ["invoice_id", "message_key"])

    if "invoice_id" not in contact_history.columns:
        contact_history = contact_history.with_columns(pl.lit(None, pl.String).alias("invoice_id"))
    past = contact_history.filter(pl.col("attempted_at") <= as_of)
    per_invoice = (
        past.filter(pl.col("invoice_id").is_not_null())
        .group_by("customer_id", "invoice_id")
        .agg(pl.len().cast(pl.Int64).alias("_hist_invoice"))
    )
    per_customer = (
        past.filter(pl.col("invoice_id").is_null())
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("_hist_customer"))
    )
    frame = add_columns(frame, per_invoice, ["customer_id", "invoice_id"])
    frame = add_columns(frame, per_customer, "customer_id")
    frame = frame.with_columns(
        (
            pl.col("_attempts").fill_null(0).cast(pl.Int64)
            + pl.col("_hist_invoice").fill_null(0)
            + pl.col("_hist_customer").fill_null(0)
        ).alias("_attempts")
    )

    history = pl.concat(
        [
            contact_history.select("customer_id", pl.col("attempted_at").alias("_at")).with_columns(
                pl.lit(None, pl.String).alias("_prior_key")
            ),
            attempted.select(
                "customer_id",
                pl.col("send_at_utc").alias("_at"),
                pl.col("message_key").alias("_prior_key"),
            ),
        ],
        how="vertical_relaxed",
    )
    cap = timedelta(hours=cadence.frequency_cap_hours)
    recent = (
        frame.select("customer_id", "message_key", "window_start_utc")
        .unique()
        .join(history, on="customer_id", how="inner")
        .filter(
            (pl.col("_prior_key").is_null() | (pl.col("_prior_key") != pl.col("message_key")))
            & (pl.col("_at") > pl.col("window_start_utc") - cap)
        )
        .group_by("customer_id", "message_key")
        .agg(pl.lit(True).alias("_recent"))
    )
    frame = add_columns(frame, recent, ["customer_id", "message_key"])

    same_day = prior.filter(pl.col("state") != "cancelled").select(
        "customer_id",
        "local_send_date",
        pl.col("message_key").alias("_other_key"),
    )
    taken = (
        frame.select("customer_id", "local_send_date", "message_key")
        .unique()
        .join(same_day, on=["customer_id", "local_send_date"], how="inner")
        .filter(pl.col("_other_key") != pl.col("message_key"))
        .group_by("customer_id", "local_send_date", "message_key")
        .agg(pl.lit(True).alias("_taken"))
    )
    frame = add_columns(frame, taken, ["customer_id", "local_send_date", "message_key"])

    payable = pl.col("status").is_in(cadence.payable_statuses)
    sms = pl.col("channel") == "sms"
    email = pl.col("channel") == "email"
    allowed = (
        pl.when(sms)
        .then(channel_allowed("sms", email_requires_opt_in=cadence.email_requires_opt_in))
        .otherwise(channel_allowed("email", email_requires_opt_in=cadence.email_requires_opt_in))
    )
    paid_before = pl.col("paid_at").is_not_null() & (pl.col("paid_at") <= as_of)
    reason = (
        pl.when(paid_before | (~payable & (pl.col("status") == "paid")))
        .then(pl.lit("invoice_paid"))
        .when(~payable & (pl.col("status") == "void"))
        .then(pl.lit("invoice_void"))
        .when(~payable & (pl.col("status") == "disputed"))
        .then(pl.lit("invoice_disputed"))
        .when(~payable)
        .then(pl.lit("invoice_not_payable"))
        .when(pl.col("amount_due_minor") <= 0)
        .then(pl.lit("no_balance"))
        .when(pl.col("time_zone").is_null())
        .then(pl.lit("timezone_unknown"))
        .when(pl.col("local_send_date").is_null())
        .then(pl.lit("no_common_window"))
        .when(pl.col("_window_passed").fill_null(False))
        .then(pl.lit("window_passed"))
        .when(no_send_hit & (pl.col("_hkind") == "weekday"))
        .then(pl.lit("quiet_weekday"))
        .when(no_send_hit)
        .then(pl.lit("holiday"))
        .when(pl.col("cadence_step").is_null())
        .then(pl.lit("no_step_due"))
        .when(pl.col("consent_unclear").fill_null(False))
        .then(pl.lit("consent_unclear"))
        .when(pl.col("global_opt_out").fill_null(False))
        .then(pl.lit("opted_out"))
        .when(~allowed.fill_null(False))
        .then(pl.lit("no_opt_in"))
        .when(sms & pl.col("phone_e164").is_null() & pl.col("_bad_phone").fill_null(False))
        .then(pl.lit("invalid_phone"))
        .when(sms & pl.col("phone_e164").is_null())
        .then(pl.lit("no_phone"))
        .when(sms & (pl.col("_phone_owners") > 1))
        .then(pl.lit("phone_shared"))
        .when(email & pl.col("email").is_null() & pl.col("_bad_email").fill_null(False))
        .then(pl.lit("invalid_email"))
        .when(email & pl.col("email").is_null())
        .then(pl.lit("no_email"))
        .when(pl.col("_attempts").fill_null(0) >= cadence.max_attempts_per_invoice)
        .then(pl.lit("max_attempts"))
        .when(pl.col("_recent").fill_null(False))
        .then(pl.lit("contacted_recently"))
        .when(pl.col("_taken").fill_null(False))
        .then(pl.lit("already_messaged_today"))
        .otherwise(None)
    )
    frame = frame.with_columns(
        reason.alias("reason"),
        pl.when(paid_before & (pl.col("status") != "paid"))
        .then(
            pl.format(
                "paid_at {} is at or before the run ({}); status says {}",
                pl.col("paid_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                pl.lit(f"{as_of:%Y-%m-%dT%H:%M:%SZ}"),
                pl.col("status"),
            )
        )
        .otherwise(None)
        .alias("reason_detail"),
    )
    region = (
        pl.concat_str([pl.col("country"), pl.col("subdivision")], separator="-", ignore_nulls=True)
        if "subdivision" in frame.columns
        else pl.col("country")
    )
    step = pl.col("_hstep").cast(pl.String)
    frame = frame.with_columns(
        pl.when(pl.col("reason").is_in(["holiday", "quiet_weekday"]))
        .then(
            pl.format(
                "{} is a no-send day in {}: {}; the T{} step falls on it{}",
                pl.col("_hday").dt.strftime("%Y-%m-%d"),
                region,
                pl.col("_hname"),
                pl.when(pl.col("_hstep") >= 0).then(pl.lit("+") + step).otherwise(step),
                pl.lit(" (the reminder is not moved)" if for_date is None else ""),
            )
        )
        .otherwise(pl.col("reason_detail"))
        .alias("reason_detail")
    )

    order = {c: i for i, c in enumerate(cadence.channel_order)}
    chosen = (
        frame.filter(pl.col("reason").is_null())
        .select("customer_id", "channel", "preferred_channel")
        .unique()
        .with_columns(
            pl.when(pl.col("channel") == pl.col("preferred_channel"))
            .then(-1)
            .otherwise(pl.col("channel").replace_strict(order, default=99))
            .alias("_rank")
        )
        .sort("customer_id", "_rank")
        .group_by("customer_id", maintain_order=True)
        .first()
        .select("customer_id", pl.col("channel").alias("_chosen"))
    )
    frame = add_columns(frame, chosen, "customer_id").with_columns(
        pl.when(pl.col("reason").is_null() & (pl.col("channel") != pl.col("_chosen")))
        .then(pl.lit("one_per_day"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    frame = frame.with_columns(
        pl.when(pl.col("reason").is_null())
        .then(pl.lit("planned"))
        .otherwise(pl.lit("excluded"))
        .alias("status"),
        pl.col("reason").fill_null("planned"),
    )
    customer_columns = [
        "full_name",
        "first_name",
        "phone_e164",
        "email",
        "country",
        "locale",
        "preferred_channel",
    ]
    return frame.select(
        *[pl.col(c).cast(t) for c, t in DECISION_SCHEMA.items()],
        pl.col("reason_detail").cast(pl.String),
        *customer_columns,
    ).sort("invoice_row", "channel")
