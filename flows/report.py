"""Terminal report of a demo run (rich tables), read back from the warehouse."""

from __future__ import annotations

from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table

from tasks.warehouse import make_engine, read_frame

__all__ = ["print_demo_report"]


def _table(title: str, frame: pl.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        numeric = frame[column].dtype.is_numeric()
        table.add_column(column, justify="right" if numeric else "left")
    for row in frame.iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    return table


def print_demo_report(result: dict[str, Any], console: Console | None = None) -> None:
    """Print inputs, decisions per reason and waves per zone of a demo run."""
    console = console or Console()  # the terminal's width (80 when not a terminal)
    build = result["build"]
    inputs = pl.DataFrame(
        {
            "input": list(build["rows_in"]),
            "rows_in": list(build["rows_in"].values()),
            "quarantined": [build["rows_quarantined"][k] for k in build["rows_in"]],
        }
    )
    console.print(_table("Inputs", inputs))
    reasons = pl.DataFrame(
        [(*k.split(":", 1), v) for k, v in build["reasons"].items()],
        schema={"status": pl.String, "reason": pl.String, "decisions": pl.Int64},
        orient="row",
    ).sort("status", "decisions", descending=[False, True])
    console.print(_table("Decisions (invoice x channel) per reason", reasons))
    engine = make_engine(f"duckdb:///{result['warehouse']}")
    with engine.connect() as conn:
        zones = read_frame(
            conn,
            "select time_zone, channel, count(*) as messages,"
            " strftime(min(send_at_local), '%H:%M') as first_local,"
            " strftime(max(send_at_local), '%H:%M') as last_local,"
            " count(distinct wave_id) as waves,"
            " sum(case when state = 'sent' then 1 else 0 end) as sent,"
            " sum(case when state = 'delivered' then 1 else 0 end) as delivered,"
            " sum(case when state = 'undelivered' then 1 else 0 end) as undelivered,"
            " sum(case when state = 'failed' then 1 else 0 end) as failed,"
            " sum(case when state = 'skipped' then 1 else 0 end) as skipped,"
            " sum(case when state = 'unknown' then 1 else 0 end) as unknown,"
            " sum(case when state in ('pushed', 'ready', 'planned') then 1 else 0 end)"
            " as not_sent_yet,"
            " sum(case when state in ('cancelled', 'deferred', 'expired', 'rejected')"
            " then 1 else 0 end) as dropped"
            " from messages group by time_zone, channel order by min(window_start_utc), 1, 2",
        )
    engine.dispose()
    if console.width < 120:  # narrow terminal: drop all-zero outcome columns, short headers
        zones = zones.select(
            [c for c in zones.columns if not (zones[c].dtype.is_numeric() and zones[c].sum() == 0)]
        ).rename(
            {
                "time_zone": "zone",
                "first_local": "first",
                "last_local": "last",
                "not_sent_yet": "pending",
                "messages": "msgs",
            },
            strict=False,
        )
    console.print(_table("Messages per zone: local send times, waves, Genesys outcomes", zones))
    counts = build["counts"]
    console.print(
        f"run {build['run_id']}: {counts['decisions_planned']} planned + "
        f"{counts['decisions_excluded']} excluded + {counts['decisions_quarantined']} "
        f"quarantined = {sum(counts[k] for k in counts if k.startswith('decisions_'))} "
        f"decisions for {build['rows_in']['invoices']} invoice rows x 2 channels; "
        f"{counts['messages_planned']} messages; warehouse {result['warehouse']}"
    )
    if "outcomes" in result:
        pushes = result["pushes"]
        console.print(
            f"push-waves x {len(pushes)}: {sum(p['pushed'] for p in pushes)} contacts pushed in "
            f"{sum(p['batches'] for p in pushes)} batches, "
            f"{sum(p['genesys_requests'].get('requests', 0) for p in pushes)} Genesys requests; "
            f"outcomes { ({k: v for k, v in result['outcomes'].items() if k != 'run_id'}) }; "
            f"sandbox ledger {result['sandbox_ledger']}"
        )
    if result.get("reconcile"):
        print_reconcile_summary(result["reconcile"], console)

    alerts = result.get("alerts") or {}
    if alerts:
        console.print(
            f"alerts service: webhook answers {alerts.get('answers')};"
            f" alerts {alerts.get('alerts')};"
            f" reminders cancelled by payment {alerts.get('reminders_cancelled_paid')};"
            f" keyword consent events {alerts.get('keyword_consent_events')}"
        )


def print_reconcile_summary(rec: dict[str, Any], console: Console) -> None:
    """The reconciliation of a demo run: statuses, delivery moves, injected discrepancies."""
    statuses = pl.DataFrame(
        {"status": list(rec["statuses"]), "messages": list(rec["statuses"].values())}
    )
    console.print(_table(f"Reconciliation {rec['day']}", statuses))
    console.print(
        f"reconcile-daily: delivery {rec['delivery']}; carrier records {rec['carrier_records']};"
        f" attempts {rec['attempts_loaded']}; injected {rec.get('injected', {})};"
        f" chart {rec.get('chart')}; summary {rec.get('summary')}"
    )
