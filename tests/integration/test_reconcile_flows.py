"""reconcile-daily and reconcile-billing as Prefect flows on DuckDB and PostgreSQL: carrier
files in Twilio's layout, delivery into the outbox, artifacts on disk, re-runs change nothing."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows.reconcile import final_day, reconcile_billing, reconcile_daily
from tasks.warehouse import make_engine, migrate
from tests import reconcile_fixture as fx

pytestmark = pytest.mark.prefect

TWILIO = [
    # m01's SMS, delivered and priced: matched, m01 delivered
    {
        "sid": "SMa1",
        "account_sid": "AC1",
        "from": "+13175550100",
        "to": "+12125550101",
        "body": fx.body("m01"),
        "status": "delivered",
        "num_segments": "1",
        "price": "-0.00790",
        "price_unit": "USD",
        "error_code": None,
        "direction": "outbound-api",
        "date_sent": "Mon, 23 Nov 2026 14:00:31 +0000",
        "date_updated": "Mon, 23 Nov 2026 14:10:31 +0000",
    },
    # m02's, undelivered: matched, m02 undelivered
    {
        "sid": "SMa2",
        "account_sid": "AC1",
        "from": "+13175550100",
        "to": "+12125550102",
        "body": fx.body("m02"),
        "status": "undelivered",
        "num_segments": "1",
        "price": "-0.00790",
        "price_unit": "USD",
        "error_code": 30003,
        "direction": "outbound-api",
        "date_sent": "Mon, 23 Nov 2026 14:05:10 +0000",
        "date_updated": "Mon, 23 Nov 2026 14:15:10 +0000",
    },
]


@pytest.fixture
def overrides(warehouse_settings, tmp_path) -> dict:
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    migrate(engine)
    with engine.begin() as conn:
        messages = fx.messages_frame().filter(fx.pl.col("message_key").is_in(["m01", "m02"]))
        attempts = fx.attempts_frame().filter(fx.pl.col("message_key").is_in(["m01", "m02"]))
        from tasks.attempts import load_attempts
        from tasks.reconcile import load_rates
        from tasks.warehouse import write_frame

        write_frame(conn, "messages", messages)
        load_attempts(conn, attempts)
        load_rates(conn, fx.rates_frame())
    engine.dispose()
    return {"warehouse": warehouse_settings, "data_dir": str(tmp_path / "data")}


def _states(overrides) -> dict[str, str]:
    w = overrides["warehouse"]
    engine = make_engine(w["url"], schema=w.get("db_schema"))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select message_key, state from messages")).all()
    engine.dispose()
    return dict(rows)


def test_final_day_is_the_newest_day_72_hours_old() -> None:
    assert final_day(datetime(2026, 11, 27, 0, 0)) == date(2026, 11, 23)
    assert final_day(datetime(2026, 11, 26, 23, 59)) == date(2026, 11, 22)


def test_reconcile_daily_and_billing(prefect_harness, overrides, tmp_path) -> None:
    carrier_file = tmp_path / "twilio-2026-11-23.json"
    carrier_file.write_text(json.dumps({"messages": TWILIO}))
    kwargs = {
        "now": "2026-11-27T07:30:00Z",
        "carrier_glob": str(tmp_path / "twilio-{day}.json"),
        "carrier_layout": "twilio",
        "read_genesys": False,
        "overrides": overrides,
    }
    first = reconcile_daily(**kwargs)
    assert first["day"] == "2026-11-23"
    assert first["carrier_records"]["inserted"] == 2
    assert first["delivery"] == {"delivered": 1, "undelivered": 1}
    assert first["statuses"]["matched"] == 2
    assert first["reconcile_results"] == 2  # the day materialized
    assert sum(first["statuses"].values()) == 2
    assert _states(overrides) == {"m01": "delivered", "m02": "undelivered"}
    svg = Path(first["chart"]).read_text(encoding="utf-8")
    assert "<title>delivered 1</title>" in svg
    assert "matched 2" in Path(first["summary"]).read_text(encoding="utf-8")

    again = reconcile_daily(**kwargs)
    assert again["carrier_records"]["inserted"] == 0
    assert again["carrier_records"]["unchanged"] == 2
    assert again["delivery"] == {"delivered": 0, "undelivered": 0}
    assert again["statuses"] == first["statuses"]
    assert again["reconcile_results"] == 2

    usage = tmp_path / "usage-2026-11.json"
    usage.write_text(
        json.dumps(
            {
                "usage_records": [
                    {
                        "account_sid": "AC1",
                        "category": "sms-outbound",
                        "count": "2",
                        "count_unit": "messages",
                        "price": "0.0158",
                        "price_unit": "usd",
                        "start_date": "2026-11-01",
                        "end_date": "2026-11-30",
                    }
                ]
            }
        )
    )
    billing = reconcile_billing(
        period="2026-11",
        invoice_files=[str(usage)],
        now="2026-12-04T09:00:00Z",
        overrides=overrides,
    )
    (period,) = billing["periods"]
    assert period["invoiced_micros"] == 2 * fx.US
    assert period["records_final_micros"] == 2 * fx.US
    assert period["status"] == "agrees"
