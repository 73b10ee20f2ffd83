"""Visible flows: push-waves and collect-outcomes are named tasks with per-run artifacts and the
project's log lines in the Prefect API; a failed build still publishes its quarantine by rule."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from genesys_sandbox.app import create_app
from genesys_sandbox.testing import serve
from tasks.sample_data import generate

pytestmark = pytest.mark.prefect

# Evidence for a closing note, written only when asked for (OPS_EVIDENCE_DIR=<folder>).
NOTES = Path(os.environ.get("OPS_EVIDENCE_DIR") or "/nonexistent-ops-evidence")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox_url():
    with serve(create_app()) as url:
        yield url


@pytest.fixture
def overrides(tmp_path, sandbox_url, monkeypatch) -> dict:
    monkeypatch.setenv("REMINDERS_GENESYS__CLIENT_SECRET", "sandbox-secret")
    generate(300, seed=3, as_of=date(2026, 11, 23)).write(tmp_path, "csv")
    httpx.post(f"{sandbox_url}/sandbox/reset").raise_for_status()
    return {
        "genesys": {"base_url": sandbox_url, "client_id": "sandbox-client"},
        "warehouse": {"url": f"duckdb:///{tmp_path / 'wh.duckdb'}"},
        "sources": {
            n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")}
            for n in ("customers", "invoices", "consent_events", "contact_history")
        },
    }


def _rows(overrides: dict, sql: str, **params) -> list:
    engine = sa.create_engine(overrides["warehouse"]["url"])
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    engine.dispose()
    return rows


async def _run_view(flow_run_id) -> dict:
    """The flow run as the UI shows it: name, state, task runs, logs, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        tasks = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {
        "name": run.name,
        "state": run.state.type.value if run.state else None,
        "state_message": run.state.message if run.state else None,
        "tasks": sorted(t.name for t in tasks),
        "logs": [f"{log.level} {log.name}: {log.message}" for log in logs],
        "artifacts": {
            a.key: (json.loads(a.data) if a.type == "table" else a.data) for a in artifacts if a.key
        },
    }


def _dump(name: str, view: dict, tmp_path: Path) -> None:
    if NOTES.is_dir():  # no machine path in evidence that gets committed
        text = json.dumps(view, indent=2, default=str).replace(str(tmp_path), "<tmp>")
        text = text.replace(str(ROOT), "<repo>").replace(sys.base_prefix, "<python>")
        (NOTES / name).write_text(text)


def test_failed_build_still_publishes_quarantine_by_rule(
    prefect_harness, overrides, tmp_path
) -> None:
    from flows.build_reminders import build_reminders

    overrides["quality"] = {"max_quarantine_share": 0.001}
    state = build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides, return_state=True)
    assert state.is_failed()
    view = asyncio.run(_run_view(state.state_details.flow_run_id))
    _dump("failed-build-run.json", view, tmp_path)
    table = view["artifacts"]["quarantine-by-rule"]
    expected = {
        (r.source, r.scope, r.rule): r.n
        for r in _rows(
            overrides, "select source, scope, rule, count(*) as n from quarantine group by 1, 2, 3"
        )
    }
    assert expected, "the premise: this sample quarantines rows"
    assert {(r["source"], r["scope"], r["rule"]): r["rows"] for r in table} == expected
    assert "QuarantineThresholdExceeded" in view["artifacts"]["build-reminders-failure"]


def test_push_and_collect_runs_show_tasks_logs_and_per_run_artifacts(
    prefect_harness, overrides, tmp_path
) -> None:
    from flows.build_reminders import build_reminders
    from flows.collect_outcomes import collect_outcomes
    from flows.push_waves import push_waves

    build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    state = push_waves(
        now="2026-11-23T14:05:00Z", horizon_minutes=60, overrides=overrides, return_state=True
    )
    assert state.is_completed(), state.message
    summary = state.result()
    flow_run_id = state.state_details.flow_run_id
    view = asyncio.run(_run_view(flow_run_id))
    _dump("push-waves-run.json", view, tmp_path)
    assert view["name"] == "push-waves 2026-11-23T14:05Z"
    assert any(t.startswith("re-check sources at 2026-11-23 14:05") for t in view["tasks"])
    # One task run per step: ready/settle, cancels, capacity per route, a push per wave.
    assert any(t.startswith("ready waves opening by 2026-11-23 14:05") for t in view["tasks"])
    assert any(t.startswith("cancel messages paid or opted out") for t in view["tasks"])
    assert any(t.startswith("capacity sms at 2026-11-23 14:05 UTC") for t in view["tasks"])
    wave_tasks = [t for t in view["tasks"] if t.startswith("push wave ")]
    assert any(t.startswith("start campaign sms") for t in view["tasks"])
    # The project's own log lines reach the API (tasks.push, reminders.push).
    assert any(" reminders.push: push " in line for line in view["logs"]), view["logs"]
    # Waves of this run only, counted from the warehouse events of this run.
    pushed = _rows(
        overrides,
        "select count(*) from message_events where run_id = :r and to_state = 'pushed'",
        r=str(flow_run_id),
    )[0][0]
    assert pushed > 0, "the premise: this push pushes"
    waves = view["artifacts"]["push-run-waves"]
    assert sum(w["pushed"] for w in waves) == pushed
    # a task run per wave pushed in this run, named with its size as the warehouse counts it
    pushed_per_wave = {
        (wave_id, n)
        for wave_id, n in _rows(
            overrides,
            "select m.wave_id, count(*) from message_events e join messages m"
            " using (message_key) where e.run_id = :r and e.to_state = 'pushed' group by 1",
            r=str(flow_run_id),
        )
    }
    assert len(wave_tasks) == len(pushed_per_wave) > 0
    assert sorted(int(t.rsplit("(", 1)[1].split()[0].replace(",", "")) for t in wave_tasks) == (
        sorted(n for _, n in pushed_per_wave)
    )
    assert all(w["pushed"] + w["rejected"] + w["deferred"] + w["cancelled"] > 0 for w in waves)
    requests = {r["counter"]: r["count"] for r in view["artifacts"]["push-genesys-requests"]}
    assert requests["requests"] == summary["genesys_requests"]["requests"] > 0
    answered = sum(v for k, v in requests.items() if k.startswith("http_"))
    assert answered == requests["requests"]  # no transport errors against the sandbox

    # A second push in the same hour: its waves table is per run, not cumulative.
    again = push_waves(
        now="2026-11-23T14:20:00Z", horizon_minutes=60, overrides=overrides, return_state=True
    )
    second = asyncio.run(_run_view(again.state_details.flow_run_id))
    pushed_again = _rows(
        overrides,
        "select count(*) from message_events where run_id = :r and to_state = 'pushed'",
        r=str(again.state_details.flow_run_id),
    )[0][0]
    assert sum(w.get("pushed", 0) for w in second["artifacts"]["push-run-waves"]) == pushed_again

    httpx.post(
        f"{overrides['genesys']['base_url']}/sandbox/run", json={"until": "2026-11-24T06:00:00Z"}
    ).raise_for_status()
    state = collect_outcomes(now="2026-11-24T06:00:00Z", overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    view = asyncio.run(_run_view(state.state_details.flow_run_id))
    _dump("collect-outcomes-run.json", view, tmp_path)
    assert view["name"] == "collect-outcomes 2026-11-24T06:00Z"
    assert any(t.startswith("export outcomes at 2026-11-24 06:00") for t in view["tasks"])
    assert any(t.startswith("apply outcomes at 2026-11-24 06:00") for t in view["tasks"])
    outcomes = {r["outcome"]: r["messages"] for r in view["artifacts"]["collect-outcomes"]}
    assert outcomes == {k: v for k, v in result.items() if k != "run_id"}
    assert "collect-genesys-requests" in view["artifacts"]
