"""Carrier layouts: one hand-written file per layout, malformed rows included.

Expected values are worked out by hand from the inputs written here (comments show the sums).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime

import polars as pl
import pytest

from tasks.carriers import (
    LayoutError,
    builtin_layouts,
    layout_from_mapping,
    load_layout,
    parse_carrier_file,
    parse_invoice_csv,
    parse_twilio_usage_records,
)

LOADED = datetime(2026, 12, 1, 9, 0)


def _parse(data: bytes | str, layout: str, name: str = "file"):
    if isinstance(data, str):
        data = data.encode()
    lay = load_layout(layout) if isinstance(layout, str) else layout
    parsed = parse_carrier_file(data, lay, source_file=name, loaded_at=LOADED)
    assert parsed.accounted, "rows in must equal records + quarantined rows"
    return parsed


def _by_id(parsed) -> dict[str, dict]:
    return {r["carrier_message_id"]: r for r in parsed.records.to_dicts()}


def _rules(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["source_row"], parsed.quarantine["rule"], strict=True))


def test_every_builtin_layout_is_a_valid_mapping_file() -> None:
    names = builtin_layouts()
    assert {"twilio", "twilio_bulkexport", "twilio_csv", "aws_eum", "aws_pinpoint"} <= set(names)
    assert {"vonage_dlr", "metro_csv"} <= set(names)
    for name in names:
        assert load_layout(name).name == name


TWILIO_PAGE = {
    "messages": [
        {  # row 1: priced, two segments, RFC 2822 dates
            "sid": "SM" + "a" * 32,
            "account_sid": "AC" + "0" * 32,
            "messaging_service_sid": None,
            "from": "+13175550100",
            "to": "+14155552345",
            "body": "Hi Ana",
            "status": "delivered",
            "num_segments": "2",
            "num_media": "0",
            "price": "-0.01580",
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": "Mon, 23 Nov 2026 14:00:00 +0000",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
            "date_updated": "Mon, 23 Nov 2026 14:10:00 +0000",
            "uri": "/2010-04-01/Accounts/AC/Messages/SM.json",
            "subresource_uris": {"media": "/x"},
        },
        {  # row 2: not priced yet, undelivered with an integer error code
            "sid": "SMb",
            "to": "+447700900123",
            "status": "undelivered",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "error_code": 30003,
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {
            "sid": None,
            "to": "+14155552345",
            "status": "sent",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {
            "sid": "SMd",
            "to": "+14155552345",
            "status": "delivering",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {
            "sid": "SMe",
            "to": "4155552345",
            "status": "sent",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {"sid": "SMf", "to": "+14155552345", "status": "sent", "date_sent": "23/11/2026"},
        {
            "sid": "SMg",
            "to": "+14155552345",
            "status": "sent",
            "price": "NaN",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {
            "sid": "SMh",
            "to": "+14155552345",
            "status": "sent",
            "price": "-0.0000001",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {
            "sid": "SMi",
            "to": "+14155552345",
            "status": "sent",
            "num_segments": "two",
            "date_sent": "Mon, 23 Nov 2026 14:00:01 +0000",
        },
        {"sid": "SMj", "to": "+14155552345", "status": "sent"},
        "not an object",
    ]
}


def test_twilio_message_page() -> None:
    parsed = _parse(json.dumps(TWILIO_PAGE), "twilio")
    assert parsed.rows_in == 11
    records = _by_id(parsed)
    assert set(records) == {"SM" + "a" * 32, "SMb"}
    first = records["SM" + "a" * 32]
    # price "-0.01580" USD: a charge of 0.0158 USD = 15,800 micros
    assert first["price_micros"] == 15_800
    assert first["price_currency"] == "USD"
    assert first["price_final"] is True
    assert first["num_segments"] == 2
    assert first["status_class"] == "delivered"
    assert first["sent_at_utc"] == datetime(2026, 11, 23, 14, 0, 1)
    assert first["updated_at_utc"] == datetime(2026, 11, 23, 14, 10, 0)
    assert first["account_ref"] == "AC" + "0" * 32
    assert first["direction"] == "outbound-api"

    assert first["body_sha256"] == hashlib.sha256(b"Hi Ana").hexdigest()
    second = records["SMb"]
    assert second["price_micros"] is None
    assert second["price_final"] is False
    assert second["error_code"] == "30003"
    assert second["status_class"] == "undelivered"
    # No date_updated: the send time stands in.
    assert second["updated_at_utc"] == datetime(2026, 11, 23, 14, 0, 1)
    assert _rules(parsed) == {
        3: "id_missing",
        4: "status_unknown",
        5: "to_address_invalid",
        6: "timestamp_invalid",
        7: "price_invalid",
        8: "price_invalid",  # finer than one micro-unit: never rounded
        9: "segments_invalid",
        10: "timestamp_missing",
        11: "record_unreadable",
    }
    assert set(parsed.quarantine["source"]) == {"carrier_records:twilio"}
    assert set(parsed.quarantine["scope"]) == {"row"}
    raw = json.loads(parsed.quarantine.filter(pl.col("source_row") == 7)["raw_values"][0])
    assert raw["price:price"] == "NaN"


def test_twilio_single_message_resource() -> None:
    one = dict(TWILIO_PAGE["messages"][0])
    parsed = _parse(json.dumps(one), "twilio")
    assert parsed.records.height == 1
    assert parsed.quarantine.height == 0


def test_twilio_bulkexport_day_file_gzip_iso_dates_no_price_unit() -> None:
    lines = [
        {
            "sid": "SM1",
            "account_sid": "AC1",
            "from": "+13175550100",
            "to": "+12125550101",
            "body": "x",
            "status": "delivered",
            "num_segments": "3",
            "num_media": "0",
            "price": "-0.02370",
            "direction": "outbound-api",
            "error_code": None,
            "date_created": "2026-11-23T14:00:00Z",
            "date_sent": "2026-11-23T14:00:01.500Z",
            "date_updated": "2026-11-23T15:00:00+01:00",
        },
        {
            "sid": "SM2",
            "to": "+12125550101",
            "status": "sent",
            "num_segments": "1",
            "date_sent": "2026-11-23T14:05:00Z",
        },  # price missing: pending
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n\n"
    parsed = _parse(gzip.compress(text.encode()), "twilio_bulkexport")
    records = _by_id(parsed)
    assert records["SM1"]["price_micros"] == 23_700
    assert records["SM1"]["price_currency"] == "USD"
    assert records["SM1"]["sent_at_utc"] == datetime(2026, 11, 23, 14, 0, 1, 500_000)
    assert records["SM1"]["updated_at_utc"] == datetime(2026, 11, 23, 14, 0, 0)  # +01:00
    assert records["SM2"]["price_final"] is False
    assert records["SM2"]["status_class"] == "accepted"
    assert _rules(parsed) == {3: "record_unreadable"}  # blank lines are not records


def test_twilio_console_csv() -> None:
    text = (
        "Sid,AccountSid,From,To,Body,Status,Direction,NumSegments,Price,PriceUnit,ErrorCode,SentDate\n"
        'SM1,AC1,+13175550100,+1 212 555 0101,"Hi, there",delivered,outbound-api,1,-0.0079,USD,,'
        "2026-11-23 14:00:00\n"
        "SM2,AC1,+13175550100,+12125550101,x,failed,outbound-api,1,-0.0079,US,21211,"
        "2026-11-23 14:00:00\n"
        "SM3,AC1,+13175550100,+12125550101,x\n"
    )
    parsed = _parse(text, "twilio_csv")
    assert parsed.records["to_address"].to_list() == ["+12125550101"]
    assert parsed.records["price_micros"].to_list() == [7_900]
    assert _rules(parsed) == {2: "currency_invalid", 3: "record_unreadable"}


def _aws(event_type: str, ts: int, *, final: bool, price, msg: str = "aws-1", **extra) -> str:
    event = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": ts,
        "isFinal": final,
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": "+14255550156",
        "messageId": msg,
        "messageRequestTimestamp": 1_795_442_400_000,  # 2026-11-23T14:00:00Z
        "messageStatus": "SUCCESSFUL",
        "context": {"account": "acme", "reminder": "key-1"},
        "totalMessageParts": 2,
        "totalMessagePrice": price,
        "totalCarrierFee": 0.0,
    }
    event.update(extra)
    return json.dumps(event)


def test_aws_eum_events_latest_wins_and_dollars_are_exact() -> None:
    lines = [
        # price as the JSON number 0.00645: 6,450 micros exactly (no float on the way)
        _aws("TEXT_SUCCESSFUL", 1_795_442_401_000, final=False, price=0.00645),
        _aws("TEXT_DELIVERED", 1_795_442_460_000, final=True, price=0.00645),
        _aws("TEXT_PENDING", 1_795_442_402_000, final=False, price=None, msg="aws-2"),
        _aws("TEXT_SOMETHING_NEW", 1_795_442_402_000, final=True, price=0.01, msg="aws-3"),
        _aws("TEXT_DELIVERED", "yesterday", final=True, price=0.01, msg="aws-4"),
    ]
    parsed = _parse("\n".join(lines), "aws_eum")
    records = _by_id(parsed)
    assert set(records) == {"aws-1", "aws-2"}
    one = records["aws-1"]
    assert one["price_micros"] == 6_450
    assert one["price_final"] is True
    assert one["status_class"] == "delivered"
    assert one["num_segments"] == 2
    assert one["sender_reference"] == "key-1"
    assert one["account_ref"] == "acme"
    assert one["sent_at_utc"] == datetime(2026, 11, 23, 14, 0, 0)
    assert one["updated_at_utc"] == datetime(2026, 11, 23, 14, 1, 0)
    assert one["source_row"] == 2
    assert records["aws-2"]["price_final"] is False
    assert records["aws-2"]["status_class"] == "pending"
    assert _rules(parsed) == {
        1: "carrier_record_superseded",
        4: "status_unknown",
        5: "timestamp_invalid",
    }


def test_aws_eum_price_is_final_only_when_the_event_is_final() -> None:
    parsed = _parse(
        _aws("TEXT_SUCCESSFUL", 1_795_442_401_000, final=False, price=0.0899), "aws_eum"
    )
    assert parsed.records["price_micros"].to_list() == [89_900]
    assert parsed.records["price_final"].to_list() == [False]


def test_aws_pinpoint_millicents() -> None:
    event = {
        "event_type": "_SMS.SUCCESS",
        "event_timestamp": 1_795_442_400_000,
        "attributes": {
            "message_id": "pp-1",
            "destination_phone_number": "+14255550156",
            "origination_phone_number": "+12065550152",
            "record_status": "DELIVERED",
            "number_of_message_parts": "1",
            "customer_context": "key-7",
        },
        "metrics": {"price_in_millicents_usd": 645.0},
    }
    bad = dict(
        event,
        attributes=dict(event["attributes"], message_id="pp-2"),
        metrics={"price_in_millicents_usd": "cheap"},
    )
    parsed = _parse(json.dumps(event) + "\n" + json.dumps(bad), "aws_pinpoint")
    # 645 millicents = $0.00645 = 6,450 micros
    assert parsed.records["price_micros"].to_list() == [6_450]
    assert parsed.records["sender_reference"].to_list() == ["key-7"]
    assert _rules(parsed) == {2: "price_invalid"}


def test_vonage_dlr_parts_msisdn_and_scts() -> None:
    dlrs = [
        {
            "messageId": "0C0000002EEBDA56",
            "msisdn": "447700900000",
            "to": "Acme",
            "network-code": "23820",
            "price": "0.01820000",
            "status": "delivered",
            "err-code": "0",
            "scts": "2611231400",
            "message-timestamp": "2026-11-23 14:00:05",
            "client-ref": "key-3",
        },
        {
            "messageId": "0C0000002EEBDA57",
            "msisdn": "447700900000",
            "to": "Acme",
            "price": "0.01820000",
            "status": "delivered",
            "err-code": "0",
            "scts": "2611231400",
            "message-timestamp": "2026-11-23 14:00:06",
            "client-ref": "key-3",
        },
        {
            "messageId": "0C0000002EEBDA58",
            "msisdn": "447700900000",
            "price": "0.0182",
            "status": "delivered",
            "scts": "2613311400",
            "message-timestamp": "2026-11-23 14:00:06",
        },
    ]
    parsed = _parse("\n".join(json.dumps(d) for d in dlrs), "vonage_dlr")
    assert parsed.records["to_address"].to_list() == ["+447700900000"] * 2
    # Each part priced 0.0182 EUR = 18,200 micros; the message costs the sum of its parts.
    assert parsed.records["price_micros"].sum() == 36_400
    assert parsed.records["price_currency"].unique().to_list() == ["EUR"]
    assert parsed.records["sent_at_utc"].unique().to_list() == [datetime(2026, 11, 23, 14, 0)]
    assert _rules(parsed) == {3: "timestamp_invalid"}  # month 13


METRO_HEAD = (
    "MsgRef;Account;Sender;Recipient;State;Reason;Parts;ChargeCents;Currency;Submitted;"
    "LastUpdate;ClientRef\n"
)


def test_local_time_csv_converts_to_utc_and_quarantines_dst_gaps() -> None:
    text = METRO_HEAD + (
        # 2026-07-01 09:00 CDT (UTC-5) = 14:00 UTC; 1.5 cents = 15,000 micros
        "M1;acme;+13175550100;+12125550101;DELIVERED;;2;1.5;USD;01/07/2026 09:00:00;"
        "01/07/2026 09:01;key-1\n"
        # 2026-11-01 01:30 happens twice in Chicago (fall back): ambiguous
        "M2;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;01/11/2026 01:30:00;;key-2\n"
        # 2026-03-08 02:30 does not exist in Chicago (spring forward)
        "M3;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;08/03/2026 02:30:00;;key-3\n"
        "M4;acme;+13175550100;+12125550101;LOST;;1;0.75;USD;01/07/2026 09:00:00;;key-4\n"
        "M5;acme;+13175550100;+12125550101;DELIVERED;;1;0,75;USD;01/07/2026 09:00:00;;key-5\n"
    )
    parsed = _parse(text, "metro_csv")
    record = _by_id(parsed)["M1"]
    assert record["sent_at_utc"] == datetime(2026, 7, 1, 14, 0)
    assert record["updated_at_utc"] == datetime(2026, 7, 1, 14, 1)
    assert record["price_micros"] == 15_000
    assert record["sender_reference"] == "key-1"
    assert _rules(parsed) == {
        2: "timestamp_ambiguous",
        3: "timestamp_ambiguous",
        4: "status_unknown",
        5: "price_invalid",
    }


def test_same_version_with_different_content_quarantines_both() -> None:
    text = METRO_HEAD + (
        "M1;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;01/07/2026 09:00:00;;k\n"
        "M1;acme;+13175550100;+12125550101;DELIVERED;;1;0.80;USD;01/07/2026 09:00:00;;k\n"
        "M2;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;01/07/2026 09:00:00;;k\n"
        "M2;acme;+13175550100;+12125550101;DELIVERED;;1;0.75;USD;01/07/2026 09:00:00;;k\n"
    )
    parsed = _parse(text, "metro_csv")
    assert parsed.records["carrier_message_id"].to_list() == ["M2"]
    assert parsed.records["source_row"].to_list() == [3]
    assert _rules(parsed) == {
        1: "carrier_record_conflict",
        2: "carrier_record_conflict",
        4: "carrier_record_superseded",
    }


def test_a_users_mapping_file(tmp_path) -> None:
    path = tmp_path / "acme_sms.toml"
    path.write_text(
        """
carrier = "acme"
format = "csv"
[timestamps]
formats = ["%Y%m%d%H%M%S"]
zone = "Europe/Berlin"
[money]
unit = "micros"
sign = "negative_is_charge"
currency = "EUR"
[columns]
carrier_message_id = "id"
to_address = "dest"
status = "st"
sent_at = "ts"
price = "cost"
part_index = "part"
parts_total = "of"
[status_map]
OK = "delivered"
KO = "failed"
""",
        encoding="utf-8",
    )
    text = (
        "id,dest,st,ts,cost,part,of\n"
        "a,+4915112345678,ok,20261123150000,-12000,1,2\n"
        "a,+4915112345678,ok,20261123150000,-12000,2,2\n"
        "b,+4915112345678,ok,20261123150000,-12000,3,2\n"
    )
    parsed = _parse(text, load_layout(path))
    # 15:00 in Berlin (CET, UTC+1) = 14:00 UTC; -12000 micros with negative = charge -> 12,000
    assert parsed.records.select("part_index", "parts_total", "price_micros").rows() == [
        (1, 2, 12_000),
        (2, 2, 12_000),
    ]
    assert parsed.records["sent_at_utc"].unique().to_list() == [datetime(2026, 11, 23, 14, 0)]
    assert parsed.records["carrier"].unique().to_list() == ["acme"]
    assert _rules(parsed) == {3: "part_invalid"}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"money": {"unit": "pennies"}}, "money.unit"),
        ({"status_map": {"ok": "fine"}}, "status_map.ok"),
        ({"timestamps": {"zone": "Mars/Olympus"}}, "time zone"),
        ({"columns": {"carrier_message_id": "id"}}, "columns.to_address is required"),
        ({"colums": {}}, "unknown keys"),
    ],
)
def test_bad_mapping_files_are_refused(patch: dict, message: str) -> None:
    data = {
        "carrier": "x",
        "format": "csv",
        "columns": {"carrier_message_id": "id", "to_address": "to", "status": "s", "sent_at": "t"},
        "status_map": {"ok": "delivered"},
    }
    data.update(patch)
    with pytest.raises(LayoutError, match=message):
        layout_from_mapping("x", data)


def test_twilio_usage_records_to_invoice_lines() -> None:
    usage = {
        "usage_records": [
            {
                "account_sid": "AC1",
                "category": "sms-outbound",
                "count": "257",
                "count_unit": "messages",
                "price": "2.03030",
                "price_unit": "usd",
                "start_date": "2026-11-01",
                "end_date": "2026-11-30",
            },
            {
                "account_sid": "AC1",
                "category": "sms-outbound-fee",
                "count": "257",
                "price": "1e400",
                "price_unit": "usd",
                "start_date": "2026-11-01",
                "end_date": "2026-11-30",
            },
            {
                "account_sid": "AC1",
                "category": None,
                "count": "1",
                "price": "0.1",
                "price_unit": "usd",
                "start_date": "2026-11-01",
                "end_date": "2026-11-30",
            },
        ]
    }
    parsed = parse_twilio_usage_records(
        json.dumps(usage).encode(), source_file="u.json", loaded_at=LOADED
    )
    assert parsed.rows_in == 3
    assert parsed.lines.select("category", "count", "amount_micros", "currency").rows() == [
        ("sms-outbound", 257, 2_030_300, "USD")
    ]
    # 1e400 is exact as a Decimal and a whole number of micros: it fits no bigint, though.
    assert dict(zip(parsed.quarantine["source_row"], parsed.quarantine["rule"], strict=True)) == {
        2: "amount_invalid",
        3: "category_missing",
    }


def test_invoice_csv_duplicates_and_conflicts() -> None:
    text = (
        b"period_start,period_end,category,count,amount,currency\n"
        b"2026-11-01,2026-11-30,sms,40,1.80,USD\n"
        b"2026-11-01,2026-11-30,mms,4,0.80,USD\n"
        b"2026-11-01,2026-11-30,mms,4,0.90,USD\n"
        b"2026-11-01,2026-11-30,sms,40,1.80,USD\n"
        b"2026-11-01,2026-11-30,fee,x,1.00,USD\n"
    )
    parsed = parse_invoice_csv(text, carrier="metro", source_file="i.csv", loaded_at=LOADED)
    assert parsed.lines.select("category", "amount_micros").rows() == [("sms", 1_800_000)]
    assert dict(zip(parsed.quarantine["source_row"], parsed.quarantine["rule"], strict=True)) == {
        2: "invoice_line_conflict",
        3: "invoice_line_conflict",
        4: "invoice_line_duplicate",
        5: "count_invalid",
    }


@pytest.mark.parametrize(
    ("literal", "micros"),
    [
        ("0.07", 70_000),  # float(0.07) * 1e6 is 70000.00000000001
        ("0.1", 100_000),
        ("1.5E-4", 150),
        ("1.0000000000000000000000000000001", None),  # 32 digits: a 28-digit context rounds it
        ("1e19", None),  # beyond a bigint of micros
        ("Infinity", None),
    ],
)
def test_aws_dollar_literals_land_exactly(literal: str, micros: int | None) -> None:
    line = _aws("TEXT_DELIVERED", 1_795_442_401_000, final=True, price=0).replace(
        '"totalMessagePrice": 0', f'"totalMessagePrice": {literal}'
    )
    parsed = _parse(line, "aws_eum")
    if micros is None:
        assert _rules(parsed) == {1: "price_invalid"}
    else:
        assert parsed.records["price_micros"].to_list() == [micros]
