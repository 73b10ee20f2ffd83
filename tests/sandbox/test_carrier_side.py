"""The sandbox's carrier side, read back through the product's carrier layouts.

The sandbox imports nothing from ``tasks``; these tests do, to check that each simulated
output parses in its layout, and they derive every expectation from the sandbox ledger (what
was really sent) and the published price rules (0.0079 USD per segment to US/CA, 0.0450
elsewhere, ``failed`` priced 0), never from the carrier records themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tasks.carriers import load_layout, parse_carrier_file, parse_twilio_usage_records
from tests.sandbox.org import SENDER, Org

LOADED = datetime(2026, 12, 1)
US = ["+13175551234", "+13175551235", "+13175551236"]
ABROAD = ["+447700900123", "+447700900124"]
CLASS = {  # ledger outcome -> status class
    "delivered": "delivered",
    "undelivered": "undelivered",
    "invalid_number": "failed",
    "opted_out": "failed",
}


def _send(org: Org, numbers: list[str], text: str = "Your invoice is due") -> None:
    for to in numbers:
        body = {
            "fromAddress": SENDER,
            "toAddress": to,
            "toAddressMessengerType": "sms",
            "textBody": text,
        }
        org.ok("POST", "/conversations/messages/agentless", json=body)


def _expected_micros(entry: dict, segments: int | None = None) -> int:
    if CLASS[entry["outcome"]] == "failed":
        return 0
    rate = 7_900 if entry["to"].startswith("+1") else 45_000
    return rate * (segments if segments is not None else entry["segments"])


def _parse(data: bytes, layout: str):
    parsed = parse_carrier_file(data, load_layout(layout), source_file="sandbox", loaded_at=LOADED)
    assert parsed.accounted
    return parsed


def _twilio(org: Org):
    return _parse(org.http.get("/sandbox/carrier/twilio/messages").content, "twilio")


def _aws(org: Org):
    return _parse(org.http.get("/sandbox/carrier/aws_eum/events").content, "aws_eum")


def _injected(org: Org) -> list[dict]:
    return org.http.get("/sandbox/carrier/injected").json()["injected"]


def test_non_nanp_sends_go_through_the_second_carrier(org: Org) -> None:
    org.configure(carrier_routing="non_nanp_aws")
    _send(org, US + ABROAD)
    org.run("2026-11-23T06:11:00Z")
    ledger = {m["carrier_sid"]: m for m in org.ledger()["messages"]}
    twilio, aws = _twilio(org), _aws(org)
    assert twilio.quarantine.height == 0
    assert sorted(twilio.records["to_address"]) == sorted(US)
    assert sorted(aws.records["to_address"]) == sorted(ABROAD)
    # Two events per AWS message (pending, final): the pending ones are superseded.
    assert aws.rows_in == 2 * len(ABROAD)
    assert set(aws.quarantine["rule"]) == {"carrier_record_superseded"}
    for record in [*twilio.records.to_dicts(), *aws.records.to_dicts()]:
        entry = ledger[record["carrier_message_id"]]
        assert record["to_address"] == entry["to"]
        assert record["status_class"] == CLASS[entry["outcome"]]
        assert record["num_segments"] == entry["segments"]
        assert record["price_micros"] == _expected_micros(entry)
        assert record["price_final"] is True
        assert record["sent_at_utc"] - datetime.fromisoformat(entry["sent_at"]).replace(
            tzinfo=None
        ) <= timedelta(seconds=1)
    # The sender's reference of an agentless send is its number.
    assert aws.records["sender_reference"].to_list() == aws.records["to_address"].to_list()


def test_before_pricing_the_records_are_pending(org: Org) -> None:
    org.configure(carrier_routing="non_nanp_aws")
    _send(org, US[:1] + ABROAD[:1])
    org.run("2026-11-23T06:05:00Z")
    twilio, aws = _twilio(org), _aws(org)
    assert twilio.records["price_final"].to_list() == [False]
    assert aws.records["price_final"].to_list() == [False]
    assert aws.records["status_class"].to_list() == ["pending"]


def test_bulkexport_day_file_and_usage_records(org: Org) -> None:
    _send(org, US, text="x" * 200)  # 200 GSM characters: 2 segments each
    org.run("2026-11-23T06:11:00Z")
    ledger = org.ledger()["messages"]
    answer = org.http.get("/sandbox/carrier/twilio/bulkexport/2026-11-23", params={"gzip": "true"})
    assert answer.content[:2] == b"\x1f\x8b"
    day = _parse(answer.content, "twilio_bulkexport")
    assert day.records.height == len(US)
    assert day.records["num_segments"].to_list() == [2] * len(US)
    expected = {m["carrier_sid"]: _expected_micros(m) for m in ledger}
    assert dict(day.records.select("carrier_message_id", "price_micros").iter_rows()) == expected
    assert org.http.get("/sandbox/carrier/twilio/bulkexport/2026-11-24").content == b""
    usage = org.http.get("/sandbox/carrier/twilio/usage/monthly", params={"month": "2026-11"})
    invoice = parse_twilio_usage_records(usage.content, source_file="u", loaded_at=LOADED)
    assert invoice.quarantine.height == 0
    line = invoice.lines.to_dicts()[0]
    assert line["amount_micros"] == sum(expected.values())
    assert line["count"] == len(US)
    assert (str(line["period_start"]), str(line["period_end"])) == ("2026-11-01", "2026-11-30")


def _with(org: Org, **switches) -> tuple[dict, list[dict]]:
    org.configure(carrier_routing="non_nanp_aws", **switches)
    _send(org, US[:2] + ABROAD[:1])
    org.run("2026-11-23T06:11:00Z")
    return {m["carrier_sid"]: m for m in org.ledger()["messages"]}, _injected(org)


def test_injected_billed_twice(org: Org) -> None:
    ledger, injected = _with(org, carrier_billed_twice_rate=1.0)
    assert [i["kind"] for i in injected] == ["billed_twice"] * 3
    records = [*_twilio(org).records.to_dicts(), *_aws(org).records.to_dicts()]
    assert len(records) == 6
    twins = {i["carrier_message_id"]: i["ledger_id"] for i in injected}
    by_ledger_id = {m["ledger_id"]: m for m in ledger.values()}
    for record in records:
        if record["carrier_message_id"] in ledger:
            continue
        original = by_ledger_id[twins[record["carrier_message_id"]]]
        assert record["to_address"] == original["to"]
        assert record["price_micros"] == _expected_micros(original)


def test_injected_billed_but_never_sent(org: Org) -> None:
    ledger, injected = _with(org, carrier_phantom_rate=1.0)
    assert [i["kind"] for i in injected] == ["billed_not_sent"] * 3
    sent_to = {m["to"] for m in ledger.values()}
    records = [*_twilio(org).records.to_dicts(), *_aws(org).records.to_dicts()]
    ghosts = [r for r in records if r["carrier_message_id"] not in ledger]
    assert sorted(g["carrier_message_id"] for g in ghosts) == sorted(
        i["carrier_message_id"] for i in injected
    )
    assert all(g["to_address"] not in sent_to for g in ghosts)


def test_injected_segment_mismatch(org: Org) -> None:
    ledger, injected = _with(org, carrier_segment_mismatch_rate=1.0)
    assert [i["kind"] for i in injected] == ["segment_mismatch"] * 3
    for record in [*_twilio(org).records.to_dicts(), *_aws(org).records.to_dicts()]:
        entry = ledger[record["carrier_message_id"]]
        assert record["num_segments"] == entry["segments"] + 1
        assert record["price_micros"] == _expected_micros(entry, entry["segments"] + 1)


def test_injected_record_that_stays_pending(org: Org) -> None:
    _ledger, injected = _with(org, carrier_pending_rate=1.0)
    assert [i["kind"] for i in injected] == ["stays_pending"] * 3
    org.run("2026-11-26T06:00:00Z")
    for parsed in (_twilio(org), _aws(org)):
        assert parsed.records["price_micros"].null_count() == parsed.records.height
        assert not parsed.records["price_final"].any()


@pytest.mark.parametrize("layout", ["twilio", "aws_eum"])
def test_injected_price_change_after_48_hours_replaces_in_the_warehouse(
    org: Org, tmp_path, layout: str
) -> None:
    from tasks.carriers import load_carrier_records
    from tasks.warehouse import make_engine, migrate, read_frame

    ledger, injected = _with(org, carrier_price_change_rate=1.0)
    assert [i["kind"] for i in injected] == ["price_change"] * 3
    read = _twilio if layout == "twilio" else _aws
    engine = make_engine(f"duckdb:///{tmp_path / 'w.duckdb'}")
    migrate(engine)
    before = read(org)
    org.run("2026-11-25T08:00:00Z")  # 50 h after the sends
    after = read(org)
    with engine.begin() as conn:
        load_carrier_records(conn, before)
    with engine.begin() as conn:
        result = load_carrier_records(conn, after)
    assert result["replaced"] == before.records.height
    with engine.connect() as conn:
        stored = read_frame(conn, "select carrier_message_id, price_micros from carrier_records")
    for sid, micros in stored.iter_rows():
        original = _expected_micros(ledger[sid])
        assert micros == original * 3 // 2
    engine.dispose()
