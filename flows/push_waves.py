"""push-waves: add the contacts whose slot has opened to Genesys (never before).

Scheduled every 15 minutes in prefect.yaml (every slot starts on a UTC quarter hour, so a
contact is added at most 15 minutes after its slot opens); ``reminders push`` runs it
locally (``--no-prefect`` runs the same code without any Prefect machinery, which the crash
tests use). A dry run reports the
waves that would be pushed and changes nothing.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from prefect import flow
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext

from flows.common import (
    current_run_id,
    genesys_secret,
    parse_utc_instant,
    recorded_run,
    settings_with,
    utc_now,
)
from tasks.extract import extract_sources
from tasks.failpoints import failpoint
from tasks.genesys import client_from_settings
from tasks.normalize import normalize
from tasks.outbox import finish_run, mark_ready, wave_summary
from tasks.phones import load_phone_cache
from tasks.push import PushResult, push_waves_to_genesys
from tasks.settings import Settings

__all__ = ["push_waves", "run_push"]

log = logging.getLogger("reminders.push")


def _progress_reporter(in_prefect: bool) -> Any:
    artifact_id = (
        create_progress_artifact(progress=0.0, key="push-progress", description="contacts pushed")
        if in_prefect
        else None
    )

    def report(done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        print(f"pushed {done}/{total} contacts ({percent:.0f}%)", file=sys.stderr, flush=True)
        if artifact_id is not None:
            update_progress_artifact(artifact_id=artifact_id, progress=percent)

    return report


def run_push(
    settings: Settings,
    *,
    now: datetime,
    horizon_minutes: int = 15,
    dry_run: bool = False,
    recheck: bool = True,
    run_id: str,
    in_prefect: bool = False,
) -> dict[str, Any]:
    """One push run against the configured Genesys org (see tasks.push)."""
    horizon = timedelta(minutes=horizon_minutes)
    with recorded_run(
        settings,
        run_id=run_id,
        flow="push-waves",
        as_of=now,
        dry_run=dry_run,
        parameters={"now": now.isoformat(), "horizon_minutes": horizon_minutes},
    ) as engine:
        if dry_run:
            with engine.connect() as conn:
                transaction = conn.begin()
                waves = mark_ready(conn, now=now, horizon=horizon, run_id=run_id)
                transaction.rollback()
            result = PushResult(ready_waves=waves.height)
        else:
            fresh = None
            if recheck:
                with engine.begin() as conn:
                    phone_cache = load_phone_cache(conn)  # parse only numbers never seen
                fresh = normalize(
                    extract_sources(settings.sources),
                    as_of=now,
                    parsing=settings.parsing,
                    phone_cache=phone_cache,
                )
            secret = genesys_secret(settings.genesys)
            with client_from_settings(
                settings.genesys, secret, on_request=lambda kind, _p: failpoint(f"http.{kind}")
            ) as client:
                result = push_waves_to_genesys(
                    engine,
                    client,
                    genesys=settings.genesys,
                    window=settings.window,
                    cadence=settings.cadence,
                    now=now,
                    horizon=horizon,
                    run_id=run_id,
                    fresh=fresh,
                    progress=_progress_reporter(in_prefect),
                )
                stats = dict(client.stats)
            with engine.begin() as conn:
                waves = wave_summary(conn, state="pushed", since=(now - timedelta(days=1)).date())
        with engine.begin() as conn:
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="succeeded",
                counts={"messages_planned": result.pushed},
            )
    summary = {
        "run_id": run_id,
        "now": now.isoformat(),
        "dry_run": dry_run,
        "ready_waves": result.ready_waves,
        "settled": result.settled,
        "cancelled": result.cancelled,
        "deferred": result.deferred,
        "pushed": result.pushed,
        "rejected": result.rejected,
        "dnc_added": result.dnc_added,
        "waiting_for_list": result.waiting_for_list,
        "cancel_pending": result.cancel_pending,
        "batches": result.batches,
        "campaigns": result.campaigns,
        "genesys_requests": {} if dry_run else stats,
        "waves": waves.with_columns(
            pl.col("local_send_date", "first_send_utc", "last_send_utc").cast(pl.String)
        ).to_dicts(),
    }
    log.info(
        "push %s: %d pushed, %d rejected, %d deferred, cancelled %s, settled %s",
        run_id,
        result.pushed,
        result.rejected,
        result.deferred,
        result.cancelled,
        result.settled,
    )
    return summary


@flow(name="push-waves")
def push_waves(
    now: str | None = None,
    horizon_minutes: int = 15,
    dry_run: bool = False,
    recheck: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark the waves opening before ``now + horizon_minutes`` ready and add the contacts
    whose slot has opened by ``now`` to Genesys."""
    settings = settings_with(overrides)
    at = parse_utc_instant(now)
    summary = run_push(
        settings,
        now=at,
        horizon_minutes=horizon_minutes,
        dry_run=dry_run,
        recheck=recheck,
        run_id=current_run_id("push"),
        in_prefect=FlowRunContext.get() is not None,
    )
    create_table_artifact(
        key="pushed-waves",
        table=summary["waves"],
        description=f"Waves in Genesys after the push at {at:%Y-%m-%d %H:%M} UTC",
    )
    return summary


if __name__ == "__main__":
    push_waves()
