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

from data_quality.gates import (
    GateReport,
    GateValidator,
    decisions_gate_frame,
    input_gate_frames,
    messages_gate_frame,
    run_gates,
)
from flows.artifacts import publish_failure, publish_quarantine
from flows.common import (
    begin_run,
    current_run_id,
    error_text,
    flow_run_namer,
    masking_errors,
    open_warehouse,
    run_instant,
    scheduled_start,
    settings_with,
    utc_now,
    writes_warehouse,
)
from tasks.consent import load_captured_consent
from tasks.errors import (
    AccountingError,
    ConfigurationError,
    GateFailed,
    QuarantineThresholdExceeded,
)
from tasks.extract import INPUTS, Extracted, extract_task
from tasks.normalize import Normalized, normalize_task, with_captured_consent
from tasks.outbox import finish_run, last_succeeded_rows, load_prior, save_plan
from tasks.phones import load_phone_cache, save_phone_cache
from tasks.plan import Plan, build_plan
from tasks.render import load_templates
from tasks.send_calendar import CALENDAR_SCHEMA, read_calendar_csv
from tasks.settings import Settings
from tasks.warehouse import read_frame, write_frame

__all__ = [
    "build_reminders",
    "check_input_gates",
    "check_plan_gates",
    "check_quarantine",
    "load_no_send_days",
]


def load_no_send_days(conn: Any, settings: Settings) -> pl.DataFrame | None:
    """The user's no-send days: ``calendar.extra_csv`` and the ``no_send_days`` table."""
    if not settings.calendar.enabled:
        return None
    table = read_frame(
        conn,
        "select country, subdivision, day, name from no_send_days",
        schema={k: v for k, v in CALENDAR_SCHEMA.items() if k != "kind"},
    ).with_columns(
        pl.col("country").str.strip_chars().str.to_uppercase(),
        pl.col("subdivision").str.strip_chars().str.to_uppercase().replace("", None),
        pl.lit("holiday").alias("kind"),
    )
    parts = [table]
    if settings.calendar.extra_csv is not None:
        try:
            parts.append(read_calendar_csv(settings.calendar.extra_csv))
        except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
            raise ConfigurationError(f"calendar.extra_csv: {exc}") from None
    return pl.concat(parts)


def check_quarantine(extracted: Extracted, normalized: Normalized, max_share: float) -> None:
    """Raise :class:`QuarantineThresholdExceeded` for the first source over ``max_share``."""
    for name in INPUTS:
        total = extracted.counts[name]
        bad = normalized.quarantined_rows(name)
        if total and bad / total > max_share:
            raise QuarantineThresholdExceeded(name, bad, total, max_share)


def check_input_gates(
    validator: GateValidator,
    extracted: Extracted,
    normalized: Normalized,
    settings: Settings,
    as_of: datetime,
    previous_rows: dict[str, int],
) -> GateReport:
    """Run the input suites; raise :class:`GateFailed` (after recording) if any rule fails."""
    report = GateReport(docs_index=validator.docs_index)
    frames = input_gate_frames(extracted.frames, normalized.customers, normalized.quarantine, as_of)
    report.outcomes = run_gates(
        validator,
        frames,
        thresholds=settings.quality.gates.thresholds,
        previous_rows=previous_rows,
    )
    return report


def check_plan_gates(validator: GateValidator, plan: Plan, settings: Settings) -> GateReport:
    """Run the planned-output suites (messages, decisions) on a plan before it is saved."""
    report = GateReport(docs_index=validator.docs_index)
    planned_keys = plan.decisions.filter(pl.col("status") == "planned")["message_key"].n_unique()
    report.outcomes = run_gates(
        validator,
        {
            "messages": messages_gate_frame(
                plan.messages, settings.window.start, settings.window.end
            ),
            "decisions": decisions_gate_frame(plan.decisions),
        },
        thresholds=settings.quality.gates.thresholds,
        expected_rows={
            "messages": planned_keys,
            "decisions": plan.rows_in["invoices"] * len(("sms", "email")),
        },
    )
    return report


def _write_quarantine(engine: Any, normalized: Normalized, run_id: str) -> None:
    with engine.begin() as conn:
        write_frame(
            conn, "quarantine", normalized.quarantine.with_columns(pl.lit(run_id).alias("run_id"))
        )


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(
    extracted: Extracted,
    normalized: Normalized,
    prior: pl.DataFrame,
    tokens: pl.DataFrame,
    settings: Settings,
    as_of: datetime,
    for_date: date | None = None,
    no_send_days: pl.DataFrame | None = None,
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
        no_send_days=no_send_days,
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


@flow(
    name="build-reminders",
    log_prints=True,
    flow_run_name=flow_run_namer("build-reminders", "as_of"),
)
@masking_errors
@writes_warehouse
def build_reminders(
    as_of: str | None = None,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    for_date: str | None = None,
) -> dict[str, Any]:
    """Plan the reminders due at ``as_of`` (ISO-8601; empty: the flow run's scheduled start
    time, or now outside Prefect) and write them.

    ``for_date`` (YYYY-MM-DD) plans every recipient's local date ``for_date`` whatever the run
    time (previews, backfills); zones whose window for that date has closed at ``as_of`` are
    excluded ``window_passed``. Returns the run id, the row counts and the decisions per reason.
    """
    logger = get_run_logger()
    settings = settings_with(overrides)
    as_of_utc, as_of_source = run_instant(as_of)
    local_date = parse_for_date(for_date)
    run_id = current_run_id("build")
    engine = open_warehouse(settings)
    with engine.begin() as conn:
        begin_run(
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
            scheduled_start=scheduled_start(),
            as_of_source=as_of_source,
        )
    counts: dict[str, int] = {}
    accounting_ok: bool | None = None
    gates = GateReport()
    gate_settings = settings.quality.gates
    try:
        extracted = extract_task(settings.sources)
        counts = {f"{n}_in": c for n, c in extracted.counts.items()}
        with engine.begin() as conn:
            phone_cache = load_phone_cache(conn)
            captured = load_captured_consent(conn)
        normalized = normalize_task(
            extracted, as_of=as_of_utc, parsing=settings.parsing, phone_cache=phone_cache
        )
        # keyword opt-outs and CRM imports the warehouse captured count like source consent
        normalized = with_captured_consent(normalized, captured, as_of=as_of_utc)
        counts |= {f"{n}_quarantined": normalized.quarantined_rows(n) for n in INPUTS}
        publish_quarantine(normalized.quarantine, extracted.counts, run_id)  # even if we fail
        try:
            check_quarantine(extracted, normalized, settings.quality.max_quarantine_share)
        except QuarantineThresholdExceeded:
            _write_quarantine(engine, normalized, run_id)
            raise
        validator = None
        if gate_settings.enabled:
            docs = settings.data_dir.resolve() / "data_docs" / run_id
            validator = GateValidator(docs if gate_settings.data_docs else None)
            gates.docs_index = validator.docs_index
            with engine.begin() as conn:
                previous = last_succeeded_rows(conn, flow="build-reminders", run_id=run_id)
            found = check_input_gates(
                validator, extracted, normalized, settings, as_of_utc, previous
            )
            gates.outcomes += found.outcomes
            if found.failures:
                _write_quarantine(engine, normalized, run_id)
                raise GateFailed("input", found.failures, gates.docs_index)
        with engine.begin() as conn:
            prior, tokens = load_prior(conn, as_of=as_of_utc)
            no_send_days = load_no_send_days(conn, settings)
        plan = plan_task(
            extracted, normalized, prior, tokens, settings, as_of_utc, local_date, no_send_days
        )
        counts |= plan.counts
        accounting_ok = plan.accounting.ok
        if not accounting_ok:
            # Fail closed: a plan that loses or invents rows writes no decisions or outbox.
            _write_quarantine(engine, normalized, run_id)
            raise AccountingError("; ".join(plan.accounting.problems))
        if validator is not None:
            found = check_plan_gates(validator, plan, settings)
            gates.outcomes += found.outcomes
            if found.failures:
                _write_quarantine(engine, normalized, run_id)
                raise GateFailed("plan", found.failures, gates.docs_index)
        with engine.begin() as conn:
            outbox = save_plan(conn, plan, run_id=run_id, now=utc_now(), dry_run=dry_run)
            save_phone_cache(conn, normalized.new_phones)
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="succeeded",
                counts=counts,
                accounting_ok=accounting_ok,
                data_docs_path=str(gates.docs_index) if gates.docs_index else None,
            )
    except Exception as exc:
        publish_failure("build-reminders", run_id, error_text(exc, 500), counts)
        with engine.begin() as conn:
            finish_run(
                conn,
                run_id=run_id,
                now=utc_now(),
                status="failed",
                counts=counts,
                accounting_ok=accounting_ok,
                error=error_text(exc),
                data_docs_path=str(gates.docs_index) if gates.docs_index else None,
            )
        if gates.outcomes:
            # A partial artifact: which gates ran, which failed, and the Data Docs link.
            create_markdown_artifact(
                key="data-quality-gates",
                markdown=gates.markdown(run_id),
                description="Table-level data-quality gates of this run (failed) and its "
                "Great Expectations Data Docs",
            )
        raise
    finally:
        engine.dispose()
    if gates.outcomes:
        create_markdown_artifact(
            key="data-quality-gates",
            markdown=gates.markdown(run_id),
            description="Table-level data-quality gates of this run and its Great Expectations "
            "Data Docs",
        )
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
