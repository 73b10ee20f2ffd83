"""build-reminders (Prefect test harness, DuckDB file) stopped by table-level gates: nothing
reaches the outbox, the run row is failed with the rule and its numbers, the quarantine is
written, the Data Docs are built and linked from an artifact."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from tasks.errors import GateFailed
from tasks.sample_data import generate

pytestmark = pytest.mark.prefect

INPUTS = ("customers", "invoices", "consent_events", "contact_history")


@pytest.fixture
def overrides(tmp_path) -> dict:
    generate(200, seed=4, as_of=date(2026, 11, 23)).write(tmp_path, "csv")
    return {
        "data_dir": str(tmp_path / "data"),
        "warehouse": {"url": f"duckdb:///{tmp_path / 'warehouse.duckdb'}"},
        "sources": {n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")} for n in INPUTS},
    }


def _rows(overrides: dict, sql: str) -> list[tuple]:
    engine = sa.create_engine(overrides["warehouse"]["url"])
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    engine.dispose()
    return rows


def test_a_swapped_phone_email_mapping_stops_the_run_before_the_outbox(
    prefect_harness, overrides
) -> None:
    from prefect.client.orchestration import get_client

    from flows.build_reminders import build_reminders

    overrides["sources"]["customers"]["columns"] = {"phone": "email", "email": "phone"}
    with pytest.raises(GateFailed) as caught:
        build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    message = str(caught.value)
    assert "field_quarantine_share" in message
    assert "phone_invalid_share" in message
    assert "above the threshold of 50.0%" in message
    assert _rows(overrides, "select count(*) from messages") == [(0,)]
    assert _rows(overrides, "select count(*) from decisions") == [(0,)]
    assert _rows(overrides, "select count(*) from quarantine where scope = 'field'")[0][0] > 0
    [(status, error, docs)] = _rows(overrides, "select status, error, data_docs_path from runs")
    assert status == "failed"
    assert error.startswith("GateFailed: ")
    assert "field_quarantine_share" in error
    assert Path(docs).exists()
    assert Path(docs).is_relative_to(Path(overrides["data_dir"]).resolve())
    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "data-quality-gates"]
    assert any(Path(docs).as_uri() in (a.data or "") for a in artifacts)
    assert all("Data Docs" in (a.description or "") for a in artifacts)


def test_a_source_under_half_its_last_run_stops_the_next_run(prefect_harness, overrides) -> None:
    from flows.build_reminders import build_reminders

    first = build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    n = first["rows_in"]["invoices"]
    path = Path(overrides["sources"]["invoices"]["path"])
    raw = pl.read_csv(path, infer_schema=False)
    raw.head(n // 2 - 1).write_csv(path)  # fewer than half of the last succeeded run
    with pytest.raises(GateFailed, match=rf"source_shrunk: invoices: {n // 2 - 1} rows"):
        build_reminders(as_of="2026-11-24T06:00:00Z", overrides=overrides)
    statuses = _rows(overrides, "select status from runs order by started_at_utc")
    assert statuses == [("succeeded",), ("failed",)]
