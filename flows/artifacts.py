"""Per-run Prefect artifacts: what an on-call engineer reads in the UI.

Every artifact is keyed per flow and describes this run only (not cumulative): the
quarantine by rule of every build (published right after normalization, so a build that fails
later still shows it), a failure note with the error line, the waves of one push with their
counts, the Genesys requests and retries by status, and the outcomes collected.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "PUSH_STATES",
    "publish_collect",
    "publish_failure",
    "publish_push",
    "publish_quarantine",
    "quarantine_by_rule",
    "requests_by_status",
    "run_wave_counts",
]

PUSH_STATES = ("pushed", "rejected", "deferred", "cancelled")
"""States a push moves messages to; one column each in the per-run waves table."""


def quarantine_by_rule(quarantine: pl.DataFrame) -> pl.DataFrame:
    """One row per source, scope and rule with its quarantine rows (most first)."""
    return (
        quarantine.group_by("source", "scope", "rule")
        .len("rows")
        .sort(["source", "scope", "rows", "rule"], descending=[False, False, True, False])
    )


def requests_by_status(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The Genesys client's counters as table rows (``counter``, ``count``), sorted."""
    return [{"counter": str(k), "count": v} for k, v in sorted(stats.items(), key=str)]


def _in_run() -> bool:
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def publish_quarantine(quarantine: pl.DataFrame, rows_in: dict[str, int], run_id: str) -> None:
    """The ``quarantine-by-rule`` table artifact of a build (no-op outside a flow run)."""
    if not _in_run():
        return
    from prefect.artifacts import create_table_artifact

    table = quarantine_by_rule(quarantine).to_dicts()
    total = sum(rows_in.values())
    create_table_artifact(
        key="quarantine-by-rule",
        table=table or [{"source": "-", "scope": "-", "rule": "(none)", "rows": 0}],
        description=f"Quarantined rows and fields per source and rule, run {run_id} "
        f"({total} input rows)",
    )


def publish_failure(flow: str, run_id: str, error: str, counts: dict[str, Any]) -> None:
    """A markdown artifact ``<flow>-failure``: the masked error line and the counts so far."""
    if not _in_run():
        return
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# {flow} {run_id} failed", "", f"`{error}`", ""]
    if counts:
        lines += ["| count | value |", "|---|---:|", *[f"| {k} | {v} |" for k, v in counts.items()]]
    create_markdown_artifact(key=f"{flow}-failure", markdown="\n".join(lines))


def run_wave_counts(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Waves touched by run ``run_id`` only (from ``message_events``), one row per wave with
    the messages this run moved to pushed / rejected / deferred / cancelled."""
    cases = ", ".join(
        f"sum(case when e.to_state = '{state}' then 1 else 0 end) as {state}"
        for state in PUSH_STATES
    )
    rows = conn.execute(
        sa.text(
            f"select m.wave_id, m.channel, m.time_zone, min(m.wave_start_utc) as wave_start_utc,"
            f" {cases} from message_events e join messages m on m.message_key = e.message_key"
            " where e.run_id = :r group by m.wave_id, m.channel, m.time_zone"
            " order by min(m.wave_start_utc), m.wave_id"
        ),
        {"r": run_id},
    ).mappings()
    out = []
    for row in rows:
        item = {k: row[k] for k in ("wave_id", "channel", "time_zone")}
        item["wave_start_utc"] = str(row["wave_start_utc"])
        item |= {state: int(row[state] or 0) for state in PUSH_STATES}
        if any(item[state] for state in PUSH_STATES):
            out.append(item)
    return out


def publish_push(summary: dict[str, Any]) -> None:
    """The push run's artifacts: ``push-run-waves`` (waves of this run with counts pushed /
    rejected / deferred / cancelled), ``push-genesys-requests`` (requests, retries, answers by
    HTTP status) and a ``push-summary`` markdown line."""
    if not _in_run():
        return
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    run_id = summary["run_id"]
    waves = summary.get("this_run_waves") or []
    create_table_artifact(
        key="push-run-waves",
        table=waves or [{"wave_id": "(none this run)", **dict.fromkeys(PUSH_STATES, 0)}],
        description=f"Waves this push run changed, run {run_id} at {summary['now']} UTC",
    )
    create_table_artifact(
        key="push-genesys-requests",
        table=requests_by_status(summary.get("genesys_requests") or {})
        or [{"counter": "requests", "count": 0}],
        description=f"Genesys requests, retries and answers by HTTP status, run {run_id}",
    )

    def total(value: Any) -> int:
        return sum(value.values()) if isinstance(value, dict) else int(value or 0)

    totals = ", ".join(f"{total(summary.get(s))} {s}" for s in PUSH_STATES)
    create_markdown_artifact(
        key="push-summary",
        markdown=f"# push-waves {run_id}\n\nAt {summary['now']} UTC"
        f"{' (dry run)' if summary.get('dry_run') else ''}: {summary.get('ready_waves', 0)} "
        f"waves ready; {totals}; {len(waves)} waves touched; settled "
        f"{summary.get('settled')}.",
    )


def publish_collect(result: dict[str, Any], stats: dict[str, Any]) -> None:
    """The collect-outcomes run's artifacts: ``collect-outcomes`` (messages per outcome) and
    ``collect-genesys-requests``."""
    if not _in_run():
        return
    from prefect.artifacts import create_table_artifact

    run_id = result["run_id"]
    create_table_artifact(
        key="collect-outcomes",
        table=[{"outcome": k, "messages": v} for k, v in result.items() if k != "run_id"],
        description=f"Messages moved per outcome by collect-outcomes run {run_id}",
    )
    create_table_artifact(
        key="collect-genesys-requests",
        table=requests_by_status(stats) or [{"counter": "requests", "count": 0}],
        description=f"Genesys requests, retries and answers by HTTP status, run {run_id}",
    )
