"""build-reminders: extract, normalize, decide, render and stagger; write the plan.

Runs as a Prefect flow (see prefect.yaml) or as ``reminders build`` with no server. A dry run
writes runs, decisions and quarantine but no outbox rows, so nothing can be pushed from it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import current_run_id, open_warehouse, parse_utc_instant, settings_with, utc_now
from tasks.errors import AccountingError, ConfigurationError, QuarantineThresholdExceeded
from tasks.extract import INPUTS, Extracted, extract_task
from tasks.masking import mask_text
from tasks.normalize import Normalized, normalize_task
from tasks.outbox import finish_run, load_prior, save_plan, start_run
from tasks.plan import Plan, build_plan
from tasks.render import load_templates
from tasks.settings import Settings
from tasks.warehouse import write_frame

__all__ = ["build_reminders", "check_quarantine"]


def check_quarantine(extracted: Extracted, normalized: Normalized, max_share: float) -> None:
    """Raise :class:`QuarantineThresholdExceeded` for the first source over ``max_share``."""
    for name in INPUTS:
        total = extracted.counts[name]
        bad = normalized.quarantined_rows(name)
        if total and bad / total > max_share:
            raise QuarantineThresholdExceeded(name, bad, total, max_share)


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(
    extracted: Extracted,
    normalized: Normalized,
    prior: pl.DataFrame,
    tokens: dict[str, str],
    settings: Settings,
    as_of: datetime,
    for_date: date | None = None,
) -> Plan:
    return build_plan(
        extracted,
        normalized,
        prior,
        as_of=as_of,
        settings=settings,
        templates=load_templates(settings.render.templates_dir),
        existing_tokens=tokens,
        for_date=for_date,
    )


def parse_for_date(value: str | date | None) -> date | None:
    """A ``YYYY-MM-DD`` local date, or None."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigurationError(f"for_date must be a YYYY-MM-DD date, got {value!r}") from None


def _publish(plan: Plan, run_id: str, outbox: dict[str, int], dry_run: bool) -> None:
    reasons = (
        plan.decisions.group_by("status", "reason")
        .len("decisions")
        .sort("status", "decisions", descending=[False, True])
    )
    create_table_artifact(
        key="decisions-per-reason",
        table=reasons.to_dicts(),
        description=f"Decisions per status and reason, run {run_id}",
    )
    waves = (
        plan.messages.with_columns(pl.col("send_at_utc").dt.truncate("1h").alias("hour_utc"))
        .group_by("channel", "time_zone", "local_send_date", "hour_utc")
        .len("messages")
        .sort("hour_utc", "time_zone", "channel")
        .with_columns(pl.col("local_send_date", "hour_utc").cast(pl.String))
    )
    create_table_artifact(
        key="waves-per-zone-and-hour",
        table=waves.to_dicts(),
        description=f"Planned messages per zone and UTC hour, run {run_id}",
    )
    lines = [
        f"# build-reminders {run_id}",
        "",
        "| input | rows in | quarantined |",
        "|---|---:|---:|",
        *[f"| {n} | {plan.rows_in[n]} | {plan.rows_quarantined[n]} |" for n in INPUTS],
        "",
        f"Decisions: {plan.counts['decisions_planned']} planned, "
        f"{plan.counts['decisions_excluded']} excluded, "
        f"{plan.counts['decisions_quarantined']} quarantined; "
        f"{plan.counts['messages_planned']} messages"
        + (" (dry run: none written to the outbox)." if dry_run else "."),
        f"Outbox: {outbox}",
    ]
    create_markdown_artifact(key="build-reminders-summary", markdown="\n".join(lines))


@flow(name="build-reminders", log_prints=True)
def build_reminders(
    as_of: str | None = None,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    for_date: str | None = None,
) -> dict[str, Any]:
    """Plan the reminders due at ``as_of`` (ISO-8601, default now) and write them.

    ``for_date`` (YYYY-MM-DD) plans every recipient's local date ``for_date`` whatever the run
    time (previews, backfills); zones whose window for that date has closed at ``as_of`` are
    excluded ``window_passed``. Returns the run id, the row counts and the decisions per reason.
    """
    logger = get_run_logger()
    settings = settings_with(overrides)
    as_of_utc = parse_utc_instant(as_of)
    local_date = parse_for_date(for_date)
    run_id = current_run_id("build")
    engine = open_warehouse(settings)
    with engine.begin() as conn:
        start_run(
            conn,
            run_id=run_id,
            flow="build-reminders",
            as_of=as_of_utc,
            now=utc_now(),
            dry_run=dry_run,
            parameters={
                "as_of": as_of_utc.isoformat(),
                "for_date": local_date.isoformat() if local_date else None,
                "settings": settings.public_dict(),
            },
        )
    counts: dict[str, int] = {}
    accounting_ok: bool | None = None
    try:
        extracted = extract_task(settings.sources)
        counts = {f"{n}_in": c for n, c in extracted.counts.items()}
        normalized = normalize_task(extracted, as_of=as_of_utc, parsing=settings.parsing)
        counts |= {f"{n}_quarantined": normalized.quarantined_rows(n) for n in INPUTS}
        try:
            check_quarantine(extracted, normalized, settings.quality.max_quarantine_share)
        except QuarantineThresholdExceeded:
            with engine.begin() as conn:
                write_frame(
                    conn,
                    "quarantine",
                    normalized.quarantine.with_columns(pl.lit(run_id).alias("run_id")),
                )
            raise
        with engine.begin() as conn:
            prior, tokens = load_prior(conn, as_of=as_of_utc)
        plan = plan_task(extracted, normalized, prior, tokens, settings, as_of_utc, local_date)
        counts |= plan.counts
        accounting_ok = plan.accounting.ok
        if not accounting_ok:
            # Fail closed: a plan that loses or invents rows writes no decisions or outbox.
            with engine.begin() as conn:
                write_frame(
                    conn,
                    "quarantine",
                    normalized.quarantine.with_columns(pl.lit(run_id).alias("run_id")),
                )
            raise AccountingError("; ".join(plan.accounting.problems))
        with engine.begin() as conn:
            outbox = save_plan(conn, plan, run_id=run_id, now=utc_now(), dry_run=dry_run)
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="succeeded",
                counts=counts,
                accounting_ok=accounting_ok,
            )
    except Exception as exc:
        with engine.begin() as conn:
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="failed",
                counts=counts,
                accounting_ok=accounting_ok,
                error=mask_text(f"{type(exc).__name__}: {exc}")[:2000],
            )
        raise
    finally:
        engine.dispose()
    _publish(plan, run_id, outbox, dry_run)
    logger.info(
        "run %s: %d planned, %d excluded, %d quarantined decisions; %d messages; outbox %s",
        run_id,
        plan.counts["decisions_planned"],
        plan.counts["decisions_excluded"],
        plan.counts["decisions_quarantined"],
        plan.counts["messages_planned"],
        outbox,
    )
    return {
        "run_id": run_id,
        "as_of": as_of_utc.isoformat(),
        "dry_run": dry_run,
        "for_date": local_date.isoformat() if local_date else None,
        "rows_in": plan.rows_in,
        "rows_quarantined": plan.rows_quarantined,
        "counts": plan.counts,
        "outbox": outbox,
        "reasons": plan.reasons,
    }


if __name__ == "__main__":
    build_reminders()
