"""Outbox and run records in the warehouse: runs, decisions, quarantine, messages, events.

Message states move forward only::

    planned ─► ready ─► pushing ─► pushed ─► sent | failed | skipped | unknown
       │         │         │          │         (the Genesys wrap-up code of the attempt, read
       │         │         │          │          by collect-outcomes; kept in
       │         │         │          │          genesys_wrapup_code; ``sent`` = handed off,
       │         │         │          │          not delivered: delivery is a carrier fact)
       │         │         │          ├─► expired   (never attempted, window over: made
       │         │         │          │              uncontactable in Genesys, verified)
       │         │         │          └─► cancelled (paid / opted out since planning: made
       │         │         │                          uncontactable, verified not attempted,
       │         │         │                          then deleted; until verified it stays
       │         │         │                          pushed with state_reason cancel_pending)
       │         │         └─► rejected  (Genesys refused the contact: 4xx, code kept)
       │         ├─► deferred (over the campaign's capacity before the window closes)
       │         └─► expired  (its window closed before it was added)
       ├─► cancelled (a later run excluded it: paid, opted out, ...)
       └─► expired   (its window closed before it was pushed)

``delivered`` / ``undelivered`` are reserved for carrier records (issue 9); nothing writes
them from Genesys wrap-up codes.

A re-run of build-reminders upserts by message key: new keys are inserted as ``planned``;
keys still ``planned`` are refreshed (send time, text); keys in any later state are left alone,
so nothing already handed to Genesys is ever planned again. Every change is also appended to
``message_events``. Each function works inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tasks.eligibility import PRIOR_SCHEMA
from tasks.errors import OutboxConflict
from tasks.plan import Plan
from tasks.warehouse import read_arrow, read_frame, stage, write_frame

__all__ = [
    "MESSAGE_COLUMNS",
    "exclude_decisions",
    "finish_run",
    "last_succeeded_rows",
    "load_prior",
    "mark_ready",
    "messages_in",
    "save_plan",
    "start_run",
    "transition",
    "wave_summary",
]

MESSAGE_COLUMNS = (
    "message_key",
    "customer_id",
    "channel",
    "local_send_date",
    "time_zone",
    "candidate_zones",
    "send_at_local",
    "send_at_local_by_zone",
    "send_at_utc",
    "window_start_utc",
    "window_end_utc",
    "wave_id",
    "slot",
    "wave_start_utc",
    "to_address",
    "template",
    "subject",
    "body",
    "encoding",
    "segments",
    "units",
    "invoice_ids",
    "invoice_count",
    "cadence_step",
    "amount_total_minor",
    "currency",
    "link_token",
    "template_values",
    "state",
    "state_reason",
    "first_run_id",
    "last_run_id",
    "created_at_utc",
    "updated_at_utc",
)
DECISION_COLUMNS = (
    "run_id",
    "invoice_id",
    "invoice_row",
    "customer_id",
    "channel",
    "cadence_step",
    "status",
    "reason",
    "detail",
    "message_key",
    "time_zone",
    "zone_source",
    "candidate_zones",
    "local_send_date",
    "send_at_local",
    "send_at_local_by_zone",
    "send_at_utc",
    "wave_id",
    "slot",
    "amount_due_minor",
    "currency",
)
_REFRESHED = (
    "local_send_date",
    "time_zone",
    "candidate_zones",
    "send_at_local",
    "send_at_local_by_zone",
    "send_at_utc",
    "window_start_utc",
    "window_end_utc",
    "wave_id",
    "slot",
    "wave_start_utc",
    "to_address",
    "template",
    "subject",
    "body",
    "encoding",
    "segments",
    "units",
    "invoice_ids",
    "invoice_count",
    "cadence_step",
    "amount_total_minor",
    "currency",
    "template_values",
    "last_run_id",
    "updated_at_utc",
)
HISTORY_DAYS = 400


def start_run(
    conn: Connection,
    *,
    run_id: str,
    flow: str,
    as_of: datetime,
    now: datetime,
    dry_run: bool,
    parameters: dict[str, Any],
    scheduled_start: datetime | None = None,
    as_of_source: str | None = None,
) -> None:
    """Insert the run row (status ``running``); a re-used run id starts over.
    ``scheduled_start`` is the Prefect flow run's scheduled start (null outside Prefect),
    ``as_of_source`` where ``as_of`` came from (parameter, scheduled, clock)."""
    for table in ("decisions", "quarantine"):
        conn.execute(sa.text(f"delete from {table} where run_id = :r"), {"r": run_id})
    conn.execute(sa.text("delete from runs where run_id = :r"), {"r": run_id})
    conn.execute(
        sa.text(
            "insert into runs (run_id, flow, as_of_utc, started_at_utc, status, dry_run,"
            " parameters, scheduled_start_utc, as_of_source)"
            " values (:r, :f, :a, :s, 'running', :d, :p, :ss, :src)"
        ),
        {
            "r": run_id,
            "f": flow,
            "a": as_of,
            "s": now,
            "d": dry_run,
            "p": json.dumps(parameters, default=str, sort_keys=True),
            "ss": scheduled_start,
            "src": as_of_source,
        },
    )


def finish_run(
    conn: Connection,
    *,
    run_id: str,
    now: datetime,
    status: str,
    counts: dict[str, int] | None = None,
    accounting_ok: bool | None = None,
    error: str | None = None,
    data_docs_path: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "finished_at_utc": now,
        "status": status,
        "accounting_ok": accounting_ok,
        "error": error,
    }
    if data_docs_path is not None:
        values["data_docs_path"] = data_docs_path
    values |= counts or {}
    assignments = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(
        sa.text(f"update runs set {assignments} where run_id = :run_id"),
        values | {"run_id": run_id},
    )


def last_succeeded_rows(conn: Connection, *, flow: str, run_id: str) -> dict[str, int]:
    """``<input>_in`` per input of the latest succeeded run of ``flow`` other than ``run_id``
    (empty when there is none): the baseline of the ``source_shrunk`` gate."""
    columns = [f"{n}_in" for n in ("customers", "invoices", "consent_events", "contact_history")]
    row = conn.execute(
        sa.text(
            f"select {', '.join(columns)} from runs where flow = :f and status = 'succeeded'"
            " and run_id <> :r order by started_at_utc desc limit 1"
        ),
        {"f": flow, "r": run_id},
    ).first()
    if row is None:
        return {}
    return {c[: -len("_in")]: int(v) for c, v in zip(columns, row, strict=True) if v is not None}


def load_prior(conn: Connection, *, as_of: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Outbox rows that matter to eligibility, and the payment-link token per message key
    (a frame of message_key, link_token: what ``render_messages`` takes as
    ``existing_tokens``)."""
    since = (as_of - timedelta(days=HISTORY_DAYS)).date()
    # Column-pruned and date-bounded, read through Arrow / COPY (no Python row objects).
    frame = read_arrow(
        conn,
        "select message_key, customer_id, channel, local_send_date, send_at_utc, invoice_ids,"
        f" state, link_token from messages where local_send_date >= date '{since.isoformat()}'",
        schema=PRIOR_SCHEMA | {"link_token": pl.String()},
    )
    return frame.drop("link_token"), frame.select("message_key", "link_token")


def _events(frame: pl.DataFrame, *, run_id: str, now: datetime) -> pl.DataFrame:
    return frame.select(
        "message_key",
        pl.lit(now).alias("at_utc"),
        pl.lit(run_id).alias("run_id"),
        pl.col("from_state").cast(pl.String),
        pl.col("to_state").cast(pl.String),
        pl.col("detail").cast(pl.String),
    )


def save_plan(
    conn: Connection, plan: Plan, *, run_id: str, now: datetime, dry_run: bool
) -> dict[str, int]:
    """Write the run's decisions and quarantine; unless ``dry_run``, upsert the outbox."""
    write_frame(
        conn,
        "decisions",
        plan.decisions.with_columns(pl.lit(run_id).alias("run_id")).select(DECISION_COLUMNS),
    )
    write_frame(conn, "quarantine", plan.quarantine.with_columns(pl.lit(run_id).alias("run_id")))
    if dry_run:
        return {"inserted": 0, "refreshed": 0, "cancelled": 0}

    staged = plan.messages.with_columns(
        pl.lit("planned").alias("state"),
        pl.lit(None, pl.String).alias("state_reason"),
        pl.lit(run_id).alias("first_run_id"),
        pl.lit(run_id).alias("last_run_id"),
        pl.lit(now).alias("created_at_utc"),
        pl.lit(now).alias("updated_at_utc"),
    ).select(MESSAGE_COLUMNS)
    with stage(conn, "stage_messages", staged, like="messages"):
        existing = read_arrow(
            conn,
            "select s.message_key, m.state from stage_messages s"
            " join messages m on m.message_key = s.message_key",
            schema={"message_key": pl.String(), "state": pl.String()},
        )
        refreshed = existing.filter(pl.col("state") == "planned").height
        if refreshed:
            # before the new keys go in: after, it would rewrite every row just inserted
            assignments = ", ".join(f"{c} = s.{c}" for c in _REFRESHED)
            conn.exec_driver_sql(
                f"update messages set {assignments} from stage_messages s"
                " where messages.message_key = s.message_key and messages.state = 'planned'"
            )
    # Only keys still planned or ready can be cancelled, and only those this plan no longer
    # plans: read those (a few hundred thousand at most, none of them new) and look up their
    # decisions, rather than grouping every excluded decision's key (millions at scale).
    cancellable = read_arrow(
        conn,
        "select message_key from messages where state in ('planned', 'ready')",
        schema={"message_key": pl.String()},
    ).join(plan.messages.select("message_key"), on="message_key", how="anti")
    new = staged.join(existing, on="message_key", how="anti")
    write_frame(conn, "messages", new)
    write_frame(
        conn,
        "message_events",
        _events(
            new.select(
                "message_key",
                pl.lit(None).alias("from_state"),
                pl.lit("planned").alias("to_state"),
                pl.lit("planned by build-reminders").alias("detail"),
            ),
            run_id=run_id,
            now=now,
        ),
    )
    excluded = (
        plan.decisions.filter(
            (pl.col("status") != "planned")
            & pl.col("message_key").is_in(cancellable["message_key"].implode())
        )
        .group_by("message_key")
        .agg(pl.col("reason").first())
        if cancellable.height
        else pl.DataFrame(schema={"message_key": pl.String(), "reason": pl.String()})
    )
    cancelled = 0
    if excluded.height:
        conn.exec_driver_sql("drop table if exists stage_cancel")
        conn.exec_driver_sql(
            "create temporary table stage_cancel (message_key varchar, reason varchar)"
        )
        write_frame(conn, "stage_cancel", excluded)
        to_cancel = read_arrow(
            conn,
            "select m.message_key, m.state as from_state, c.reason as detail"
            " from messages m join stage_cancel c on c.message_key = m.message_key"
            " where m.state in ('planned', 'ready')",
            schema={"message_key": pl.String(), "from_state": pl.String(), "detail": pl.String()},
        )
        if to_cancel.height:
            conn.execute(
                sa.text(
                    "update messages set state = 'cancelled', state_reason = c.reason,"
                    " last_run_id = :r, updated_at_utc = :t from stage_cancel c"
                    " where messages.message_key = c.message_key"
                    " and messages.state in ('planned', 'ready')"
                ),
                {"r": run_id, "t": now},
            )
            write_frame(
                conn,
                "message_events",
                _events(
                    to_cancel.with_columns(pl.lit("cancelled").alias("to_state")),
                    run_id=run_id,
                    now=now,
                ),
            )
            cancelled = to_cancel.height
    return {"inserted": new.height, "refreshed": refreshed, "cancelled": cancelled}


def mark_ready(conn: Connection, *, now: datetime, horizon: timedelta, run_id: str) -> pl.DataFrame:
    """Move planned messages whose wave (slot) opens before ``now + horizon`` to ``ready``,
    and planned or ready messages whose send window already closed to ``expired`` (a ready
    message was never added to Genesys, so nothing there can send it). Returns the ready waves:
    wave_id, channel, time_zone, local_send_date, slot, messages, first/last send time."""
    params = {"now": now, "until": now + horizon, "r": run_id}
    changes = read_frame(
        conn,
        "select message_key, state as from_state,"
        " case when window_end_utc <= :now then 'expired' else 'ready' end as to_state,"
        " case when window_end_utc <= :now then 'window closed before push'"
        " else 'window opens within the push horizon' end as detail"
        " from messages where (state = 'planned' and wave_start_utc <= :until)"
        " or (state = 'ready' and window_end_utc <= :now)",
        params,
        schema={
            "message_key": pl.String(),
            "from_state": pl.String(),
            "to_state": pl.String(),
            "detail": pl.String(),
        },
    )
    conn.execute(
        sa.text(
            "update messages set state = case when window_end_utc <= :now then 'expired'"
            " else 'ready' end, last_run_id = :r, updated_at_utc = :now"
            " where (state = 'planned' and wave_start_utc <= :until)"
            " or (state = 'ready' and window_end_utc <= :now)"
        ),
        params,
    )
    write_frame(conn, "message_events", _events(changes, run_id=run_id, now=now))
    return wave_summary(conn, state="ready")


def wave_summary(conn: Connection, *, state: str, since: date | None = None) -> pl.DataFrame:
    """Messages per wave in ``state``: one row per wave_id."""
    return read_frame(
        conn,
        "select wave_id, channel, time_zone, local_send_date, slot, count(*) as messages,"
        " min(send_at_utc) as first_send_utc, max(send_at_utc) as last_send_utc"
        " from messages where state = :state"
        + (" and local_send_date >= :since" if since else "")
        + " group by wave_id, channel, time_zone, local_send_date, slot"
        " order by local_send_date, time_zone, channel, slot",
        {"state": state, "since": since},
        schema={
            "wave_id": pl.String(),
            "channel": pl.String(),
            "time_zone": pl.String(),
            "local_send_date": pl.Date(),
            "slot": pl.Int32(),
            "messages": pl.Int64(),
            "first_send_utc": pl.Datetime("us"),
            "last_send_utc": pl.Datetime("us"),
        },
    )


def transition(
    conn: Connection,
    keys: pl.DataFrame,
    *,
    from_states: tuple[str, ...],
    to_state: str,
    run_id: str,
    now: datetime,
    detail: str | None = None,
    all_or_nothing: bool = False,
) -> int:
    """Move the messages in ``keys`` (a frame with ``message_key`` and optionally ``detail``,
    ``genesys_contact_list_id``, ``genesys_campaign_id``, ``genesys_error_code``,
    ``genesys_wrapup_code``) that are in
    one of ``from_states`` to ``to_state``, logging each change. Returns how many moved.

    ``all_or_nothing`` (one from-state, distinct keys): the caller knows every key is in that
    state (the push's own intents and results), so the outbox is scanned once, by the update,
    instead of twice; if any key was not in it, :class:`~tasks.errors.OutboxConflict` is
    raised and the caller's transaction must be rolled back."""
    if keys.height == 0:
        return 0
    if all_or_nothing and len(from_states) != 1:
        raise ValueError("all_or_nothing moves from exactly one state")
    extra = [
        c
        for c in (
            "genesys_contact_list_id",
            "genesys_campaign_id",
            "genesys_error_code",
            "genesys_wrapup_code",
        )
        if c in keys.columns
    ]
    staged = keys.select(
        "message_key",
        (pl.col("detail") if "detail" in keys.columns else pl.lit(detail))
        .cast(pl.String)
        .alias("detail"),
        *extra,
    )
    if all_or_nothing:
        staged = staged.unique("message_key", keep="first", maintain_order=True)
    conn.exec_driver_sql("drop table if exists stage_transition")
    conn.exec_driver_sql(
        "create temporary table stage_transition (message_key varchar, detail varchar"
        + "".join(f", {c} varchar" for c in extra)
        + ")"
    )
    write_frame(conn, "stage_transition", staged)
    states = ", ".join(f"'{s}'" for s in from_states)
    sets = "".join(f", {c} = t.{c}" for c in extra)
    update = sa.text(
        f"update messages set state = :to, state_reason = t.detail, last_run_id = :r,"
        f" updated_at_utc = :now{sets} from stage_transition t"
        f" where messages.message_key = t.message_key and messages.state in ({states})"
    )
    params = {"to": to_state, "r": run_id, "now": now}
    if all_or_nothing:
        # the update's row count says whether every key moved: one scan of the outbox
        updated = _updated_rows(conn.execute(update, params))
        if updated != staged.height:
            raise OutboxConflict(
                f"{staged.height - updated} of {staged.height} messages were no longer"
                f" {from_states[0]} when moving them to {to_state}"
            )
        moved = staged.select("message_key", "detail").with_columns(
            pl.lit(from_states[0]).alias("from_state")
        )
    else:
        # through Arrow / COPY: a group of batches moves thousands of rows, no row objects
        moved = read_arrow(
            conn,
            "select m.message_key, m.state as from_state, t.detail"
            " from messages m join stage_transition t on t.message_key = m.message_key"
            f" where m.state in ({states})",
            schema={"message_key": pl.String(), "from_state": pl.String(), "detail": pl.String()},
        )
        if moved.height == 0:
            return 0
        conn.execute(update, params)
    write_frame(
        conn,
        "message_events",
        _events(moved.with_columns(pl.lit(to_state).alias("to_state")), run_id=run_id, now=now),
    )
    return moved.height


def _updated_rows(result: sa.CursorResult) -> int:
    """Rows an UPDATE changed: PostgreSQL's rowcount; DuckDB answers -1 there and returns
    the count as the statement's one row."""
    if result.rowcount is not None and result.rowcount >= 0:
        return int(result.rowcount)
    row = result.fetchone()
    return int(row[0]) if row else 0


def exclude_decisions(conn: Connection, keys: pl.DataFrame, *, reason: str, detail: str) -> None:
    """Turn the planned decisions of the latest build run of each message into exclusions."""
    if keys.height == 0:
        return
    conn.exec_driver_sql("drop table if exists stage_exclude")
    conn.exec_driver_sql("create temporary table stage_exclude (message_key varchar)")
    write_frame(conn, "stage_exclude", keys.select("message_key").unique())
    conn.execute(
        sa.text(
            "update decisions set status = 'excluded', reason = :reason, detail = :detail"
            " from stage_exclude s, messages m"
            " where decisions.message_key = s.message_key and m.message_key = s.message_key"
            " and decisions.run_id = m.first_run_id and decisions.status = 'planned'"
        ),
        {"reason": reason, "detail": detail},
    )


def messages_in(
    conn: Connection,
    states: tuple[str, ...],
    *,
    window_end_after: datetime | None = None,
    invoice_ids: Sequence[str] = (),
    customer_ids: Sequence[str] = (),
) -> pl.DataFrame:
    """Outbox rows in ``states`` (optionally only those whose window ends after a time),
    ordered by wave and send time. With ``invoice_ids`` / ``customer_ids``: only rows that
    may be of one of these invoices (``invoice_ids`` holds it between commas; the caller
    checks the exact list) or customers, filtered by the database (no read of every live
    message)."""
    states_sql = ", ".join(f"'{s}'" for s in states)
    where = f"state in ({states_sql})"
    order = " order by wave_start_utc, wave_id, send_at_utc, message_key"
    values: list[Any] = []
    if window_end_after is not None:
        where += " and window_end_utc > ?"
        values.append(window_end_after)
    hits = ["position(? in ',' || invoice_ids || ',') > 0" for _ in invoice_ids] + [
        "customer_id = ?" for _ in customer_ids
    ]
    if hits:
        where += " and (" + " or ".join(hits) + ")"
        values += [f",{i}," for i in invoice_ids] + list(customer_ids)
    if conn.dialect.name == "duckdb":
        # through Arrow: a push reads every live message, no Python row per message
        raw = conn.connection.dbapi_connection
        assert raw is not None
        sql = f"select * from messages where {where}{order}"
        return _as_read_frame(raw.execute(sql, values).pl())  # type: ignore[attr-defined]
    parts = where.split("?")
    named = parts[0] + "".join(f":p{i}{part}" for i, part in enumerate(parts[1:]))
    params = {f"p{i}": v for i, v in enumerate(values)}
    return read_frame(conn, f"select * from messages where {named}{order}", params)


def _as_read_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The dtypes ``read_frame`` infers from Python rows, for a frame read through Arrow:
    integers as Int64, a column with no value (every column of an empty result) as Null."""
    if frame.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(frame.columns, pl.Null()))
    empty = {c for c in frame.columns if frame[c].null_count() == frame.height}
    return frame.with_columns(
        pl.lit(None).alias(c)
        if c in empty
        else pl.col(c).cast(pl.Int64)
        if frame.schema[c].is_integer()
        else pl.col(c)
        for c in frame.columns
    )
