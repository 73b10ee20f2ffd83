"""The independent oracle (tests/oracle) against build-reminders on hostile sample data.

(i) the demo data (1,000 customers, seed 11, as of 2026-11-23T06:00Z) and (ii) 20,000 customers
at the two DST days 2026-03-08T06:00Z and 2026-11-01T06:00Z; build-reminders only (no push), so
every message is still planned. Zero violations per rule; ``pytest -s`` prints the table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tasks.sample_data import generate
from tasks.warehouse import make_engine, read_frame
from tests.oracle import OracleSettings, format_report, oracle_report

CASES = {
    "demo-1000": (1000, 11, "2026-11-23T06:00:00Z"),
    "dst-spring-20000": (20_000, 7, "2026-03-08T06:00:00Z"),
    "dst-autumn-20000": (20_000, 7, "2026-11-01T06:00:00Z"),
}


def run_build(folder: Path, customers: int, seed: int, as_of: str) -> tuple[str, dict]:
    """Generate the sample CSVs into ``folder/sample``, run build-reminders, read the tables."""
    from flows.build_reminders import build_reminders
    from flows.demo import demo_overrides

    at = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    generate(customers, seed=seed, as_of=at.date()).write(folder / "sample", "csv")
    result = build_reminders(as_of=as_of, overrides=demo_overrides(folder))
    engine = make_engine(f"duckdb:///{folder / 'warehouse.duckdb'}")
    with engine.connect() as conn:
        tables = {
            name: read_frame(conn, f"select * from {name}")
            for name in ("runs", "decisions", "quarantine", "messages")
        }
    engine.dispose()
    return result["run_id"], tables


@pytest.fixture(scope="module", params=list(CASES))
def judged(request, prefect_harness, tmp_path_factory) -> tuple[str, pl.DataFrame]:
    customers, seed, as_of = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    try:
        run_id, tables = run_build(folder, customers, seed, as_of)
    except Exception as exc:  # the run must not crash: report it as a failure of every rule
        pytest.fail(f"{request.param}: build-reminders crashed: {type(exc).__name__}: {exc}"[:2000])
    at = datetime.fromisoformat(as_of.replace("Z", "+00:00")).astimezone(UTC)
    report = oracle_report(folder / "sample", tables, run_id, at, OracleSettings())
    print("\n" + format_report(report, f"oracle: {request.param} (run {run_id})"))
    return request.param, report


def test_the_run_planned_messages(judged) -> None:
    _, report = judged
    checked = dict(zip(report["rule"], report["checked"], strict=True))
    assert checked["1_time"] > 50


@pytest.mark.parametrize(
    "rule",
    [
        "1_time",
        "2_consent",
        "3_payable",
        "4_frequency_24h",
        "5_max_attempts",
        "6_one_per_day",
        "7_cadence",
        "8_accounting",
        "9_no_pan",
        "10_phone",
    ],
)
def test_no_violations(judged, rule: str) -> None:
    case, report = judged
    row = report.filter(pl.col("rule") == rule).row(0, named=True)
    assert row["violations"] == 0, (
        f"{case} {rule}: {row['violations']} of {row['checked']}: " + (row["examples"])
    )
