"""push-waves: hand the waves whose window opens within the next hour to Genesys.

Until the Genesys client lands (its own issue) this stage only marks those messages ``ready``
(and messages whose window closed unpushed ``expired``), recording every change in
``message_events``. Scheduled hourly in prefect.yaml; ``reminders push`` runs it locally.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import current_run_id, open_warehouse, parse_utc_instant, settings_with, utc_now
from tasks.outbox import finish_run, mark_ready, start_run

__all__ = ["push_waves"]


@flow(name="push-waves")
def push_waves(
    now: str | None = None,
    horizon_minutes: int = 60,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark the waves opening before ``now + horizon_minutes`` ready; returns them per wave."""
    logger = get_run_logger()
    settings = settings_with(overrides)
    at = parse_utc_instant(now)
    run_id = current_run_id("push")
    engine = open_warehouse(settings)
    try:
        with engine.begin() as conn:
            start_run(
                conn,
                run_id=run_id,
                flow="push-waves",
                as_of=at,
                now=utc_now(),
                dry_run=dry_run,
                parameters={"now": at.isoformat(), "horizon_minutes": horizon_minutes},
            )
        with engine.connect() as conn:
            transaction = conn.begin()
            waves = mark_ready(
                conn, now=at, horizon=timedelta(minutes=horizon_minutes), run_id=run_id
            )
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        with engine.begin() as conn:
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="succeeded",
                counts={"messages_planned": int(waves["messages"].sum() or 0)},
            )
    finally:
        engine.dispose()
    table = waves.with_columns(
        pl.col("local_send_date", "first_send_utc", "last_send_utc").cast(pl.String)
    )
    create_table_artifact(
        key="ready-waves",
        table=table.to_dicts(),
        description=f"Waves ready at {at:%Y-%m-%d %H:%M} UTC (horizon {horizon_minutes} min)",
    )
    logger.info("%d waves, %d messages ready", waves.height, int(waves["messages"].sum() or 0))
    return {"run_id": run_id, "now": at.isoformat(), "waves": table.to_dicts()}


if __name__ == "__main__":
    push_waves()
