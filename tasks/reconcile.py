"""Reconciliation: delivery into the outbox from matched carrier records, and the summaries.

The matching itself is SQL (``sql/models/reconcile_message.sql``; rules in its header). Here:

* :func:`update_delivery` moves outbox messages ``sent`` -> ``delivered`` / ``undelivered``
  only from an unambiguous matched carrier record (``reconcile_message.delivery``), never from a
  wrap-up code; each move is a ``message_events`` row naming the carrier record. A message with
  several attempts is delivered when any matched record is delivered. Re-running changes
  nothing (only ``sent`` messages move).
* :func:`daily_totals`, :func:`discrepancies`, :func:`period_rows` read the models;
  :func:`summary_markdown` renders them; :func:`chart_svg` draws sent, delivered and billed per
  day as a self-contained SVG (no plotting library is in the lock).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tasks.outbox import transition
from tasks.warehouse import _sql_files, read_frame, write_frame

__all__ = [
    "STATUSES",
    "chart_svg",
    "daily_totals",
    "delivery_moves",
    "discrepancies",
    "load_rates",
    "period_rows",
    "reconcile_days",
    "status_counts",
    "summary_markdown",
    "update_delivery",
]

STATUSES = (
    "matched",
    "attempted_not_billed",
    "billed_not_attempted",
    "price_mismatch",
    "segment_mismatch",
    "pending_final",
    "ambiguous_match",
)
"""reconcile_message.status values."""


def _day_filter(days: Sequence[date] | None, column: str) -> tuple[str, dict[str, Any]]:
    if not days:
        return "", {}
    params = {f"d{i}": d for i, d in enumerate(days)}
    return f" and {column} in (" + ", ".join(f":d{i}" for i in range(len(days))) + ")", params


def delivery_moves(matched: pl.DataFrame) -> pl.DataFrame:
    """Per message key, the delivery state its matched carrier records prove (pure).

    ``matched`` has message_key, delivery (delivered | undelivered | pending | unknown),
    carrier, carrier_message_id, carrier_status_class, carrier_error_code. A message is
    ``delivered`` when any record says delivered, else ``undelivered`` when any says
    undelivered; pending / unknown move nothing. Returns message_key, to_state, detail."""
    final = matched.filter(pl.col("delivery").is_in(["delivered", "undelivered"]))
    detail = (
        pl.lit("carrier ")
        + pl.col("carrier")
        + pl.lit(" ")
        + pl.col("carrier_message_id")
        + pl.lit(": ")
        + pl.col("carrier_status_class")
        + pl.when(pl.col("carrier_error_code").is_not_null())
        .then(pl.lit(" (error ") + pl.col("carrier_error_code") + pl.lit(")"))
        .otherwise(pl.lit(""))
    )
    ranked = final.with_columns(
        detail.alias("detail"),
        (pl.col("delivery") == "delivered").alias("_delivered"),
    ).sort(["message_key", "_delivered", "carrier_message_id"], descending=[False, True, False])
    return ranked.group_by("message_key", maintain_order=True).agg(
        pl.col("delivery").first().alias("to_state"), pl.col("detail").first()
    )


def update_delivery(
    conn: Connection,
    *,
    run_id: str,
    now: datetime,
    days: Sequence[date] | None = None,
    through: date | None = None,
) -> dict[str, int]:
    """Move ``sent`` messages with a matched final carrier record (attempted on ``days``, or
    on any day up to ``through``, or any day) to ``delivered`` / ``undelivered``; returns
    counts per new state."""
    where, params = _day_filter(days, "attempt_day")
    if through is not None:
        where += " and attempt_day <= :through"
        params["through"] = through
    matched = read_frame(
        conn,
        "select message_key, delivery, carrier, carrier_message_id, carrier_status_class,"
        " carrier_error_code from reconcile_message"
        " where message_key is not null and delivery is not null" + where,
        params,
        schema={
            "message_key": pl.String(),
            "delivery": pl.String(),
            "carrier": pl.String(),
            "carrier_message_id": pl.String(),
            "carrier_status_class": pl.String(),
            "carrier_error_code": pl.String(),
        },
    )
    moves = delivery_moves(matched)
    counts = {}
    for state in ("delivered", "undelivered"):
        part = moves.filter(pl.col("to_state") == state).select("message_key", "detail")
        counts[state] = transition(
            conn, part, from_states=("sent",), to_state=state, run_id=run_id, now=now
        )
    return counts


WINDOW_PAD = timedelta(minutes=17)
"""Padding of a day's window: a match looks 2 min back and 15 min ahead, and a candidate's
competitors are as far again, so every row of the day sees all it depends on."""


def _window_model(dialect: str) -> str:
    text = dict(_sql_files("models", dialect))["reconcile_message"]
    body = text.split("create or replace view reconcile_message as", 1)[1]
    for table in ("attempts", "carrier_records"):
        marker = f"\n    from {table}\n"
        if body.count(marker) != 1:
            raise RuntimeError(f"reconcile_message must read {table} in one import CTE")
        body = body.replace(marker, f"\n    from win_{table}\n")
    return "\n".join(line.split("--", 1)[0] for line in body.splitlines())


def reconcile_days(conn: Connection, days: Sequence[date]) -> int:
    """Materialize reconcile_message for ``days`` into ``reconcile_results`` (created on first
    use with the view's columns): per day, the model runs over that day's window only (attempts
    and carrier records within 17 minutes of it, plus those linked by a carrier message id),
    the day's rows replace the stored ones. Equal to the full view's rows of those days (except
    for per-part receipt groups that chain across the padding, a case no layout produces).
    Returns the rows written."""
    conn.exec_driver_sql(
        "create table if not exists reconcile_results as"
        " select * from reconcile_message where 1 = 0"
    )
    model = _window_model(conn.dialect.name)
    written = 0
    for day in days:
        lo = datetime.combine(day, datetime.min.time()) - WINDOW_PAD
        hi = datetime.combine(day + timedelta(days=1), datetime.min.time()) + WINDOW_PAD
        window = {"lo": lo, "hi": hi}
        for table in ("win_attempts", "win_carrier_records"):
            conn.exec_driver_sql(f"drop table if exists {table}")
        # two selects joined by union rather than one OR, so the time range can use the
        # tables' zone maps / indexes
        conn.execute(
            sa.text(
                "create temporary table win_carrier_records as select * from carrier_records c"
                " where c.sent_at_utc >= :lo and c.sent_at_utc < :hi"
            ),
            window,
        )
        conn.execute(
            sa.text(
                "create temporary table win_attempts as"
                " select * from attempts a where a.attempted_at_utc >= :lo"
                " and a.attempted_at_utc < :hi"
                " union select * from attempts a where a.carrier_message_id in"
                " (select w.carrier_message_id from win_carrier_records w)"
            ),
            window,
        )
        conn.exec_driver_sql(
            "insert into win_carrier_records select * from carrier_records c"
            " where c.carrier_message_id in (select w.carrier_message_id from win_attempts w"
            " where w.carrier_message_id is not null)"
            " and not exists (select 1 from win_carrier_records k where"
            " k.carrier = c.carrier and k.carrier_message_id = c.carrier_message_id"
            " and k.part_index = c.part_index)"
        )
        conn.execute(sa.text("delete from reconcile_results where day = :d"), {"d": day})
        conn.execute(
            sa.text(f"insert into reconcile_results select * from ({model}) as r where r.day = :d"),
            {"d": day},
        )
        written += conn.execute(
            sa.text("select count(*) from reconcile_results where day = :d"), {"d": day}
        ).scalar_one()
    return written


def load_rates(conn: Connection, rates: pl.DataFrame) -> int:
    """Replace the rate card rows of ``rates`` (carrier, destination_prefix, valid_from) with
    these values; idempotent."""
    if rates.height == 0:
        return 0
    conn.exec_driver_sql("drop table if exists stage_rates")
    conn.exec_driver_sql(
        "create temporary table stage_rates as select * from carrier_rates where 1 = 0"
    )
    write_frame(
        conn,
        "stage_rates",
        rates.select(
            "carrier",
            "destination_prefix",
            "price_micros_per_segment",
            "currency",
            "valid_from",
            "valid_to",
        ),
    )
    conn.exec_driver_sql(
        "delete from carrier_rates where exists (select 1 from stage_rates s"
        " where s.carrier = carrier_rates.carrier"
        " and s.destination_prefix = carrier_rates.destination_prefix"
        " and s.valid_from = carrier_rates.valid_from)"
    )
    conn.exec_driver_sql("insert into carrier_rates select * from stage_rates")
    return rates.height


def status_counts(conn: Connection, days: Sequence[date] | None = None) -> dict[str, int]:
    """Rows of reconcile_message per status (every status present, zeros included)."""
    where, params = _day_filter(days, "day")
    rows = conn.execute(
        sa.text(
            "select status, count(*) from reconcile_message where 1 = 1"
            + where
            + " group by status"
        ),
        params,
    ).all()
    found = {str(s): int(n) for s, n in rows}
    return {s: found.get(s, 0) for s in STATUSES}


def daily_totals(conn: Connection, days: Sequence[date] | None = None) -> pl.DataFrame:
    """Per day and currency: attempts, sent, carrier messages, delivered, billed micros."""
    where, params = _day_filter(days, "day")
    return read_frame(
        conn,
        "select day, coalesce(price_currency, '') as currency,"
        " cast(sum(attempts) as bigint) as attempts, cast(sum(sent) as bigint) as sent,"
        " cast(sum(carrier_messages) as bigint) as carrier_messages,"
        " cast(sum(delivered) as bigint) as delivered,"
        " cast(sum(billed_micros) as bigint) as billed_micros,"
        " cast(sum(provisional_micros) as bigint) as provisional_micros"
        " from reconcile_daily where 1 = 1" + where + " group by day, coalesce(price_currency, '')"
        " order by day, currency",
        params,
        schema={
            "day": pl.Date(),
            "currency": pl.String(),
            "attempts": pl.Int64(),
            "sent": pl.Int64(),
            "carrier_messages": pl.Int64(),
            "delivered": pl.Int64(),
            "billed_micros": pl.Int64(),
            "provisional_micros": pl.Int64(),
        },
    )


def discrepancies(
    conn: Connection, days: Sequence[date] | None = None, limit: int = 50
) -> pl.DataFrame:
    """reconcile_message rows that are not ``matched`` (first ``limit`` by status and time)."""
    where, params = _day_filter(days, "day")
    return read_frame(
        conn,
        "select status, day, message_key, carrier, carrier_message_id, price_micros,"
        " price_currency, detail from reconcile_message where status <> 'matched'"
        + where
        + " order by status, send_at_utc, message_key, carrier_message_id limit "
        + str(int(limit)),
        params,
        schema={
            "status": pl.String(),
            "day": pl.Date(),
            "message_key": pl.String(),
            "carrier": pl.String(),
            "carrier_message_id": pl.String(),
            "price_micros": pl.Int64(),
            "price_currency": pl.String(),
            "detail": pl.String(),
        },
    )


def period_rows(conn: Connection, period_start: date | None = None) -> pl.DataFrame:
    """reconcile_billing_period rows (of the periods starting on ``period_start``, or all)."""
    where = " where period_start = :p" if period_start else ""
    return read_frame(
        conn,
        "select carrier, period_start, period_end, currency, invoiced_micros,"
        " records_final_micros, records_provisional_micros, difference_micros,"
        " carrier_messages, billed_not_attempted, price_mismatch, segment_mismatch,"
        " pending_final, ambiguous_match, status from reconcile_billing_period"
        + where
        + " order by carrier, period_start, currency",
        {"p": period_start} if period_start else {},
        schema={
            "carrier": pl.String(),
            "period_start": pl.Date(),
            "period_end": pl.Date(),
            "currency": pl.String(),
            "invoiced_micros": pl.Int64(),
            "records_final_micros": pl.Int64(),
            "records_provisional_micros": pl.Int64(),
            "difference_micros": pl.Int64(),
            "carrier_messages": pl.Int64(),
            "billed_not_attempted": pl.Int64(),
            "price_mismatch": pl.Int64(),
            "segment_mismatch": pl.Int64(),
            "pending_final": pl.Int64(),
            "ambiguous_match": pl.Int64(),
            "status": pl.String(),
        },
    )


def money(micros: int | None, currency: str | None = "") -> str:
    """Micro-units as an exact decimal string with 6 places (``1234500`` -> ``1.234500``)."""
    if micros is None:
        return ""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), 1_000_000)
    return f"{sign}{whole}.{frac:06d}" + (f" {currency}" if currency else "")


def _md_table(frame: pl.DataFrame, money_columns: Sequence[str] = ()) -> str:
    if frame.height == 0:
        return "_none_\n"
    names = [c.removesuffix("_micros") if c in money_columns else c for c in frame.columns]
    header = "| " + " | ".join(names) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for row in frame.iter_rows(named=True):
        cells = []
        for column, value in row.items():
            if column in money_columns:
                cells.append(money(value))
            else:
                cells.append("" if value is None else str(value).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(
    title: str,
    statuses: dict[str, int],
    daily: pl.DataFrame,
    problems: pl.DataFrame,
    *,
    delivery: dict[str, int] | None = None,
    periods: pl.DataFrame | None = None,
    chart: str | None = None,
) -> str:
    """The markdown artifact: statuses, per-day totals, billing periods, discrepancies."""
    parts = [f"# {title}\n"]
    parts.append(
        "Statuses (reconcile_message rows): "
        + ", ".join(f"{k} {v}" for k, v in statuses.items())
        + "\n"
    )
    if delivery is not None:
        parts.append(
            "Outbox delivery updates from matched carrier records: "
            + ", ".join(f"{k} {v}" for k, v in delivery.items())
            + "\n"
        )
    if chart:
        parts.append(f"Chart (sent, delivered, billed per day): [{chart}]({chart})\n")
    parts.append("## Per day\n")
    parts.append(_md_table(daily, ("billed_micros", "provisional_micros")))
    if periods is not None:
        parts.append("## Billing periods (carrier invoice vs carrier records)\n")
        parts.append(
            _md_table(
                periods,
                (
                    "invoiced_micros",
                    "records_final_micros",
                    "records_provisional_micros",
                    "difference_micros",
                ),
            )
        )
    parts.append(f"## Discrepancies (first {problems.height})\n")
    parts.append(_md_table(problems, ("price_micros",)))
    return "\n".join(parts)


def chart_svg(daily: pl.DataFrame, *, width: int = 720, height: int = 320) -> str:
    """A self-contained SVG bar chart of sent, delivered (counts, left axis) and billed
    (currency units, right axis, one line per currency) per day."""
    per_day = daily.group_by("day").agg(pl.col("sent").sum(), pl.col("delivered").sum()).sort("day")
    days = per_day["day"].to_list()
    billed = (
        daily.filter(pl.col("currency") != "").pivot(
            on="currency", index="day", values="billed_micros", aggregate_function="sum"
        )
        if daily.filter(pl.col("currency") != "").height
        else pl.DataFrame({"day": days})
    )
    left, right, top, bottom = 50, 70, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(days), 1)
    peak = max([1, *per_day["sent"].to_list(), *per_day["delivered"].to_list()])
    currencies = [c for c in billed.columns if c != "day"]
    money_peak = max([1, *(v or 0 for c in currencies for v in billed[c].to_list())])
    slot = plot_w / n
    bar = slot / 3
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="16" font-size="13">Sent, delivered (bars) and billed (line)'
        " per day</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"'
        ' stroke="black"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, row in enumerate(per_day.iter_rows(named=True)):
        x = left + i * slot + bar / 2
        for j, (key, colour) in enumerate((("sent", "#4e79a7"), ("delivered", "#59a14f"))):
            h = plot_h * (row[key] or 0) / peak
            out.append(
                f'<rect x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}"'
                f' height="{h:.1f}" fill="{colour}"><title>{key} {row[key]}</title></rect>'
            )
        out.append(
            f'<text x="{left + i * slot + slot / 2:.1f}" y="{top + plot_h + 14}"'
            f' text-anchor="middle">{html.escape(str(row["day"]))}</text>'
        )
    palette = ["#e15759", "#f28e2b", "#b07aa1", "#76b7b2"]
    for k, currency in enumerate(currencies):
        joined = pl.DataFrame({"day": days}).join(
            billed.select("day", currency), on="day", how="left"
        )
        points = [
            (left + i * slot + slot / 2, top + plot_h - plot_h * (v or 0) / money_peak, v or 0)
            for i, v in enumerate(joined[currency].to_list())
        ]
        colour = palette[k % len(palette)]
        out.append(
            '<polyline fill="none" stroke="'
            + colour
            + '" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            + '"/>'
        )
        for x, y, v in points:
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>billed {money(v, currency)}</title></circle>"
            )
    if currencies:  # the right axis: billed amounts, in currency units
        out.append(
            f'<text x="{left + plot_w + 6}" y="{top + 4}">{money(money_peak)}</text>'
            f'<text x="{left + plot_w + 6}" y="{top + plot_h}">0</text>'
        )
    legend_y = height - 8
    out.append(f'<rect x="{left}" y="{legend_y - 9}" width="10" height="10" fill="#4e79a7"/>')
    out.append(f'<text x="{left + 14}" y="{legend_y}">sent</text>')
    out.append(f'<rect x="{left + 60}" y="{legend_y - 9}" width="10" height="10" fill="#59a14f"/>')
    out.append(f'<text x="{left + 74}" y="{legend_y}">delivered (left axis)</text>')
    for k, currency in enumerate(currencies):
        x, colour = left + 210 + 150 * k, palette[k % len(palette)]
        out.append(
            f'<line x1="{x}" y1="{legend_y - 4}" x2="{x + 14}" y2="{legend_y - 4}"'
            f' stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 18}" y="{legend_y}">billed {html.escape(currency)} (right axis)</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
