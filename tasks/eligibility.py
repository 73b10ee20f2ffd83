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
from collections.abc import Sequence
from dataclasses import dataclass
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
    "CODES",
    "CUSTOMER_COLUMNS",
    "DECISION_CHANNELS",
    "PRIOR_SCHEMA",
    "REASONS",
    "SEND_COLUMNS",
    "Decided",
    "add_columns",
    "at_positions",
    "decide",
    "decide_positions",
    "message_key",
    "message_keys",
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


def message_keys(
    customer_ids: pl.Series, local_send_dates: pl.Series, channels: Sequence[str]
) -> pl.Series:
    """:func:`message_key` of every channel x row: position ``ch * n + row`` (null where the
    customer id or the date is null).

    One DuckDB query over the two columns (no identity strings built in polars first); the
    date is formatted ``YYYY-MM-DD`` as ``str(date)`` and polars' cast format it.
    """
    n = customer_ids.len()
    if n == 0:
        return pl.Series("message_key", [], dtype=pl.String)
    hashed = ", ".join(
        f"left(sha256(c || chr(31) || '{ch}' || chr(31) || cast(d as varchar)), 32) as k{i}"
        for i, ch in enumerate(channels)
    )
    con = duckdb.connect(":memory:", config={"preserve_insertion_order": True, "threads": 1})
    try:
        table = pa.table(
            {
                "c": customer_ids.cast(pl.String).to_arrow(),
                "d": local_send_dates.cast(pl.Date).to_arrow(),
            }
        )
        con.register("_identity", table)
        out = con.execute(f"select {hashed} from _identity").to_arrow_table()
    finally:
        con.close()
    frame = pl.from_arrow(out)
    assert isinstance(frame, pl.DataFrame)
    return pl.concat(
        [frame[f"k{i}"].cast(pl.String) for i in range(len(channels))], rechunk=True
    ).alias("message_key")


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


CODES: tuple[str, ...] = (*REASONS, "planned")
"""The reason codes of :class:`Decided`: a decision row's ``code`` is an index into this."""
PLANNED = CODES.index("planned")
_CODE = {name: i for i, name in enumerate(CODES)}
_CODE_TYPE = pl.UInt8

DECISION_CHANNELS = ("email", "sms")
"""The channels of an invoice's two decision rows, in their order (the decisions are sorted
by invoice row, then channel)."""

CUSTOMER_COLUMNS = (
    "full_name",
    "first_name",
    "phone_e164",
    "email",
    "country",
    "locale",
    "preferred_channel",
)
"""The customer fields :func:`decide` returns with each decision (what render needs)."""

SEND_COLUMNS = (
    "time_zone",
    "zone_source",
    "candidate_zones",
    "display_zone",
    "local_send_date",
    "window_start_utc",
    "window_end_utc",
)
_INVOICE_DECISION_COLUMNS = (
    "invoice_row",
    "invoice_id",
    "customer_id",
    "cadence_step",
    "amount_due_minor",
    "currency",
    "due_date",
)


@dataclass(frozen=True)
class Decided:
    """:func:`decide`'s result at its three grains, linked by integer positions.

    - ``customers``: one row per customer (position ``c``): the customer fields, the send
      date and window (:func:`_send_dates`).
    - ``invoices``: one row per accepted invoice, sorted by ``invoice_row``: the invoice
      columns of :data:`DECISION_SCHEMA`, ``_c`` (its customer's position, null when the
      customer is unknown) and ``reason_detail``.
    - ``keys``: the message key per customer x channel, at position ``ch * C + c`` (``ch``
      the index in :data:`DECISION_CHANNELS`, ``C`` the number of customers).
    - ``codes``: the reason code (an index into :data:`CODES`) per invoice x channel, at
      position ``2 * i + ch``: the decisions in their final order.

    :meth:`frame` materialises the decisions; building them once, at the end, from these
    keeps the three million rows of a million customers from being gathered once per join.
    """

    customers: pl.DataFrame
    invoices: pl.DataFrame
    keys: pl.Series
    codes: pl.Series

    def positions(self, rows: pl.Series | None = None) -> tuple[pl.Series, ...]:
        """Per decision row (all, or the positions ``rows``): (invoice position, channel
        index, customer position, customer x channel position)."""
        d = pl.int_range(0, self.codes.len(), dtype=pl.UInt32, eager=True) if rows is None else rows
        i = d // 2
        ch = d % 2
        c = self.invoices["_c"].gather(i)
        return i, ch, c, c + ch * self.customers.height

    def frame(
        self, rows: pl.Series | None = None, *, customer_columns: bool = True
    ) -> pl.DataFrame:
        """The decisions as :func:`decide` returns them (sorted by invoice_row, channel), or
        the decision rows at positions ``rows``."""
        i, ch, c, k = self.positions(rows)
        codes = self.codes if rows is None else self.codes.gather(rows)
        columns = {
            **{n: self.invoices[n].gather(i) for n in _INVOICE_DECISION_COLUMNS},
            "channel": pl.Series(DECISION_CHANNELS).gather(ch),
            "status": pl.Series(["excluded", "planned"]).gather((codes == PLANNED).cast(pl.UInt8)),
            "reason": pl.Series(CODES).gather(codes),
            "message_key": self.keys.gather(k),
            **{n: self.customers[n].gather(c) for n in SEND_COLUMNS},
            "reason_detail": self.invoices["reason_detail"].gather(i),
        }
        if customer_columns:
            columns |= {n: self.customers[n].gather(c) for n in CUSTOMER_COLUMNS}
        frame = pl.DataFrame([s.alias(n) for n, s in columns.items()])
        return frame.select(
            *[pl.col(n).cast(t) for n, t in DECISION_SCHEMA.items()],
            pl.col("reason_detail").cast(pl.String),
            *(CUSTOMER_COLUMNS if customer_columns else ()),
        )


def code(name: str) -> pl.Expr:
    """The reason ``name`` as a code literal (its index in :data:`CODES`)."""
    return pl.lit(_CODE[name], _CODE_TYPE)


def at_positions(n: int, index: pl.Series, values: pl.Series) -> pl.Series:
    """A series of length ``n``: ``values`` at positions ``index``, null elsewhere."""
    out = pl.Series(values.name, [], dtype=values.dtype).extend_constant(None, n)
    return out.scatter(index, values) if index.len() else out


def _flags(n: int, index: pl.Series) -> pl.Series:
    """A boolean series of length ``n``, true at positions ``index``."""
    return pl.int_range(0, n, dtype=pl.UInt32, eager=True).is_in(index.cast(pl.UInt32).implode())


def _by_channel(frame: pl.DataFrame, *per_channel: pl.Expr) -> pl.Series:
    """One value per row of ``frame`` and channel (the expressions in the order of
    :data:`DECISION_CHANNELS`), at position ``ch * frame.height + row``."""
    return pl.concat([frame.select(e).to_series() for e in per_channel], rechunk=True)


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
    explanation that overrides the reason's description) and the customer fields render needs
    (:data:`CUSTOMER_COLUMNS`), sorted by invoice_row, channel. :func:`decide_positions`
    returns the same decisions unmaterialised.
    """
    return decide_positions(
        invoices,
        customers,
        consent,
        contact_history,
        prior,
        as_of=as_of,
        cadence=cadence,
        window=window,
        field_issues=field_issues,
        for_date=for_date,
        calendar=calendar,
        horizon_days=horizon_days,
        line_owners=line_owners,
    ).frame()


def decide_positions(
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
) -> Decided:
    """:func:`decide`, as a :class:`Decided`: each rule is evaluated at its own grain.

    The invoice rules (paid ... no_step_due) per invoice, the customer x channel rules
    (consent ... no_email, contacted_recently, already_messaged_today) per customer and
    channel, max_attempts and one_per_day per invoice x channel; the message key once per
    customer x channel. Joins are made once per input table, on the input's own rows; the
    grains are linked by integer positions (gathers), not by joins on the string keys.
    """
    if calendar is not None and "subdivision" not in customers.columns:
        customers = customers.with_columns(customer_subdivisions(customers))
    cust, groups = _customer_frame(
        customers,
        consent,
        contact_history,
        as_of=as_of,
        window=window,
        field_issues=field_issues,
        for_date=for_date,
        calendar=calendar,
        horizon_days=horizon_days,
        line_owners=line_owners,
    )
    n_cust = cust.height
    customer_ids = cust.select("customer_id", pl.int_range(0, n_cust, dtype=pl.UInt32).alias("_c"))
    steps = pl.Series("steps", cadence.steps, dtype=pl.Int32).implode()

    inv = invoices.select(
        pl.col("source_row").alias("invoice_row"),
        "invoice_id",
        "customer_id",
        "amount_due_minor",
        "currency",
        "due_date",
        "status",
        "paid_at",
    ).sort("invoice_row", maintain_order=True)
    joined = add_columns(inv, customer_ids, "customer_id")
    if joined.height != inv.height:  # customers not unique per id: a plain join's rows
        joined = joined.sort("invoice_row", maintain_order=True)
    inv = joined
    n_inv = inv.height
    c = inv["_c"]
    inv = inv.with_columns(
        cust[n].gather(c) for n in ("time_zone", "local_send_date", "_window_passed")
    )
    inv = inv.with_columns(
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

    # The first no-send day (skipped, or for_date itself) on which a cadence step falls.
    # The no-send days are a customer's: exploded per customer, then joined to its invoices.
    no_send = (
        groups.select(pl.int_range(0, groups.height, dtype=pl.UInt32).alias("_g"), "_no_send")
        .filter(pl.col("_no_send").list.len() > 0)
        .explode("_no_send", empty_as_null=True)
        .filter(pl.col("_no_send").is_not_null())
        .unnest("_no_send")
    )
    no_send = (
        cust.select(pl.int_range(0, n_cust, dtype=pl.UInt32).alias("_c"), "_g")
        .filter(pl.col("_g").is_in(no_send["_g"].unique().implode()))
        .join(no_send, on="_g", how="inner")
    )
    hits = (
        inv.select(pl.int_range(0, n_inv, dtype=pl.UInt32).alias("_i"), "_c", "due_date")
        .join(no_send, on="_c", how="inner")
        .with_columns(
            (pl.col("day") - pl.col("due_date")).dt.total_days().cast(pl.Int32).alias("_hstep")
        )
        .filter(pl.col("_hstep").is_in(steps))
        .sort("_i", "day")
        .group_by("_i", maintain_order=True)
        .first()
    )
    inv = inv.with_columns(
        at_positions(n_inv, hits["_i"], hits["day"]).alias("_hday"),
        at_positions(n_inv, hits["_i"], hits["name"]).alias("_hname"),
        at_positions(n_inv, hits["_i"], hits["kind"]).alias("_hkind"),
        at_positions(n_inv, hits["_i"], hits["_hstep"]).alias("_hstep"),
    )
    no_send_hit = pl.col("_hkind").is_not_null() & (
        pl.lit(for_date is not None) | pl.col("cadence_step").is_null()
    )
    payable = pl.col("status").is_in(cadence.payable_statuses)
    paid_before = pl.col("paid_at").is_not_null() & (pl.col("paid_at") <= as_of)

    invoice_code = (
        pl.when(paid_before | (~payable & (pl.col("status") == "paid")))
        .then(code("invoice_paid"))
        .when(~payable & (pl.col("status") == "void"))
        .then(code("invoice_void"))
        .when(~payable & (pl.col("status") == "disputed"))
        .then(code("invoice_disputed"))
        .when(~payable)
        .then(code("invoice_not_payable"))
        .when(pl.col("amount_due_minor") <= 0)
        .then(code("no_balance"))
        .when(pl.col("time_zone").is_null())
        .then(code("timezone_unknown"))
        .when(pl.col("local_send_date").is_null())
        .then(code("no_common_window"))
        .when(pl.col("_window_passed").fill_null(False))
        .then(code("window_passed"))
        .when(no_send_hit & (pl.col("_hkind") == "weekday"))
        .then(code("quiet_weekday"))
        .when(no_send_hit)
        .then(code("holiday"))
        .when(pl.col("cadence_step").is_null())
        .then(code("no_step_due"))
        .otherwise(None)
    )
    inv = inv.with_columns(
        invoice_code.alias("_code"),
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
    holiday_rows = inv["_code"].is_in([_CODE["holiday"], _CODE["quiet_weekday"]]).arg_true()
    if holiday_rows.len():
        inv = inv.with_columns(
            inv["reason_detail"].scatter(
                holiday_rows,
                _holiday_details(inv[holiday_rows], cust, for_date=for_date),
            )
        )

    # Message keys and the consent, address and contact rules: per customer x channel.
    keys = message_keys(cust["customer_id"], cust["local_send_date"], DECISION_CHANNELS)
    contact_codes = _by_channel(cust, *[_contact_code(ch, cadence) for ch in DECISION_CHANNELS])
    n_keys = 2 * n_cust
    recent = _flags(n_keys, _recent_keys(contact_history, prior, cust, customer_ids, keys, cadence))
    taken = _flags(n_keys, _taken_keys(prior, cust, customer_ids, keys))
    late_codes = (
        pl.DataFrame({"recent": recent, "taken": taken})
        .select(
            pl.when(pl.col("recent"))
            .then(code("contacted_recently"))
            .when(pl.col("taken"))
            .then(code("already_messaged_today"))
            .otherwise(None)
        )
        .to_series()
    )

    # Attempts per invoice x channel: this invoice's earlier messages (other keys, earlier
    # days) plus the contact history of the invoice and of its customer.
    attempts = _attempts(
        contact_history, prior, inv, cust, keys, customer_ids, as_of=as_of, n_inv=n_inv
    )

    d = pl.int_range(0, 2 * n_inv, dtype=pl.UInt32, eager=True)
    i = d // 2
    ch = d % 2
    k = c.gather(i) + ch * n_cust
    codes = (
        pl.DataFrame(
            {
                "inv": inv["_code"].gather(i),
                "contact": contact_codes.gather(k),
                "attempts": attempts,
                "late": late_codes.gather(k),
            }
        )
        .select(
            pl.coalesce(
                "inv",
                "contact",
                pl.when(pl.col("attempts") >= cadence.max_attempts_per_invoice).then(
                    code("max_attempts")
                ),
                "late",
            )
        )
        .to_series()
    )

    # One channel per customer and day: the preferred one if eligible, else the first
    # eligible of cadence.channel_order; the other is one_per_day.
    eligible = _flags(n_keys, k.filter(codes.is_null()))
    order = {name: i for i, name in enumerate(cadence.channel_order)}
    ranks = [
        pl.when(pl.col("preferred_channel") == name)
        .then(-1)
        .otherwise(order.get(name, 99))
        .alias(f"_rank_{name}")
        for name in DECISION_CHANNELS
    ]
    choice = (
        cust.select("preferred_channel")
        .with_columns(ranks)
        .with_columns(
            eligible.slice(0, n_cust).alias("_e0"),
            eligible.slice(n_cust, n_cust).alias("_e1"),
        )
        .select(
            pl.when(pl.col("_e0") & pl.col("_e1"))
            .then(
                pl.when(
                    pl.col(f"_rank_{DECISION_CHANNELS[1]}")
                    <= pl.col(f"_rank_{DECISION_CHANNELS[0]}")
                )
                .then(1)
                .otherwise(0)
            )
            .when(pl.col("_e0"))
            .then(0)
            .when(pl.col("_e1"))
            .then(1)
            .otherwise(None)
            .cast(pl.UInt32)
        )
        .to_series()
    )
    chosen = choice.gather(c.gather(i))
    codes = (
        pl.DataFrame({"code": codes, "ch": ch, "chosen": chosen})
        .select(
            pl.when(pl.col("code").is_not_null())
            .then(pl.col("code"))
            .when(pl.col("ch") != pl.col("chosen"))
            .then(code("one_per_day"))
            .otherwise(code("planned"))
        )
        .to_series()
        .alias("code")
    )
    return Decided(
        customers=cust,
        invoices=inv.select(*_INVOICE_DECISION_COLUMNS, "_c", "reason_detail"),
        keys=keys,
        codes=codes,
    )


def _customer_frame(
    customers: pl.DataFrame,
    consent: pl.DataFrame,
    contact_history: pl.DataFrame,
    *,
    as_of: datetime,
    window: WindowSettings,
    field_issues: pl.DataFrame | None,
    for_date: date | None,
    calendar: pl.DataFrame | None,
    horizon_days: int,
    line_owners: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per customer: the fields decide reads, the send date and window (and ``_g``,
    its row in the second frame, the send-date groups' ``_no_send``), the owners of a shared
    phone line, the consent state, the rejected phone / e-mail flags and the contact
    history rows without an invoice (``_hist_customer``)."""
    dates = _send_dates(customers, as_of, window, for_date, calendar, horizon_days)
    keys = [k for k in SEND_DATE_KEYS if k in customers.columns]
    group = add_columns(
        customers.select(keys),
        dates.select(*keys, pl.int_range(0, dates.height, dtype=pl.UInt32).alias("_g")),
        keys,
        nulls_equal=True,
    )["_g"]
    fields = [
        c
        for c in ("customer_id", *CUSTOMER_COLUMNS, "zone_source", "subdivision")
        if c in customers.columns
    ]
    # The send date's columns per customer; the no-send days (a list) stay per group.
    cust = customers.select(fields).with_columns(
        *[
            dates[n].gather(group)
            for n in dates.columns
            if n not in (*keys, "country", "subdivision", "_no_send")
        ],
        group.alias("_g"),
    )
    # A line (E.164 without extension, any type) given by several customers is shared: an
    # SMS to it could be read by someone else. Customers without the column (older callers)
    # fall back to their SMS number. ``line_owners`` (see :func:`phone_line_owners`) counts
    # owners over every partition of a partitioned run; by default, this run's customers.
    phone_owners = (
        phone_line_owners(customers)
        if line_owners is None
        else line_owners.select("phone_line", "_phone_owners")
    ).rename({"phone_line": "phone_e164"})
    shared = phone_owners.filter(pl.col("_phone_owners") > 1)  # the rule reads nothing else
    cust = add_columns(cust, shared, "phone_e164")
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
    history = _contact_history(contact_history)
    per_customer = (
        history.filter((pl.col("attempted_at") <= as_of) & pl.col("invoice_id").is_null())
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("_hist_customer"))
    )
    cust = add_columns(cust, consent, "customer_id")
    cust = add_columns(cust, bad_phone, "customer_id")
    cust = add_columns(cust, bad_email, "customer_id")
    return add_columns(cust, per_customer, "customer_id"), dates.select("_no_send")


def _contact_history(contact_history: pl.DataFrame) -> pl.DataFrame:
    if "invoice_id" not in contact_history.columns:
        return contact_history.with_columns(pl.lit(None, pl.String).alias("invoice_id"))
    return contact_history


def _holiday_details(rows: pl.DataFrame, cust: pl.DataFrame, *, for_date: date | None) -> pl.Series:
    """The detail of the holiday / quiet_weekday decisions ``rows`` (invoice rows)."""
    region_columns = [c for c in ("country", "subdivision") if c in cust.columns]
    rows = rows.with_columns(cust[c].gather(rows["_c"]) for c in region_columns)
    region = (
        pl.concat_str([pl.col("country"), pl.col("subdivision")], separator="-", ignore_nulls=True)
        if "subdivision" in region_columns
        else pl.col("country")
    )
    step = pl.col("_hstep").cast(pl.String)
    return rows.select(
        pl.format(
            "{} is a no-send day in {}: {}; the T{} step falls on it{}",
            pl.col("_hday").dt.strftime("%Y-%m-%d"),
            region,
            pl.col("_hname"),
            pl.when(pl.col("_hstep") >= 0).then(pl.lit("+") + step).otherwise(step),
            pl.lit(" (the reminder is not moved)" if for_date is None else ""),
        )
    ).to_series()


def _contact_code(channel: str, cadence: CadenceSettings) -> pl.Expr:
    """The consent and address rules of one channel, over a customer row."""
    allowed = channel_allowed(channel, email_requires_opt_in=cadence.email_requires_opt_in)
    chain = (
        pl.when(pl.col("consent_unclear").fill_null(False))
        .then(code("consent_unclear"))
        .when(pl.col("global_opt_out").fill_null(False))
        .then(code("opted_out"))
        .when(~allowed.fill_null(False))
        .then(code("no_opt_in"))
    )
    if channel == "sms":
        chain = (
            chain.when(pl.col("phone_e164").is_null() & pl.col("_bad_phone").fill_null(False))
            .then(code("invalid_phone"))
            .when(pl.col("phone_e164").is_null())
            .then(code("no_phone"))
            .when(pl.col("_phone_owners") > 1)
            .then(code("phone_shared"))
        )
    else:
        chain = (
            chain.when(pl.col("email").is_null() & pl.col("_bad_email").fill_null(False))
            .then(code("invalid_email"))
            .when(pl.col("email").is_null())
            .then(code("no_email"))
        )
    return chain.otherwise(None)


def _per_channel(frame: pl.DataFrame, n_cust: int) -> pl.DataFrame:
    """``frame`` (with a customer position ``_c``) once per channel, with ``_ch`` and the
    customer x channel position ``_k``."""
    return pl.concat(
        [
            frame.with_columns(
                pl.lit(ch, pl.UInt32).alias("_ch"), (pl.col("_c") + ch * n_cust).alias("_k")
            )
            for ch in range(len(DECISION_CHANNELS))
        ]
    )


def _attempted(prior: pl.DataFrame) -> pl.DataFrame:
    return prior.filter(pl.col("state").is_in(ATTEMPTED_STATES))


def _recent_keys(
    contact_history: pl.DataFrame,
    prior: pl.DataFrame,
    cust: pl.DataFrame,
    customer_ids: pl.DataFrame,
    keys: pl.Series,
    cadence: CadenceSettings,
) -> pl.Series:
    """Customer x channel positions contacted inside the frequency cap before their window:
    a contact-history row (any date) or an attempted outbox message with another key."""
    history = pl.concat(
        [
            contact_history.select("customer_id", pl.col("attempted_at").alias("_at")).with_columns(
                pl.lit(None, pl.String).alias("_prior_key")
            ),
            _attempted(prior).select(
                "customer_id",
                pl.col("send_at_utc").alias("_at"),
                pl.col("message_key").alias("_prior_key"),
            ),
        ],
        how="vertical_relaxed",
    )
    cap = timedelta(hours=cadence.frequency_cap_hours)
    found = _per_channel(history.join(customer_ids, on="customer_id", how="inner"), cust.height)
    found = found.with_columns(
        keys.gather(found["_k"]).alias("_key"),
        cust["window_start_utc"].gather(found["_c"]).alias("_start"),
    ).filter(
        (pl.col("_prior_key").is_null() | (pl.col("_prior_key") != pl.col("_key")))
        & (pl.col("_at") > pl.col("_start") - cap)
    )
    return found["_k"].unique()


def _taken_keys(
    prior: pl.DataFrame, cust: pl.DataFrame, customer_ids: pl.DataFrame, keys: pl.Series
) -> pl.Series:
    """Customer x channel positions whose local send date already has another outbox message
    of the customer (not cancelled)."""
    same_day = prior.filter(pl.col("state") != "cancelled").select(
        "customer_id", "local_send_date", pl.col("message_key").alias("_other_key")
    )
    found = same_day.join(customer_ids, on="customer_id", how="inner")
    found = found.filter(pl.col("local_send_date") == cust["local_send_date"].gather(found["_c"]))
    found = _per_channel(found, cust.height)
    found = found.filter(pl.col("_other_key") != keys.gather(found["_k"]))
    return found["_k"].unique()


def _attempts(
    contact_history: pl.DataFrame,
    prior: pl.DataFrame,
    inv: pl.DataFrame,
    cust: pl.DataFrame,
    keys: pl.Series,
    customer_ids: pl.DataFrame,
    *,
    as_of: datetime,
    n_inv: int,
) -> pl.Series:
    """Attempts per invoice x channel (position ``2 * i + ch``), nulls as 0.

    The outbox messages of earlier days that carried the invoice (other message keys), the
    contact-history rows of the invoice and those of its customer without an invoice, at or
    before ``as_of``."""
    attempts = (
        _attempted(prior)
        .select("message_key", "local_send_date", pl.col("invoice_ids").str.split(",").alias("inv"))
        .explode("inv", empty_as_null=True)
        .rename({"inv": "invoice_id", "message_key": "_prior_key", "local_send_date": "_pd"})
    )
    positions = inv.select(
        "invoice_id", pl.int_range(0, n_inv, dtype=pl.UInt32).alias("_i"), "_c"
    ).filter(pl.col("_c").is_not_null())
    found = _per_channel(attempts.join(positions, on="invoice_id", how="inner"), cust.height)
    found = (
        found.with_columns(
            keys.gather(found["_k"]).alias("_key"),
            cust["local_send_date"].gather(found["_c"]).alias("_lsd"),
        )
        .filter((pl.col("_prior_key") != pl.col("_key")) & (pl.col("_pd") < pl.col("_lsd")))
        .group_by("_i", "_ch")
        .agg(pl.col("_prior_key").n_unique().cast(pl.Int64).alias("_attempts"))
    )
    history = _contact_history(contact_history)
    per_invoice = (
        history.filter((pl.col("attempted_at") <= as_of) & pl.col("invoice_id").is_not_null())
        .group_by("customer_id", "invoice_id")
        .agg(pl.len().cast(pl.Int64).alias("_hist_invoice"))
        .join(
            inv.select(
                "customer_id", "invoice_id", pl.int_range(0, n_inv, dtype=pl.UInt32).alias("_i")
            ),
            on=["customer_id", "invoice_id"],
            how="inner",
        )
    )
    per_invoice_total = at_positions(
        n_inv, per_invoice["_i"], per_invoice["_hist_invoice"]
    ).fill_null(0) + cust["_hist_customer"].gather(inv["_c"]).fill_null(0)
    d = found["_i"] * 2 + found["_ch"]
    return at_positions(2 * n_inv, d, found["_attempts"]).fill_null(0) + per_invoice_total.gather(
        pl.int_range(0, 2 * n_inv, dtype=pl.UInt32, eager=True) // 2
    )
