"""Scheduled time, not wall clock: a flow run with an empty ``now`` / ``as_of`` plans for its
scheduled start time; the runs row stores the instant, the scheduled start and the source."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.prefect


def _run_scheduled(flow, scheduled_for: datetime, parameters: dict):
    """Create a flow run scheduled for ``scheduled_for`` (in the past: a late run or a
    backfill) and execute it in this process, as a worker would."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    async def create():
        async with get_client() as client:
            return await client.create_flow_run(
                flow, parameters=parameters, state=Scheduled(scheduled_time=scheduled_for)
            )

    flow_run = asyncio.run(create())
    return run_flow(flow, flow_run=flow_run, parameters=parameters, return_type="state")


def test_empty_now_is_the_scheduled_start_time(prefect_harness, tmp_path) -> None:
    from flows.push_waves import push_waves

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    scheduled_for = datetime.fromisoformat("2026-11-23T13:15:00+00:00")
    state = _run_scheduled(
        push_waves,
        scheduled_for,
        {"now": None, "dry_run": True, "overrides": {"warehouse": {"url": url}}},
    )
    assert state.is_completed(), state.message
    assert state.result()["now"] == "2026-11-23T13:15:00"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select as_of_utc, scheduled_start_utc, as_of_source, started_at_utc from runs")
        ).one()
    engine.dispose()
    assert row.as_of_utc == datetime(2026, 11, 23, 13, 15)
    assert row.scheduled_start_utc == datetime(2026, 11, 23, 13, 15)
    assert row.as_of_source == "scheduled"
    assert row.started_at_utc > datetime(2026, 11, 23, 13, 15)  # ran late: the clock moved on


def test_a_given_now_wins_over_the_schedule(prefect_harness, tmp_path) -> None:
    from flows.push_waves import push_waves

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    state = _run_scheduled(
        push_waves,
        datetime.fromisoformat("2026-11-23T13:15:00+00:00"),
        {"now": "2026-11-24T08:00:00Z", "dry_run": True, "overrides": {"warehouse": {"url": url}}},
    )
    assert state.is_completed(), state.message
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select as_of_utc, scheduled_start_utc, as_of_source from runs")
        ).one()
    engine.dispose()
    assert row.as_of_utc == datetime(2026, 11, 24, 8, 0)
    assert row.scheduled_start_utc == datetime(2026, 11, 23, 13, 15)
    assert row.as_of_source == "parameter"
