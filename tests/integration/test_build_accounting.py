"""build-reminders (Prefect test harness, DuckDB file): accounting_ok is computed, and a plan
that loses a row fails closed; ``for_date`` dry runs plan a local date and write no outbox."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

import tasks.normalize
from tasks.errors import AccountingError
from tasks.sample_data import generate

pytestmark = pytest.mark.prefect


@pytest.fixture
def overrides(tmp_path) -> dict:
    generate(200, seed=4, as_of=date(2026, 11, 23)).write(tmp_path, "csv")
    return {
        "warehouse": {"url": f"duckdb:///{tmp_path / 'warehouse.duckdb'}"},
        "sources": {
            n: {"kind": "csv", "path": str(tmp_path / f"{n}.csv")}
            for n in ("customers", "invoices", "consent_events", "contact_history")
        },
    }


def _rows(overrides: dict, sql: str) -> list[tuple]:
    engine = sa.create_engine(overrides["warehouse"]["url"])
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    engine.dispose()
    return rows


def test_accounting_ok_is_true_for_a_whole_run(prefect_harness, overrides) -> None:
    from flows.build_reminders import build_reminders

    build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    assert _rows(overrides, "select status, accounting_ok from runs") == [("succeeded", True)]


def test_a_run_that_loses_a_row_is_failed_with_accounting_false_and_no_outbox(
    prefect_harness, overrides, monkeypatch
) -> None:
    from flows.build_reminders import build_reminders

    original = tasks.normalize.normalize

    def lossy(*args, **kwargs):
        normalized = original(*args, **kwargs)
        return type(normalized)(
            customers=normalized.customers.slice(1),
            invoices=normalized.invoices,
            consent_events=normalized.consent_events,
            contact_history=normalized.contact_history,
            quarantine=normalized.quarantine,
        )

    monkeypatch.setattr(tasks.normalize, "normalize", lossy)
    with pytest.raises(AccountingError, match="customers"):
        build_reminders(as_of="2026-11-23T06:00:00Z", overrides=overrides)
    ((status, ok, error),) = _rows(overrides, "select status, accounting_ok, error from runs")
    assert (status, ok) == ("failed", False)
    assert "customers" in error
    assert _rows(overrides, "select count(*) from messages") == [(0,)]
    assert _rows(overrides, "select count(*) from decisions") == [(0,)]


def test_for_date_dry_run_plans_that_date_and_writes_no_outbox(prefect_harness, overrides) -> None:
    from flows.build_reminders import build_reminders

    result = build_reminders(
        as_of="2026-11-23T06:00:00Z", dry_run=True, for_date="2026-11-25", overrides=overrides
    )
    assert result["for_date"] == "2026-11-25"
    assert _rows(overrides, "select count(*) from messages") == [(0,)]
    dates = _rows(
        overrides,
        "select distinct local_send_date from decisions where local_send_date is not null",
    )
    assert dates == [(date(2026, 11, 25),)]
    planned = _rows(overrides, "select count(*) from decisions where status = 'planned'")
    assert planned[0][0] == result["counts"]["decisions_planned"] > 0


def test_for_date_must_be_a_date(prefect_harness, overrides) -> None:
    from flows.build_reminders import build_reminders
    from tasks.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="YYYY-MM-DD"):
        build_reminders(as_of="2026-11-23T06:00:00Z", for_date="25/11/2026", overrides=overrides)
