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
from prefect import flow, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from sqlalchemy.engine import Engine

from flows.artifacts import publish_push, run_wave_counts
from flows.common import (
    current_run_id,
    flow_run_namer,
    genesys_secret,
    masking_errors,
    recorded_run,
    run_instant,
    settings_with,
    utc_now,
    writes_warehouse,
)
from tasks.consent import load_captured_consent
from tasks.errors import retry_transient
from tasks.extract import extract_sources
from tasks.failpoints import failpoint
from tasks.genesys import client_from_settings
from tasks.locks import share_rate_budget
from tasks.normalize import Normalized, normalize, with_captured_consent
from tasks.outbox import finish_run, mark_ready, wave_summary
from tasks.phones import load_phone_cache
from tasks.push import (
    PushResult,
    Steps,
    cancel_stale,
    plan_route,
    push_wave,
    push_waves_to_genesys,
    ready_and_settle,
    start_campaign,
)
from tasks.render import load_templates
from tasks.settings import Settings

__all__ = ["push_waves", "run_push"]

log = logging.getLogger("reminders.push")


def _progress_reporter(in_prefect: bool, now: datetime | None = None) -> Any:
    """Progress of one push: a Prefect progress artifact in a flow run, and on a terminal one
    rich progress line updated in place (``push 14:05 UTC``, contacts done of total); not on
    a terminal, one line at the end."""
    artifact_id = (
        create_progress_artifact(progress=0.0, key="push-progress", description="contacts pushed")
        if in_prefect
        else None
    )
    label = f"push {now:%Y-%m-%d %H:%M} UTC" if now else "push"
    bar: dict[str, Any] = {}

    def report(done: int, total: int) -> None:
        percent = 100.0 * done / total if total else 100.0
        if sys.stderr.isatty():
            if not bar:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("contacts"),
                    console=Console(stderr=True),
                    transient=False,
                )
                progress.start()
                bar["p"], bar["t"] = progress, progress.add_task(label, total=total)
            bar["p"].update(bar["t"], completed=done, total=total)
            if done >= total:
                bar["p"].stop()
        elif done >= total:
            print(f"{label}: pushed {done}/{total} contacts", file=sys.stderr, flush=True)
        if artifact_id is not None:
            update_progress_artifact(artifact_id=artifact_id, progress=percent)

    return report


@task(
    name="re-check",
    task_run_name="re-check sources at {now:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
)
def recheck_task(engine: Engine, settings: Settings, now: datetime) -> Normalized:
    """Re-read the sources for payments and opt-outs since planning (phone numbers through the
    warehouse cache: only numbers never seen are parsed)."""
    with engine.begin() as conn:
        phone_cache = load_phone_cache(conn)
        captured = load_captured_consent(conn)
    fresh = normalize(
        extract_sources(settings.sources),
        as_of=now,
        parsing=settings.parsing,
        phone_cache=phone_cache,
    )
    return with_captured_consent(fresh, captured, as_of=now)  # keyword opt-outs count too


@task(
    name="dry-run",
    task_run_name="dry run: waves ready by {now:%Y-%m-%d %H:%M} + {horizon_minutes} min",
    cache_policy=NO_CACHE,
)
def dry_run_task(engine: Engine, now: datetime, horizon_minutes: int, run_id: str) -> pl.DataFrame:
    """The waves that would be made ready; rolled back, changes nothing."""
    with engine.connect() as conn:
        transaction = conn.begin()
        waves = mark_ready(conn, now=now, horizon=timedelta(minutes=horizon_minutes), run_id=run_id)
        transaction.rollback()
    return waves


# The push's steps (tasks.push) as named Prefect tasks; outside a flow run the same functions
# run plainly (tasks.push.Steps). Retries stay inside the Genesys client (429 / 5xx / timeouts);
# a step is never retried as a whole: every one is re-entrant from the outbox on the next run.
_STEP_TASKS = {
    name: task(fn, name=name, cache_policy=NO_CACHE)
    for name, fn in (
        ("ready", ready_and_settle),
        ("cancel", cancel_stale),
        ("capacity", plan_route),
        ("push wave", push_wave),
        ("start campaign", start_campaign),
    )
}


def _named(step: str, label: str) -> Any:
    """The step's task with its run name (a literal: Prefect formats names with parameters)."""
    literal = label.replace("{", "{{").replace("}", "}}")
    return _STEP_TASKS[step].with_options(task_run_name=literal)


class PrefectSteps(Steps):
    """Each step of the push as a Prefect task run named by its label (``capacity sms at
    2026-11-23 14:00 UTC: ...``, ``push wave 2026-11-23 America/Chicago 09:00 sms (1,234
    contacts)``)."""

    def run(self, step: str, label: str, fn: Any, /, *args: Any, **kw: Any) -> Any:
        return _named(step, label)(*args, **kw)


def run_push(
    settings: Settings,
    *,
    now: datetime,
    horizon_minutes: int = 15,
    dry_run: bool = False,
    recheck: bool = True,
    run_id: str,
    in_prefect: bool = False,
    as_of_source: str | None = None,
) -> dict[str, Any]:
    """One push run against the configured Genesys org (see tasks.push)."""
    with recorded_run(
        settings,
        run_id=run_id,
        flow="push-waves",
        as_of=now,
        dry_run=dry_run,
        parameters={"now": now.isoformat(), "horizon_minutes": horizon_minutes},
        as_of_source=as_of_source,
    ) as engine:
        # Named Prefect tasks in a flow run; the same functions, plain, without Prefect.
        def step(t: Any) -> Any:
            return t if in_prefect else t.fn

        if dry_run:
            waves = step(dry_run_task)(engine, now, horizon_minutes, run_id)
            result = PushResult(ready_waves=waves.height)
        else:
            fresh = step(recheck_task)(engine, settings, now) if recheck else None
            secret = genesys_secret(settings.genesys)
            with client_from_settings(
                settings.genesys,
                secret,
                on_request=lambda kind, _p: failpoint(f"http.{kind}"),
                # a kept-alive connection per sending thread: every wave in flight has
                # push_concurrency calls at once
                connections=settings.genesys.push_concurrency
                * settings.genesys.push_waves_in_flight,
            ) as client:
                # One budget per OAuth client for every push and collect on this host.
                share_rate_budget(
                    client,
                    settings.data_dir,
                    settings.genesys.client_id or "",
                    settings.genesys.requests_per_minute,
                )
                result = push_waves_to_genesys(
                    engine,
                    client,
                    genesys=settings.genesys,
                    window=settings.window,
                    cadence=settings.cadence,
                    now=now,
                    horizon=timedelta(minutes=horizon_minutes),
                    run_id=run_id,
                    fresh=fresh,
                    progress=_progress_reporter(in_prefect, now),
                    templates=load_templates(settings.render.templates_dir),
                    steps=PrefectSteps() if in_prefect else None,
                )
                stats = dict(client.stats)
            with engine.begin() as conn:
                waves = wave_summary(conn, state="pushed", since=(now - timedelta(days=1)).date())
                this_run = run_wave_counts(conn, run_id)
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
        "this_run_waves": [] if dry_run else this_run,
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


@flow(
    name="push-waves",
    flow_run_name=flow_run_namer("push-waves", "now"),
)
@masking_errors
@writes_warehouse
def push_waves(
    now: str | None = None,
    horizon_minutes: int = 15,
    dry_run: bool = False,
    recheck: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Mark the waves opening before ``now + horizon_minutes`` ready and add the contacts
    whose slot has opened by ``now`` to Genesys. An empty ``now`` is the flow run's scheduled
    start time (a late run or a retry pushes for its quarter hour), or the clock outside
    Prefect."""
    settings = settings_with(overrides, flow="push-waves", needs=() if dry_run else ("genesys",))
    at, source = run_instant(now)
    summary = run_push(
        settings,
        now=at,
        horizon_minutes=horizon_minutes,
        dry_run=dry_run,
        recheck=recheck,
        run_id=current_run_id("push"),
        in_prefect=FlowRunContext.get() is not None,
        as_of_source=source,
    )
    create_table_artifact(
        key="pushed-waves",
        table=summary["waves"],
        description=f"Waves in Genesys after the push at {at:%Y-%m-%d %H:%M} UTC",
    )
    publish_push(summary)
    return summary


if __name__ == "__main__":
    push_waves()
