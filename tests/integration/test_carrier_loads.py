"""Loading carrier records and invoices into DuckDB and PostgreSQL: idempotent, late prices."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from tasks.carriers import (
    load_carrier_file,
    load_carrier_invoices,
    load_carrier_records,
    load_layout,
    parse_carrier_file,
    parse_invoice_csv,
    parse_twilio_usage_records,
)
from tasks.warehouse import make_engine, migrate, read_frame

LOADED = datetime(2026, 12, 1, 9, 0)


@pytest.fixture
def engine(warehouse_settings):
    engine = make_engine(warehouse_settings["url"], schema=warehouse_settings.get("db_schema"))
    migrate(engine)
    yield engine
    engine.dispose()


def _message(sid: str, *, price: str | None, status: str = "delivered", updated: str) -> dict:
    return {
        "sid": sid,
        "account_sid": "AC00",
        "from": "+13175550100",
        "to": "+12125550101",
        "body": "Your invoice is due",
        "status": status,
        "num_segments": "1",
        "price": price,
        "price_unit": "USD",
        "error_code": None,
        "direction": "outbound-api",
        "date_sent": "2026-11-23T14:00:01Z",
        "date_updated": updated,
    }


def _day_file(*messages: dict) -> bytes:
    return gzip.compress("\n".join(json.dumps(m) for m in messages).encode())


def _load(engine, data: bytes, layout: str = "twilio_bulkexport", name: str = "day.json.gz"):
    parsed = parse_carrier_file(data, load_layout(layout), source_file=name, loaded_at=LOADED)
    with engine.begin() as conn:
        return load_carrier_records(conn, parsed)


def _records(engine):
    with engine.connect() as conn:
        return read_frame(
            conn,
            "select carrier_message_id, status_class, price_micros, price_final, updated_at_utc,"
            " source_file, load_id from carrier_records order by carrier_message_id",
        )


def _quarantine(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("select source, source_row, rule from quarantine order by source_row")
        ).fetchall()


PENDING = _day_file(
    _message("SMa", price=None, updated="2026-11-23T14:00:04Z"),
    _message("SMb", price="-0.00790", updated="2026-11-23T14:10:01Z"),
    {"sid": "SMc", "to": "+12125550101", "status": "delivered", "date_sent": "not a date"},
)
PRICED = _day_file(
    _message("SMa", price="-0.00790", updated="2026-11-23T14:10:01Z"),
    _message("SMb", price="-0.00790", updated="2026-11-23T14:10:01Z"),
)


def test_loading_the_same_file_twice_changes_nothing(engine) -> None:
    first = _load(engine, PENDING)
    before, quarantine_before = _records(engine), _quarantine(engine)
    second = _load(engine, PENDING)
    assert first["inserted"] == 2
    assert first["quarantined"] == 1
    assert first["rows_in"] == 3
    assert second["inserted"] == 0
    assert second["replaced"] == 0
    assert second["unchanged"] == 2
    assert _records(engine).equals(before)
    assert (
        _quarantine(engine)
        == quarantine_before
        == [("carrier_records:twilio", 3, "timestamp_invalid")]
    )


def test_a_late_price_replaces_the_pending_one_and_never_goes_back(engine) -> None:
    _load(engine, PENDING, name="day-1.json.gz")
    result = _load(engine, PRICED, name="day-2.json.gz")
    assert result["replaced"] == 1
    assert result["unchanged"] == 1
    rows = {r["carrier_message_id"]: r for r in _records(engine).to_dicts()}
    assert rows["SMa"]["price_micros"] == 7900
    assert rows["SMa"]["price_final"] is True
    assert rows["SMa"]["source_file"] == "day-2.json.gz"
    assert rows["SMb"]["source_file"] == "day-1.json.gz"  # identical content: untouched
    # Loading the older (pending) file again does not undo the price.
    again = _load(engine, PENDING, name="day-1.json.gz")
    assert again["kept_newer"] == 1
    assert again["replaced"] == 0
    assert _records(engine).filter(price_final=False).height == 0


def test_a_delivered_record_is_not_replaced_by_an_out_of_order_sent(engine) -> None:
    _load(engine, _day_file(_message("SMx", price="-0.00790", updated="2026-11-23T14:10:00Z")))
    late_sent = _message("SMx", price="-0.00790", status="sent", updated="2026-11-23T15:00:00Z")
    assert _load(engine, _day_file(late_sent), name="later.json.gz")["kept_newer"] == 1
    assert _records(engine)["status_class"].to_list() == ["delivered"]


def test_rebuild_equals_incremental(engine, tmp_path) -> None:
    _load(engine, PENDING, name="day-1.json.gz")
    _load(engine, PRICED, name="day-2.json.gz")
    incremental = _records(engine).drop("source_file", "load_id")
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from carrier_records")
    # One file holding both days' lines: the in-file dedupe must pick the same versions.
    both = gzip.compress(gzip.decompress(PENDING) + b"\n" + gzip.decompress(PRICED))
    _load(engine, both, name="rebuild.json.gz")
    assert _records(engine).drop("source_file", "load_id").equals(incremental)


def test_second_carrier_and_local_time_csv_load_beside_twilio(engine) -> None:
    aws = "\n".join(
        json.dumps(e)
        for e in [
            {
                "eventType": "TEXT_DELIVERED",
                "eventTimestamp": 1795442400000,  # 2026-11-23T14:00:00Z
                "isFinal": True,
                "destinationPhoneNumber": "+447700900123",
                "messageId": "aws-1",
                "messageRequestTimestamp": 1795442399000,
                "context": {"reminder": "key-1"},
                "totalMessageParts": 2,
                "totalMessagePrice": 0.0899,
            }
        ]
    ).encode()
    metro = (
        b"MsgRef;Account;Sender;Recipient;State;Reason;Parts;ChargeCents;Currency;"
        b"Submitted;LastUpdate;ClientRef\n"
        b"M-1;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;23/11/2026 08:00:00;;key-2\n"
    )
    assert _load(engine, aws, layout="aws_eum", name="aws.jsonl")["inserted"] == 1
    assert _load(engine, metro, layout="metro_csv", name="metro.csv")["inserted"] == 1
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select carrier, sender_reference, price_micros, num_segments, sent_at_utc "
                "from carrier_records order by carrier"
            )
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("aws_eum", "key-1", 89_900, 2, datetime(2026, 11, 23, 13, 59, 59)),
        # 08:00 in Chicago (CST, UTC-6) on 2026-11-23 is 14:00 UTC; 0.75 cents = 7,500 micros.
        ("metro", "key-2", 7_500, 1, datetime(2026, 11, 23, 14, 0)),
    ]


USAGE = json.dumps(
    {
        "usage_records": [
            {
                "account_sid": "AC00",
                "category": "sms-outbound",
                "count": "1200",
                "count_unit": "messages",
                "price": "9.48",
                "price_unit": "usd",
                "start_date": "2026-11-01",
                "end_date": "2026-11-30",
            },
            {
                "account_sid": "AC00",
                "category": "sms-inbound",
                "count": "twelve",
                "price": "0.10",
                "price_unit": "usd",
                "start_date": "2026-11-01",
                "end_date": "2026-11-30",
            },
        ]
    }
).encode()


def test_invoices_load_idempotently_and_a_restated_line_replaces(engine) -> None:
    def load(data: bytes) -> dict:
        parsed = parse_twilio_usage_records(data, source_file="usage.json", loaded_at=LOADED)
        with engine.begin() as conn:
            return load_carrier_invoices(conn, parsed)

    assert load(USAGE)["inserted"] == 1
    assert load(USAGE)["unchanged"] == 1
    restated = USAGE.replace(b'"9.48"', b'"9.56"')
    assert load(restated)["replaced"] == 1
    csv = (
        b"period_start,period_end,category,count,amount,currency\n"
        b"2026-11-01,2026-11-30,sms,40,1.80,USD\n"
        b"2026-11-01,2026-11-30,sms,40,1.80,USD\n"
        b"2026-11-31,2026-11-30,sms,1,0.01,USD\n"
    )
    parsed = parse_invoice_csv(csv, carrier="metro", source_file="metro-inv.csv", loaded_at=LOADED)
    with engine.begin() as conn:
        assert load_carrier_invoices(conn, parsed)["inserted"] == 1
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select carrier, category, count, amount_micros, currency from carrier_invoices "
                "order by carrier"
            )
        ).fetchall()
        rules = conn.execute(
            sa.text("select source, rule from quarantine order by source, source_row")
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("metro", "sms", 40, 1_800_000, "USD"),
        ("twilio", "sms-outbound", 1200, 9_560_000, "USD"),
    ]
    # The invalid count line appears once per distinct Twilio file loaded (two files).
    assert sorted(tuple(r) for r in rules) == sorted(
        [
            ("carrier_invoices:metro", "invoice_line_duplicate"),
            ("carrier_invoices:metro", "period_invalid"),
            ("carrier_invoices:twilio", "count_invalid"),
            ("carrier_invoices:twilio", "count_invalid"),
        ]
    )


def test_load_carrier_file_from_disk(engine, tmp_path) -> None:
    path = tmp_path / "2026-11-23.json.gz"
    path.write_bytes(PRICED)
    first = load_carrier_file(engine, path, "twilio_bulkexport", now=LOADED)
    again = load_carrier_file(engine, path, "twilio_bulkexport", now=LOADED)
    assert (first["inserted"], again["unchanged"]) == (2, 2)
    assert set(_records(engine)["source_file"]) == {"2026-11-23.json.gz"}
