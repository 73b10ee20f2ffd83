"""build-reminders and push-waves as Prefect flows (test harness), PostgreSQL as warehouse."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from genesys_sandbox.app import create_app
from genesys_sandbox.testing import serve
from tasks.errors import QuarantineThresholdExceeded
from tasks.sample_data import generate

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def sandbox_url():
    with serve(create_app()) as url:
        yield url


@pytest.fixture
def overrides(tmp_path, pg_url, pg_schema, sandbox_url, monkeypatch) -> dict:
    # The secret comes from the environment: overrides (a flow parameter) refuse secrets.
    monkeypatch.setenv("REMINDERS_GENESYS__CLIENT_SECRET", "sandbox-secret")
    generate(300, seed=3, as_of=date(2026, 11, 23)).write(tmp_path, "csv")
    httpx.post(f"{sandbox_url}/sandbox/reset").raise_for_status()
    return {
        "genesys": {
            "base_url": sandbox_url,
            "client_id": "sandbox-client",
        },
        "warehouse": {"url": pg_url, "db_schema": pg_schema},
        "sources": {
            n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")}
            for n in ("customers", "invoices", "consent_events", "contact_history")
        },
    }


def _scalar(pg_url, schema, sql):
    engine = sa.create_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"})
    with engine.connect() as conn:
        value = conn.exec_driver_sql(sql).scalar_one()
    engine.dispose()
    return value


def test_build_then_push_on_postgres_with_artifacts(
    prefect_harness, overrides, pg_url, pg_schema
) -> None:
    from prefect.client.orchestration import get_client

    from flows.build_reminders import build_reminders
    from flows.push_waves import push_waves

    built = build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    assert built["counts"]["messages_planned"] > 0
    assert (
        _scalar(pg_url, pg_schema, "select count(*) from messages")
        == built["counts"]["messages_planned"]
    )
    assert (
        _scalar(pg_url, pg_schema, "select status from runs where flow = 'build-reminders'")
        == "succeeded"
    )

    # 13:30 UTC: the first slot (08:00 New York) has opened; nothing is added before it does
    pushed = push_waves(now="2026-11-23T13:30:00Z", overrides=overrides)
    in_genesys = _scalar(pg_url, pg_schema, "select count(*) from messages where state = 'pushed'")
    assert in_genesys == pushed["pushed"] == sum(w["messages"] for w in pushed["waves"]) > 0
    assert pushed["campaigns"]
    again = push_waves(now="2026-11-23T13:30:00Z", overrides=overrides)
    assert again["pushed"] == 0

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    expected = {"decisions-per-reason", "waves-per-zone-and-hour", "build-reminders-summary"}
    assert expected | {"pushed-waves", "push-progress"} <= keys


def test_dry_run_writes_decisions_only(prefect_harness, overrides, pg_url, pg_schema) -> None:
    from flows.build_reminders import build_reminders

    result = build_reminders(as_of="2026-11-23T06:00:00Z", dry_run=True, overrides=overrides)
    assert result["counts"]["messages_planned"] > 0
    assert _scalar(pg_url, pg_schema, "select count(*) from messages") == 0
    decisions = _scalar(pg_url, pg_schema, "select count(*) from decisions")
    assert decisions == 2 * result["rows_in"]["invoices"]


def test_quarantine_over_threshold_stops_before_the_outbox(
    prefect_harness, overrides, pg_url, pg_schema
) -> None:
    from flows.build_reminders import build_reminders

    overrides["quality"] = {"max_quarantine_share": 0.001}
    with pytest.raises(QuarantineThresholdExceeded):
        build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    assert _scalar(pg_url, pg_schema, "select count(*) from messages") == 0
    assert _scalar(pg_url, pg_schema, "select count(*) from quarantine") > 0
    assert _scalar(pg_url, pg_schema, "select status from runs") == "failed"
    assert "QuarantineThresholdExceeded" in _scalar(pg_url, pg_schema, "select error from runs")
