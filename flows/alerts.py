"""alerts: tell the on-call when a run failed, a source quarantined above its threshold, or a
wave missed its window. Scheduled every 15 minutes (prefect.yaml, ``alerts-quarter-hourly``).

The checks read the warehouse (pure functions on polars frames, :func:`find_alerts`); the
notification goes to a Prefect ``Webhook`` block named by the ``webhook_block`` parameter
(default ``reminders-on-call``; a block name, never a URL with a secret). Create it once::

    uv run python -c "from prefect.blocks.webhook import Webhook; \\
        Webhook(method='POST', url='https://hooks.example/on-call').save('reminders-on-call')"

Each run reports what happened in the ``since_minutes`` before ``now`` (default: the flow
run's scheduled start), so a 15-minute schedule reports each event once. Alert payloads name
runs, flows, sources, rules and waves with counts, never an address.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.common import (
    flow_run_namer,
    masking_errors,
    open_warehouse,
    run_instant,
    settings_with,
)
from tasks.errors import retry_transient
from tasks.warehouse import read_frame

__all__ = ["alerts", "find_alerts"]

INPUTS = ("customers", "invoices", "consent_events", "contact_history")


def find_alerts(
    runs: pl.DataFrame,
    missed: pl.DataFrame,
    *,
    max_quarantine_share: float,
) -> list[dict[str, Any]]:
    """Alerts from the runs of the period and the messages whose window ended unsent.

    ``runs``: run_id, flow, status, error and ``<input>_in`` / ``<input>_quarantined``;
    ``missed``: wave_id, channel, time_zone, window_end_utc, state (one row per message)."""
    found: list[dict[str, Any]] = []
    for row in runs.filter(pl.col("status").is_in(["failed", "abandoned"])).iter_rows(named=True):
        found.append(
            {
                "kind": "run_failed",
                "run_id": row["run_id"],
                "flow": row["flow"],
                "status": row["status"],
                "error": (row["error"] or "")[:300],
            }
        )
    for name in INPUTS:
        total, bad = f"{name}_in", f"{name}_quarantined"
        if total not in runs.columns or bad not in runs.columns:
            continue
        over = runs.filter(
            (pl.col(total) > 0) & (pl.col(bad) / pl.col(total) > max_quarantine_share)
        )
        for row in over.iter_rows(named=True):
            found.append(
                {
                    "kind": "quarantine_above_threshold",
                    "run_id": row["run_id"],
                    "source": name,
                    "quarantined": row[bad],
                    "rows_in": row[total],
                    "threshold": max_quarantine_share,
                }
            )
    waves = (
        missed.group_by("wave_id", "channel", "time_zone")
        .agg(pl.len().alias("messages"), pl.col("window_end_utc").max())
        .sort("window_end_utc", "wave_id")
    )
    for row in waves.iter_rows(named=True):
        found.append(
            {
                "kind": "wave_missed_window",
                "wave_id": row["wave_id"],
                "channel": row["channel"],
                "time_zone": row["time_zone"],
                "messages": row["messages"],
                "window_end_utc": str(row["window_end_utc"]),
            }
        )
    return found


@task(
    name="check",
    task_run_name="check runs and waves since {since:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
)
def check_task(settings: Any, since: datetime, now: datetime) -> list[dict[str, Any]]:
    engine = open_warehouse(settings)
    counts = ", ".join(f"{n}_in, {n}_quarantined" for n in INPUTS)
    try:
        with engine.connect() as conn:
            runs = read_frame(
                conn,
                f"select run_id, flow, status, error, {counts} from runs"
                " where started_at_utc >= :since and started_at_utc < :now",
                params={"since": since, "now": now},
                schema={
                    **dict.fromkeys(["run_id", "flow", "status", "error"], pl.String()),
                    **{f"{n}_{k}": pl.Int64() for n in INPUTS for k in ("in", "quarantined")},
                },
            )
            missed = read_frame(
                conn,
                "select wave_id, channel, time_zone, window_end_utc, state from messages"
                " where state in ('planned', 'ready', 'pushing')"
                " and window_end_utc > :since and window_end_utc <= :now",
                params={"since": since, "now": now},
                schema={
                    "wave_id": pl.String(),
                    "channel": pl.String(),
                    "time_zone": pl.String(),
                    "window_end_utc": pl.Datetime(),
                    "state": pl.String(),
                },
            )
    finally:
        engine.dispose()
    return find_alerts(runs, missed, max_quarantine_share=settings.quality.max_quarantine_share)


@task(
    name="notify",
    task_run_name="notify {block}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_transient,
)
def notify_task(block: str, payload: dict[str, Any]) -> int:
    from prefect.blocks.webhook import Webhook
    from prefect.utilities.asyncutils import run_coro_as_sync

    response = run_coro_as_sync(Webhook.load(block).call(payload))  # Webhook.call is async
    response.raise_for_status()
    return response.status_code


@flow(name="alerts", flow_run_name=flow_run_namer("alerts", "now"))
@masking_errors
def alerts(
    now: str | None = None,
    since_minutes: int = 15,
    webhook_block: str = "reminders-on-call",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Check the last ``since_minutes`` before ``now``; notify ``webhook_block`` if anything
    needs the on-call. Returns the alerts."""
    settings = settings_with(overrides)
    at, _source = run_instant(now)
    since = at - timedelta(minutes=since_minutes)
    found = check_task(settings, since, at)
    if found:
        notify_task(
            webhook_block,
            {
                "source": "payment-reminders",
                "since_utc": since.isoformat(),
                "until_utc": at.isoformat(),
                "alerts": found,
            },
        )
    return {"since": since.isoformat(), "until": at.isoformat(), "alerts": found}


if __name__ == "__main__":
    alerts()
